//! The work migrations need, on a thread of its own per node: copying a
//! tenant's records to the target realm, committing (checking, flipping the
//! directory, clearing the source) and rolling back (clearing the target).
//!
//! A node takes a migration's work by recording itself (its name and an id
//! of its process) as its worker with a lease, at the migration's revision,
//! so no two processes work on one; it renews the lease with every page it
//! records. A node that stops (a crash, a restart) leaves the lease to run
//! out (`tenancy.refresh_ms` × 20, at least 5 s), and then any node, itself
//! restarted included, takes the work up from the recorded cursor: a copy
//! resumes where it stood (pages already written come again as duplicates,
//! changing nothing), a commit past its flip goes on clearing the source, a
//! rollback goes on clearing the target. A rollback asked for during a copy
//! is seen by the copying node at its next page, which stops copying and
//! rolls back itself: the target is cleared after the last page it wrote.
//!
//! Writes of a migrating tenant are refused from the copy to the commit's
//! end; the worker waits two directory refresh intervals after the copy
//! starts and after the flip, so every node has seen the change before it
//! goes on.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::migration::{Migration, MigrationState, Tally};
use super::{Realm, Realms};
use crate::store::{EventWrite, Op, RecordId, StoreError, now_ms};

/// The ingestion source the change log names for a migration's copies.
pub const MIGRATION_SOURCE: &str = "droid-migration";

/// How long a node waits after a step failed in a way retrying may mend
/// (past the flip, only forward).
const RETRY: Duration = Duration::from_secs(2);

/// Wakes the worker when a step was asked for, rather than at its next look.
#[derive(Debug, Clone)]
pub struct Waker(Sender<()>);

impl Waker {
    /// Tells the worker to look now.
    pub fn wake(&self) {
        let _ = self.0.send(());
    }
}

/// What the worker needs beyond the realms.
pub struct Settings {
    /// Who this node is as a worker: its name and an id of this process
    /// instance, so no two processes ever hold one migration's work.
    pub node: String,
    /// The record types a tenant may have records of.
    pub record_types: Box<dyn Fn() -> Vec<String> + Send>,
    /// Records per page.
    pub page: usize,
    /// How often the directory is read again.
    pub refresh: Duration,
    /// Whether the node is shutting down: work stops at the next page,
    /// keeping its lease, so the node taken up again goes on at once.
    pub closing: tokio::sync::watch::Receiver<bool>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("node", &self.node)
            .field("page", &self.page)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// How long a claim holds without news: long enough for a slow page,
    /// short enough that a stopped node's work is soon taken up.
    fn lease(&self) -> Duration {
        (self.refresh * 20).max(Duration::from_secs(5))
    }
}

/// Starts the worker thread, which also reads the directory again every
/// refresh interval; it ends when `realms` goes.
pub fn start(realms: &Arc<Realms>, settings: Settings) -> Waker {
    let (tx, rx) = std::sync::mpsc::channel();
    let weak = Arc::downgrade(realms);
    let spawned = std::thread::Builder::new()
        .name("droid-tenancy".into())
        .spawn(move || run(&weak, &settings, &rx));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the tenancy thread: migrations will not progress");
    }
    Waker(tx)
}

fn run(realms: &std::sync::Weak<Realms>, settings: &Settings, wake: &Receiver<()>) {
    loop {
        match wake.recv_timeout(settings.refresh) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if *settings.closing.borrow() {
            return;
        }
        let Some(realms) = realms.upgrade() else {
            return;
        };
        if let Err(e) = realms.directory.refresh() {
            tracing::warn!(error = %e, "cannot read the tenant directory; retrying");
            continue;
        }
        let now = now_ms();
        let due: Vec<_> = realms
            .directory
            .migrations()
            .into_iter()
            .filter(|(m, _)| m.state.has_work() && m.claimable_by(&settings.node, now))
            .collect();
        for (migration, revision) in due {
            if *settings.closing.borrow() {
                return;
            }
            let mut work = Work {
                realms: &realms,
                settings,
                migration,
                revision,
            };
            if work.claim() {
                work.run();
            }
        }
    }
}

