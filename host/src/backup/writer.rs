//! Taking a realm's backups: a snapshot from one read transaction of its
//! store (copying a database file while it is written is unsafe), then its
//! change log shipped in segments as it grows. A file is written before the
//! manifest that lists it, so a crash between the two leaves a file nobody
//! lists, never a manifest naming a file that is not there; after a restart
//! the writer reads its chain back and ships from where the manifest ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::frames::{FileWriter, Kind};
use super::manifest::{self, Chain, FileEntry, Span};
use super::{BackupError, Keyring, Target};
use crate::config::BackupSettings;
use crate::store::{Change, ChangeKind, RecordId, Records, StoreError, StoredRecord, now_ms};
use crate::tenancy::Realm;

/// A snapshot part is closed once it holds this many bytes.
const PART_BYTES: usize = 32 << 20;
/// A frame is sealed once its entries weigh this much.
const FRAME_BYTES: usize = 256 << 10;
/// The most bytes of changes one segment reads from the log.
const SEGMENT_BYTES: usize = 64 << 20;

/// One record in a snapshot frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    /// Its record type.
    pub record_type: String,
    /// Its tenant.
    pub tenant: String,
    /// Its key.
    pub key: String,
    /// Its body; `None`: a tombstone.
    pub body: Option<String>,
    /// The provider's version.
    pub version: u64,
    /// The sequence number of its last change.
    pub seq: u64,
    /// When that change was committed.
    pub committed_at_ms: u64,
}

/// What every realm's writer shares.
pub(super) struct Context<'a> {
    pub runtime: &'a tokio::runtime::Runtime,
    pub target: &'a Target,
    pub keys: &'a Keyring,
    pub settings: &'a BackupSettings,
}

/// The backups of one realm.
#[derive(Debug)]
pub(super) struct RealmWriter {
    pub realm: Arc<Realm>,
    /// The chain being extended; `None` until read back or started.
    chain: Option<Chain>,
    /// The last sequence number shipped: what the change log may be trimmed
    /// up to.
    pub shipped: Arc<AtomicU64>,
    /// The log's end as its followers hear of it.
    grown: tokio::sync::watch::Receiver<u64>,
}

impl RealmWriter {
    pub fn new(realm: Arc<Realm>, shipped: Arc<AtomicU64>) -> Self {
        Self {
            grown: realm.stores.records.subscribe(),
            realm,
            chain: None,
            shipped,
        }
    }

    /// Changes committed and not shipped yet (0 when unknown).
    pub fn backlog(&self) -> u64 {
        let shipped = self.shipped.load(Ordering::Acquire);
        // No store call: what the log's followers are told.
        let last = *self.grown.borrow();
        last.saturating_sub(shipped)
    }

    fn records(&self) -> &Arc<dyn Records> {
        &self.realm.stores.records
    }

    /// Ships what the log grew by, starting a chain (with a snapshot) when
    /// there is none to extend or the current one is due for a fresh one.
    pub fn step(&mut self, ctx: &Context<'_>) -> Result<(), BackupError> {
        if self.chain.is_none() {
            self.chain = self.resume(ctx)?;
        }
        let due = self.chain.as_ref().is_none_or(|chain| {
            chain.has_segments()
                && (chain.changes() >= ctx.settings.snapshot_max_changes
                    || now_ms().saturating_sub(chain.base_ms)
                        >= ctx.settings.snapshot_interval.as_millis() as u64)
        });
        if due {
            let chain = self.snapshot(ctx)?;
            self.shipped.store(chain.base_seq, Ordering::Release);
            self.chain = Some(chain);
            super::prune::prune(ctx, &self.realm.name)?;
        }
        while self.ship(ctx)? {}
        Ok(())
    }

