//! Point-in-time restore of chosen tenants into the live system.
//!
//! A restore holds its tenants' writes off (recorded where every node reads
//! it; it waits two directory refresh intervals so every node has heard),
//! notes each realm's log end as its restore point, rebuilds the tenants'
//! records as of the instant, and writes the difference through the normal
//! write path (`Records::apply`, overwriting versions), so the change log,
//! the caches, sidecars and other nodes follow. Every other tenant reads
//! and writes throughout. Undoing a restore restores the same tenants to
//! its restore points.
//!
//! A node that stops mid-restore leaves its heartbeat to age; after
//! [`LEASE`] any node resumes it: the plan is computed again against the
//! live records (what was written already is unchanged now), its writes
//! under event ids of the new attempt, and the first attempt's restore
//! points kept.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::audit;
use super::operation::{Restore, RestoreState};
use super::plan::plan;
use super::{Engine, RecoveryError};
use crate::backup::{At, Wanted};
use crate::key::TenantId;
use crate::store::{EventWrite, now_ms};

/// The ingestion source the change log names for a restore's writes.
pub const RESTORE_SOURCE: &str = "droid-restore";

/// How long a restore's worker may stay silent before another node takes
/// it over.
pub const LEASE: Duration = Duration::from_secs(10);

/// What a restore is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// The tenants.
    pub tenants: Vec<String>,
    /// Only these record types (`None`: every one).
    #[serde(default)]
    pub record_types: Option<Vec<String>>,
    /// The instant: an RFC 3339 time, or a sequence number of the tenants'
    /// realm's change log.
    pub at: String,
    /// Only say what would change.
    #[serde(default)]
    pub dry_run: bool,
}

/// `text` as an instant: digits are a sequence number, anything else an
/// RFC 3339 time.
pub fn parse_at(text: &str) -> Result<At, RecoveryError> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map(At::Seq).map_err(|_| {
            RecoveryError::Invalid(format!("at: {text:?} is too large a sequence number"))
        });
    }
    crate::tenancy::migration::parse_time("at", text)
        .map(At::Time)
        .map_err(|e| RecoveryError::Invalid(e.to_string()))
}

impl Engine {
    /// Every restore recorded, newest first.
    pub fn list(&self) -> Result<Vec<Restore>, RecoveryError> {
        let mut all: Vec<Restore> = self.stored()?.into_iter().map(|(r, _)| r).collect();
        all.sort_by(|a, b| b.started_ms.cmp(&a.started_ms).then(a.id.cmp(&b.id)));
        Ok(all)
    }

    /// The restore `id`.
    pub fn get(&self, id: &str) -> Result<Restore, RecoveryError> {
        self.stored_one(id).map(|(r, _)| r)
    }

    fn stored(&self) -> Result<Vec<(Restore, u64)>, RecoveryError> {
        self.operations(Restore::KIND)
    }

    fn stored_one(&self, id: &str) -> Result<(Restore, u64), RecoveryError> {
        self.stored()?
            .into_iter()
            .find(|(r, _)| r.id == id)
            .ok_or_else(|| RecoveryError::Unknown(id.to_owned()))
    }

    /// Runs `request` for `by` to its end (or only computes it, for a dry
    /// run); returns the restore. Blocking.
    pub fn run(&self, request: &RestoreRequest, by: &str) -> Result<Restore, RecoveryError> {
        let restore = self.prepare(request, None, by)?;
        self.carry_out(restore, request.dry_run)
    }

    /// Undoes restore `id`: its tenants go back to its restore points.
    pub fn undo(&self, id: &str, by: &str, dry_run: bool) -> Result<Restore, RecoveryError> {
        let (done, _) = self.stored_one(id)?;
        if done.state.running() {
            return Err(RecoveryError::State(format!(
                "restore {id} is still {}; undo it once it ends",
                done.state.as_str()
            )));
        }
        if done.restore_points.is_empty() {
            return Err(RecoveryError::State(format!(
                "restore {id} wrote nothing: there is nothing to undo"
            )));
        }
        let request = RestoreRequest {
            tenants: done.tenants.clone(),
            record_types: done.record_types.clone(),
            at: format!("restore point of {id}"),
            dry_run,
        };
        let mut restore = self.prepare(&request, Some(&done.restore_points), by)?;
        restore.undoes = Some(id.to_owned());
        self.carry_out(restore, dry_run)
    }