/// One migration being worked on, at the revision this node last wrote.
struct Work<'a> {
    realms: &'a Realms,
    settings: &'a Settings,
    migration: Migration,
    revision: u64,
}

/// Why work stopped short.
enum Stop {
    /// Someone changed the migration (a rollback asked for): look again.
    Changed,
    /// The node shuts down.
    Closing,
    /// The store failed.
    Store(StoreError),
    /// The work found something wrong: the migration fails.
    Refused(String),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Work<'_> {
    /// Records this node as the worker; false when another node was faster.
    fn claim(&mut self) -> bool {
        self.migration.worker = Some(self.settings.node.clone());
        self.save().is_ok()
    }

    /// Writes the migration with a renewed lease; `Changed` when someone
    /// else wrote it since.
    fn save(&mut self) -> Result<(), Stop> {
        if *self.settings.closing.borrow() {
            return Err(Stop::Closing);
        }
        let lease = self.settings.lease().as_millis() as u64;
        self.migration.lease_until_ms = now_ms() + lease;
        match self.realms.directory.put(&self.migration, self.revision)? {
            Some(revision) => {
                self.revision = revision;
                Ok(())
            }
            None => Err(Stop::Changed),
        }
    }

    /// Does the work of the migration's state, and of the states it leads
    /// to, as long as there is some.
    fn run(&mut self) {
        while self.migration.state.has_work() {
            let state = self.migration.state;
            let outcome = match state {
                MigrationState::Copying => self.copy(),
                MigrationState::Committing => self.commit(),
                MigrationState::RollingBack => self.roll_back(),
                _ => return,
            };
            match outcome {
                Ok(()) => {}
                Err(Stop::Changed) => {
                    // Read it again: a rollback asked for during the copy is
                    // ours to do, since we hold the lease.
                    let Some((fresh, revision)) =
                        self.realms.directory.migration(&self.migration.id)
                    else {
                        return;
                    };
                    if fresh.worker.as_deref() != Some(self.settings.node.as_str()) {
                        return;
                    }
                    self.migration = fresh;
                    self.revision = revision;
                }
                Err(Stop::Store(e))
                    if self.migration.flipped || state == MigrationState::RollingBack =>
                {
                    // Only forward from here: try again soon.
                    tracing::warn!(migration = %self.migration.id, error = %e, "a migration step failed; retrying");
                    std::thread::sleep(RETRY);
                }
                Err(Stop::Store(e)) => self.fail(format!("the store failed: {e}")),
                Err(Stop::Refused(why)) => self.fail(why),
                Err(Stop::Closing) => {
                    // What is in memory is what was done: hand it over, so
                    // the next node (this one restarted) goes on at once.
                    self.release();
                    return;
                }
            }
        }
        // Done for now: the next step is someone else's to ask for.
        self.release();
    }

    /// Records the migration as this node left it, held by no one.
    fn release(&mut self) {
        self.migration.worker = None;
        self.migration.lease_until_ms = 0;
        if let Err(e) = self.realms.directory.put(&self.migration, self.revision) {
            tracing::warn!(migration = %self.migration.id, error = %e, "cannot record where the migration stands; its lease runs out instead");
        }
    }

    /// The record types to work over, read now; `Closing` once the node
    /// shuts down (its configuration is going: no step is judged on it).
    fn record_types(&self) -> Result<Vec<String>, Stop> {
        if *self.settings.closing.borrow() {
            return Err(Stop::Closing);
        }
        let types = (self.settings.record_types)();
        if types.is_empty() && *self.settings.closing.borrow() {
            return Err(Stop::Closing);
        }
        Ok(types)
    }

    fn fail(&mut self, why: String) {
        tracing::warn!(migration = %self.migration.id, tenant = %self.migration.tenant, reason = %why, "realm migration failed; the source realm still serves the tenant");
        self.migration.error = Some(why);
        self.migration.enter(MigrationState::Failed, now_ms());
    }