    /// The newest chain in the target, if this store can extend it: the
    /// log still holds every change after it (else a new chain starts).
    fn resume(&self, ctx: &Context<'_>) -> Result<Option<Chain>, BackupError> {
        let records = self.records();
        let instance = records.instance()?;
        let names = ctx
            .runtime
            .block_on(manifest::manifests(ctx.target, &self.realm.name))?;
        // The newest chain of this very store (another one's, say before a
        // lost disk, numbers another log).
        let mut newest: Option<Chain> = None;
        for name in names.iter().rev() {
            match ctx.runtime.block_on(manifest::load(ctx.target, name)) {
                Ok(chain) if chain.store == instance => {
                    newest = Some(chain);
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(realm = %self.realm.name, error = %e, "a backup chain cannot be read; it is not continued");
                    return Ok(None);
                }
            }
        }
        let Some(chain) = newest else {
            return Ok(None);
        };
        let (first, last) = (records.first_seq()?, records.last_seq()?);
        if first > chain.last_seq() + 1 || last < chain.last_seq() {
            tracing::warn!(realm = %self.realm.name, chain_end = chain.last_seq(), log_first = first, log_last = last, "the change log does not continue the newest backup chain; starting a new one");
            return Ok(None);
        }
        self.shipped.store(chain.last_seq(), Ordering::Release);
        Ok(Some(chain))
    }

    /// A new chain: the realm's records as of one read transaction.
    fn snapshot(&self, ctx: &Context<'_>) -> Result<Chain, BackupError> {
        let realm = self.realm.name.clone();
        let taken_ms = now_ms();
        let mut parts = Parts {
            ctx,
            realm: &realm,
            file: FileWriter::new(Kind::Snapshot, &realm, 0, 0),
            entries_in_file: 0,
            frame: Vec::new(),
            frame_tenant: None,
            frame_bytes: 0,
            written: Vec::new(),
            taken_ms,
        };
        let base_seq = self.records().scan(&mut |id, record| {
            parts.add(id, record).map_err(|e| StoreError::Io {
                operation: "backup",
                reason: e.to_string(),
            })
        })?;
        parts.seal_frame()?;
        parts.close_file()?;
        let mut chain = Chain::new(&realm, &self.records().instance()?, base_seq, taken_ms);
        for entry in &mut parts.written {
            entry.first_seq = base_seq;
            entry.last_seq = base_seq;
        }
        chain.snapshot = parts.written;
        ctx.runtime.block_on(chain.save(ctx.target))?;
        metrics::counter!(crate::metrics::BACKUP_FILES, "kind" => "snapshot")
            .increment(chain.snapshot.len() as u64);
        tracing::info!(realm = %realm, base_seq, parts = chain.snapshot.len(), records = chain.snapshot.iter().map(|p| p.entries).sum::<u64>(), "backup snapshot taken");
        Ok(chain)
    }

    /// Ships the next segment of the log, if it grew; says whether it did.
    fn ship(&mut self, ctx: &Context<'_>) -> Result<bool, BackupError> {
        let Some(chain) = self.chain.as_mut() else {
            return Ok(false);
        };
        let after = chain.last_seq();
        let records = self.realm.stores.records.clone();
        let changes =
            records.changes_within(after, ctx.settings.segment_max_changes, SEGMENT_BYTES)?;
        let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
            return Ok(false);
        };
        if first.seq != after + 1 {
            // Trimmed before it was shipped: this chain cannot go on.
            metrics::counter!(crate::metrics::BACKUP_GAPS).increment(1);
            tracing::error!(realm = %self.realm.name, shipped = after, log_first = first.seq, "changes left the log before they were backed up; starting a new chain");
            self.chain = None;
            return Ok(false);
        }
        let mut by_tenant: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
        for change in &changes {
            by_tenant.entry(&change.tenant).or_default().push(change);
        }
        let mut file = FileWriter::new(Kind::Segment, &chain.realm, first.seq, last.seq);
        for (tenant, theirs) in by_tenant {
            if theirs.iter().any(|c| c.kind == ChangeKind::Erase) {
                // Erased (its key destroyed, perhaps by another node).
                ctx.keys.forget(tenant);
            }
            let valueless = theirs
                .iter()
                .all(|c| matches!(c.kind, ChangeKind::Invalidate | ChangeKind::Erase));
            let key = if valueless {
                // Nothing to restore: no key is made for it, and a tenant
                // without one (erased, read-through only) is left out.
                match ctx.runtime.block_on(ctx.keys.existing(tenant))? {
                    Some(key) => key,
                    None => continue,
                }
            } else {
                ctx.runtime.block_on(ctx.keys.for_tenant(tenant))?
            };
            let plain = serde_json::to_vec(&theirs).expect("changes encode");
            file.frame(&key, &plain);
        }
        let (bytes, sha256) = file.finish();
        let span = Span {
            first_seq: first.seq,
            last_seq: last.seq,
            first_ms: first.committed_at_ms,
            last_ms: last.committed_at_ms,
            entries: changes.len() as u64,
        };
        let entry = ctx.runtime.block_on(FileEntry::write(
            ctx.target,
            &chain.realm,
            Kind::Segment,
            bytes,
            sha256,
            span,
        ))?;
        ctx.runtime.block_on(chain.push(ctx.target, entry))?;
        ctx.runtime.block_on(chain.save(ctx.target))?;
        self.shipped.store(last.seq, Ordering::Release);
        metrics::counter!(crate::metrics::BACKUP_FILES, "kind" => "segment").increment(1);
        metrics::gauge!(crate::metrics::BACKUP_SHIPPED_SEQ, "realm" => chain.realm.clone())
            .set(last.seq as f64);
        Ok(true)
    }
}