    /// Checks `request` and makes its record (not stored yet).
    fn prepare(
        &self,
        request: &RestoreRequest,
        points: Option<&BTreeMap<String, u64>>,
        by: &str,
    ) -> Result<Restore, RecoveryError> {
        let mut tenants = BTreeSet::new();
        for tenant in &request.tenants {
            TenantId::parse(tenant)
                .map_err(|e| RecoveryError::Invalid(format!("tenants: {tenant:?}: {e}")))?;
            tenants.insert(tenant.clone());
        }
        if tenants.is_empty() {
            return Err(RecoveryError::Invalid(
                "tenants: name at least one tenant to restore".to_owned(),
            ));
        }
        if let Some(types) = &request.record_types
            && types.is_empty()
        {
            return Err(RecoveryError::Invalid(
                "record_types: name at least one, or leave it out for every record type".to_owned(),
            ));
        }
        let directory = &self.realms.directory;
        directory.refresh()?;
        let mut realms: BTreeSet<String> = BTreeSet::new();
        for tenant in &tenants {
            self.not_held(tenant)?;
            realms.insert(directory.realm_of(tenant));
        }
        let at_by_realm: BTreeMap<String, At> = match points {
            Some(points) => realms
                .iter()
                .map(|realm| {
                    points.get(realm).map(|&p| (realm.clone(), At::Seq(p))).ok_or_else(|| {
                        RecoveryError::State(format!(
                            "the restore left no restore point in realm {realm:?}, where its tenants are now"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
            None => {
                let at = parse_at(&request.at)?;
                if matches!(at, At::Seq(_)) && realms.len() > 1 {
                    return Err(RecoveryError::Invalid(format!(
                        "at: a sequence number belongs to one realm's change log, and these tenants are in {}; give a time instead",
                        realms.iter().cloned().collect::<Vec<_>>().join(", ")
                    )));
                }
                realms.iter().map(|r| (r.clone(), at)).collect()
            }
        };
        for (realm, at) in &at_by_realm {
            let Some(live) = self.realms.get(realm) else {
                return Err(RecoveryError::Invalid(format!(
                    "realm {realm:?} is not declared on this node"
                )));
            };
            match at {
                At::Seq(s) if *s > live.stores.records.last_seq()? => {
                    return Err(RecoveryError::Invalid(format!(
                        "at: realm {realm:?}'s change log ends before seq {s}"
                    )));
                }
                At::Time(t) if *t > now_ms() => {
                    return Err(RecoveryError::Invalid(
                        "at: that instant is in the future".to_owned(),
                    ));
                }
                _ => {}
            }
        }
        let mut id = [0u8; 6];
        let _ = getrandom::fill(&mut id);
        Ok(Restore {
            kind: Restore::KIND.to_owned(),
            id: format!("rst-{}", crate::backup::keys::encode_hex(&id)),
            fences: Vec::new(),
            tenants: tenants.into_iter().collect(),
            record_types: request.record_types.clone(),
            at: request.at.clone(),
            at_by_realm,
            undoes: None,
            by: by.to_owned(),
            state: RestoreState::DryRun,
            worker: self.worker.clone(),
            heartbeat_ms: now_ms(),
            attempt: 1,
            started_ms: now_ms(),
            ended_ms: None,
            restore_points: BTreeMap::new(),
            sources: BTreeMap::new(),
            counts: Vec::new(),
            error: None,
        })
    }

    /// Runs `restore` (recorded from its first step) or, for a dry run,
    /// only plans it.
    fn carry_out(&self, mut restore: Restore, dry_run: bool) -> Result<Restore, RecoveryError> {
        if dry_run {
            self.write(&mut restore, None)?;
            metrics::counter!(crate::metrics::RESTORES, "outcome" => "dry_run").increment(1);
            return Ok(restore);
        }
        restore.state = RestoreState::Fencing;
        restore.fences = restore.tenants.clone();
        let mut revision = self.save(&restore, 0)?;
        self.wait_for_the_hold();
        self.finish(restore, &mut revision)
    }

    /// Writes `restore` from its restore points on, and records its end.
    fn finish(&self, mut restore: Restore, revision: &mut u64) -> Result<Restore, RecoveryError> {
        let outcome = self.write(&mut restore, Some(revision));
        restore.fences.clear();
        restore.ended_ms = Some(now_ms());
        let result = match &outcome {
            Ok(()) => {
                restore.state = RestoreState::Restored;
                "restored"
            }
            Err(e) => {
                restore.state = RestoreState::Failed;
                restore.error = Some(e.to_string());
                "failed"
            }
        };
        *revision = self.save(&restore, *revision)?;
        let (upserts, deletes, unchanged) = restore.totals();
        metrics::counter!(crate::metrics::RESTORES, "outcome" => if restore.undoes.is_some() && result == "restored" { "undone" } else { result }).increment(1);
        audit::append(
            self.realms.directory.recovery().as_ref(),
            &audit::Entry {
                action: if restore.undoes.is_some() {
                    "restore_undo"
                } else {
                    "restore"
                },
                id: &restore.id,
                by: &restore.by,
                outcome: result,
                details: serde_json::json!({
                    "tenants": restore.tenants,
                    "record_types": restore.record_types,
                    "at": restore.at,
                    "undoes": restore.undoes,
                    "restore_points": restore.restore_points,
                    "upserts": upserts,
                    "deletes": deletes,
                    "unchanged": unchanged,
                    "error": restore.error,
                }),
            },
        );
        match outcome {
            Ok(()) => {
                tracing::info!(restore = %restore.id, tenants = ?restore.tenants, at = %restore.at, upserts, deletes, unchanged, "tenants restored");
                Ok(restore)
            }
            Err(e) => {
                tracing::error!(restore = %restore.id, error = %e, "a restore failed; its tenants are released");
                Err(e)
            }
        }
    }

    /// Plans each realm's part and, unless `revision` is `None` (a dry run),
    /// writes it, noting restore points first and heartbeats as it goes.
    fn write(
        &self,
        restore: &mut Restore,
        mut revision: Option<&mut u64>,
    ) -> Result<(), RecoveryError> {
        restore.counts.clear();
        let ats = restore.at_by_realm.clone();
        for (realm_name, at) in ats {
            let realm = self
                .realms
                .get(&realm_name)
                .ok_or_else(|| {
                    RecoveryError::Invalid(format!("realm {realm_name:?} is not declared"))
                })?
                .clone();
            let tenants: BTreeSet<String> = restore
                .tenants
                .iter()
                .filter(|t| self.realms.directory.realm_of(t) == realm_name)
                .cloned()
                .collect();
            if let Some(revision) = revision.as_deref_mut()
                && !restore.restore_points.contains_key(&realm_name)
            {
                restore
                    .restore_points
                    .insert(realm_name.clone(), realm.stores.records.last_seq()?);
                restore.state = RestoreState::Writing;
                *revision = self.save(restore, *revision)?;
            }
            let wanted_types: Option<BTreeSet<String>> = restore
                .record_types
                .as_ref()
                .map(|t| t.iter().cloned().collect());
            let rebuilt = crate::backup::read::rebuild(
                // Called off the async workers, inside the runtime's context.
                &tokio::runtime::Handle::current(),
                self.backups.as_ref().map(|b| (&b.target, &b.keys)),
                &realm.stores.records,
                Wanted {
                    realm: &realm_name,
                    tenants: &tenants,
                    record_types: wanted_types.as_ref(),
                    at,
                },
            )?;
            restore
                .sources
                .insert(realm_name.clone(), rebuilt.source.clone());
            let types: BTreeSet<String> = match &wanted_types {
                Some(types) => types.clone(),
                None => (self.record_types)()
                    .into_iter()
                    .chain(rebuilt.records.keys().map(|id| id.record_type.clone()))
                    .collect(),
            };
            let plan = plan(
                realm.stores.records.as_ref(),
                &tenants,
                &types,
                &rebuilt.records,
            )?;
            restore.counts.extend(plan.counts.iter().cloned());
            let Some(revision) = revision.as_deref_mut() else {
                continue;
            };
            for (n, ops) in plan.ops.chunks(self.batch.max(1)).enumerate() {
                let event = EventWrite {
                    source: RESTORE_SOURCE.to_owned(),
                    event_id: format!("{}/{}/{realm_name}/{n}", restore.id, restore.attempt),
                    occurred_at_ms: now_ms(),
                    ops: ops.to_vec(),
                    overwrite: true,
                };
                realm.stores.records.apply(std::slice::from_ref(&event))?;
                for op in ops {
                    let kind = if matches!(op, crate::store::Op::Upsert { .. }) {
                        "upsert"
                    } else {
                        "delete"
                    };
                    metrics::counter!(crate::metrics::RESTORED_RECORDS, "op" => kind).increment(1);
                }
                restore.heartbeat_ms = now_ms();
                *revision = self.save(restore, *revision)?;
            }
        }
        // In tenant order, whichever realm each is in.
        restore
            .counts
            .sort_by(|a, b| (&a.tenant, &a.record_type).cmp(&(&b.tenant, &b.record_type)));
        Ok(())
    }

    /// Records `restore` at `expected`; its new revision.
    fn save(&self, restore: &Restore, expected: u64) -> Result<u64, RecoveryError> {
        self.save_operation(&restore.id, restore, expected)
    }

    /// Resumes every restore and erasure whose worker went silent past
    /// [`LEASE`]. Blocking; what the recovery thread calls.
    pub fn resume_stale(&self) {
        self.resume_stale_erasures();
        self.resume_stale_restores();
    }

    fn resume_stale_restores(&self) {
        let stale: Vec<(Restore, u64)> = match self.stored() {
            Ok(all) => all
                .into_iter()
                .filter(|(r, _)| {
                    // This process's own restores run on their request's thread.
                    r.state.running()
                        && r.worker != self.worker
                        && now_ms().saturating_sub(r.heartbeat_ms) > LEASE.as_millis() as u64
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the recorded restores");
                return;
            }
        };
        for (mut restore, revision) in stale {
            let was = restore.worker.clone();
            restore.worker = self.worker.clone();
            restore.attempt += 1;
            restore.heartbeat_ms = now_ms();
            let Ok(mut revision) = self.save(&restore, revision) else {
                continue;
            };
            tracing::warn!(restore = %restore.id, previous_worker = %was, attempt = restore.attempt, "resuming a restore whose worker went silent");
            if let Err(e) = self.finish(restore, &mut revision) {
                tracing::error!(error = %e, "a resumed restore failed");
            }
        }
    }
}