    fn realm(&self, name: &str) -> Result<&Arc<Realm>, Stop> {
        self.realms
            .get(name)
            .ok_or_else(|| Stop::Refused(format!("realm {name:?} is no longer declared")))
    }

    /// Copies the tenant's records to the target, page by page from the
    /// cursor, then verifies both sides.
    fn copy(&mut self) -> Result<(), Stop> {
        if self.migration.cursor.is_none() && self.migration.copied == 0 {
            // Every node must hold the tenant's writes off before the copy reads.
            std::thread::sleep(self.settings.refresh * 2);
        }
        let source = self.realm(&self.migration.source_realm)?.clone();
        let target = self.realm(&self.migration.target_realm)?.clone();
        let tenant = self.migration.tenant.clone();
        let mut types = self.record_types()?;
        types.sort();
        for record_type in types.iter().cloned() {
            let mut after = match &self.migration.cursor {
                Some((done, _)) if *done > record_type => continue,
                Some((at, key)) if *at == record_type => Some(key.clone()),
                _ => None,
            };
            loop {
                let page = source.stores.records.tenant_records(
                    &record_type,
                    &tenant,
                    after.as_deref(),
                    self.settings.page,
                )?;
                let Some((last, _)) = page.last() else {
                    break;
                };
                let last = last.clone();
                let ops = page
                    .into_iter()
                    .map(|(key, record)| {
                        let id = RecordId {
                            record_type: record_type.clone(),
                            tenant: tenant.clone(),
                            key,
                        };
                        match record.body {
                            Some(body) => Op::Upsert {
                                id,
                                body,
                                version: record.version,
                            },
                            None => Op::Delete {
                                id,
                                version: record.version,
                            },
                        }
                    })
                    .collect::<Vec<_>>();
                let count = ops.len() as u64;
                // Named by where the copy stands: a page written again after
                // a restart is a duplicate.
                let event = EventWrite {
                    overwrite: false,
                    source: MIGRATION_SOURCE.to_owned(),
                    event_id: format!("{}:{}", self.migration.id, self.migration.copied),
                    occurred_at_ms: now_ms(),
                    ops,
                };
                target.stores.records.apply(&[event])?;
                metrics::counter!(crate::metrics::MIGRATION_RECORDS, "step" => "copied")
                    .increment(count);
                self.migration.copied += count;
                self.migration.cursor = Some((record_type.clone(), last.clone()));
                self.save()?;
                after = Some(last);
            }
        }
        let here = tally(&source, &types, &tenant, self.settings.page)?;
        let there = tally(&target, &types, &tenant, self.settings.page)?;
        if here != there {
            return Err(Stop::Refused(format!(
                "the copy does not match: the source holds {} records (sha256 {}), the target {} (sha256 {})",
                here.records, here.sha256, there.records, there.sha256
            )));
        }
        tracing::info!(migration = %self.migration.id, tenant = %tenant, records = here.records, "realm migration copied and verified; ready to commit");
        self.migration.tally = Some(here);
        self.migration
            .enter(MigrationState::ReadyToCommit, now_ms());
        self.save()
    }

    /// Checks nothing changed since the copy, flips the directory, and
    /// clears the source.
    fn commit(&mut self) -> Result<(), Stop> {
        let source = self.realm(&self.migration.source_realm)?.clone();
        let target = self.realm(&self.migration.target_realm)?.clone();
        let tenant = self.migration.tenant.clone();
        let types = self.record_types()?;
        if !self.migration.flipped {
            let copied = self.migration.tally.clone();
            let here = tally(&source, &types, &tenant, self.settings.page)?;
            let there = tally(&target, &types, &tenant, self.settings.page)?;
            if copied.as_ref() != Some(&here) || here != there {
                return Err(Stop::Refused(format!(
                    "the tenant's records changed since the copy (source {} records, sha256 {}; target {}, sha256 {})",
                    here.records, here.sha256, there.records, there.sha256
                )));
            }
            self.realms
                .directory
                .pin(&tenant, &self.migration.target_realm)?;
            self.migration.flipped = true;
            self.migration.copied = 0;
            self.save()?;
            tracing::info!(migration = %self.migration.id, tenant = %tenant, realm = %self.migration.target_realm, "tenant moved; clearing the source realm");
            // Every node routes the tenant to the target before its data leaves.
            std::thread::sleep(self.settings.refresh * 2);
        }
        move_dead_letters(&source, &target, &tenant)?;
        self.clear(&source, &types)?;
        self.migration.enter(MigrationState::Committed, now_ms());
        self.save()
    }