/// A snapshot being written: the current part, the current frame (one
/// tenant's entries), the parts written.
struct Parts<'a, 'c> {
    ctx: &'a Context<'c>,
    realm: &'a str,
    file: FileWriter,
    entries_in_file: u64,
    frame: Vec<SnapshotEntry>,
    frame_tenant: Option<String>,
    frame_bytes: usize,
    written: Vec<FileEntry>,
    taken_ms: u64,
}

impl Parts<'_, '_> {
    fn add(&mut self, id: RecordId, record: StoredRecord) -> Result<(), BackupError> {
        if self.frame_tenant.as_deref() != Some(id.tenant.as_str())
            || self.frame_bytes >= FRAME_BYTES
        {
            self.seal_frame()?;
            if self.file.len() >= PART_BYTES {
                self.close_file()?;
            }
            self.frame_tenant = Some(id.tenant.clone());
        }
        self.frame_bytes += id.key.len() + record.body.as_ref().map_or(0, String::len) + 64;
        self.frame.push(SnapshotEntry {
            record_type: id.record_type,
            tenant: id.tenant,
            key: id.key,
            body: record.body,
            version: record.version,
            seq: record.seq,
            committed_at_ms: record.committed_at_ms,
        });
        Ok(())
    }

    fn seal_frame(&mut self) -> Result<(), BackupError> {
        let Some(tenant) = self.frame_tenant.take() else {
            return Ok(());
        };
        if self.frame.is_empty() {
            return Ok(());
        }
        let key = self
            .ctx
            .runtime
            .block_on(self.ctx.keys.for_tenant(&tenant))?;
        let plain = serde_json::to_vec(&self.frame).expect("records encode");
        self.file.frame(&key, &plain);
        self.entries_in_file += self.frame.len() as u64;
        self.frame.clear();
        self.frame_bytes = 0;
        Ok(())
    }

    fn close_file(&mut self) -> Result<(), BackupError> {
        let file = std::mem::replace(
            &mut self.file,
            FileWriter::new(Kind::Snapshot, self.realm, 0, 0),
        );
        if file.frames == 0 && !self.written.is_empty() {
            return Ok(());
        }
        let (bytes, sha256) = file.finish();
        // Its sequence numbers are the chain's base, known once the scan ends.
        let span = Span {
            first_seq: 0,
            last_seq: 0,
            first_ms: self.taken_ms,
            last_ms: self.taken_ms,
            entries: self.entries_in_file,
        };
        let entry = self.ctx.runtime.block_on(FileEntry::write(
            self.ctx.target,
            self.realm,
            Kind::Snapshot,
            bytes,
            sha256,
            span,
        ))?;
        self.written.push(entry);
        self.entries_in_file = 0;
        Ok(())
    }
}