    /// Clears what the copy wrote in the target.
    fn roll_back(&mut self) -> Result<(), Stop> {
        let target = self.realm(&self.migration.target_realm)?.clone();
        let types = self.record_types()?;
        self.migration.copied = 0;
        self.clear(&target, &types)?;
        tracing::info!(migration = %self.migration.id, tenant = %self.migration.tenant, "realm migration rolled back; the source realm serves the tenant as before");
        self.migration.enter(MigrationState::RolledBack, now_ms());
        self.save()
    }

    /// Removes every record of the tenant from `realm`, page by page (each
    /// logged as an invalidation, so caches and sidecars drop it), then the
    /// values its change log still holds of the tenant.
    fn clear(&mut self, realm: &Realm, types: &[String]) -> Result<(), Stop> {
        let tenant = self.migration.tenant.clone();
        for record_type in types {
            loop {
                let purged =
                    realm
                        .stores
                        .records
                        .purge_tenant(record_type, &tenant, self.settings.page)?;
                if purged.is_empty() {
                    break;
                }
                metrics::counter!(crate::metrics::MIGRATION_RECORDS, "step" => "removed")
                    .increment(purged.len() as u64);
                self.migration.copied += purged.len() as u64;
                self.save()?;
            }
        }
        realm.stores.records.redact_changes(&tenant)?;
        Ok(())
    }
}

/// Moves `tenant`'s dead letters from `source` to `target` (kept there
/// first, then removed here): the events they keep are the tenant's data.
fn move_dead_letters(source: &Realm, target: &Realm, tenant: &str) -> Result<(), StoreError> {
    let theirs: Vec<_> = source
        .stores
        .dead_letters
        .dead_letters(None, usize::MAX)?
        .into_iter()
        .filter(|l| l.tenant == tenant)
        .collect();
    if theirs.is_empty() {
        return Ok(());
    }
    target.stores.dead_letters.put_dead_letters(&theirs)?;
    for letter in &theirs {
        source
            .stores
            .dead_letters
            .remove_dead_letter(&letter.source, &letter.event_id)?;
    }
    Ok(())
}

/// What `realm` holds of `tenant`: its records and tombstones of `types`,
/// counted and hashed in record type and key order.
pub fn tally(
    realm: &Realm,
    types: &[String],
    tenant: &str,
    page: usize,
) -> Result<Tally, StoreError> {
    let mut types = types.to_vec();
    types.sort();
    let mut hash = Sha256::new();
    let mut records = 0u64;
    for record_type in &types {
        let mut after: Option<String> = None;
        loop {
            let rows =
                realm
                    .stores
                    .records
                    .tenant_records(record_type, tenant, after.as_deref(), page)?;
            let Some((last, _)) = rows.last() else {
                break;
            };
            after = Some(last.clone());
            for (key, record) in &rows {
                hash.update(record_type.as_bytes());
                hash.update([0]);
                hash.update(key.as_bytes());
                hash.update([0]);
                hash.update(record.version.to_be_bytes());
                match &record.body {
                    Some(body) => {
                        hash.update([1]);
                        hash.update(body.as_bytes());
                    }
                    None => hash.update([0]),
                }
                hash.update([0xff]);
                records += 1;
            }
        }
    }
    Ok(Tally {
        records,
        sha256: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    })
}
