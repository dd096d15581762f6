//! Erasure of a tenant, with maker-checker: one admin proposes it, a
//! different admin (another token issuer: one issuer cannot approve its own
//! proposal under another subject) approves it within
//! `tenancy.erase_approval_window_s`, else it expires. Then the tenant's
//! writes are held off (`tenant_erasing`) and droid removes, from every
//! realm's store, its records and tombstones (each leaving an invalidation
//! so followers drop them), the values of its change-log entries (redacted,
//! sequence numbers kept), its dead letters and staged snapshot events;
//! logs a tenant-erased marker every node and sidecar drops the tenant on;
//! compacts the stores so removed values leave their files; removes its pin;
//! and destroys its backup data key, which makes every backup of it
//! unreadable. The report names every place cleaned, with counts.
//!
//! Every step can run again without harm: a node that stops mid-erasure
//! leaves its heartbeat to age, and another (or it, restarted) carries the
//! erasure through.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::audit;
use super::{Engine, RecoveryError};
use crate::key::TenantId;
use crate::store::now_ms;

/// An admin as a request proved it: the token's issuer and subject
/// (`None` without authentication, which can never approve).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admin {
    /// The token's issuer.
    pub issuer: Option<String>,
    /// Its subject.
    pub subject: Option<String>,
}

impl std::fmt::Display for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.issuer, &self.subject) {
            (Some(i), Some(s)) if i != s => write!(f, "{i} ({s})"),
            (Some(i), _) => f.write_str(i),
            (None, _) => f.write_str("anonymous (--insecure-no-auth)"),
        }
    }
}

/// Where an erasure stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureState {
    /// Waiting for a second admin's approval.
    Proposed,
    /// Approved; the tenant is being erased.
    Erasing,
    /// Done: nothing of the tenant remains.
    Erased,
    /// Not approved in time; nothing was done.
    Expired,
    /// It stopped on an error (what it removed stays removed; approve... it
    /// again by proposing anew).
    Failed,
}

impl ErasureState {
    /// Its name in answers.
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureState::Proposed => "proposed",
            ErasureState::Erasing => "erasing",
            ErasureState::Erased => "erased",
            ErasureState::Expired => "expired",
            ErasureState::Failed => "failed",
        }
    }
}

/// One place an erasure cleaned, and how much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleaned {
    /// Where (`realm eu`, `directory`, `backups`, `caches`).
    pub place: String,
    /// What (`records`, `change log entries redacted`, ...).
    pub what: String,
    /// How many.
    pub count: u64,
}

/// An erasure, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    /// Always `erase`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// The tenants it holds off while erasing (empty otherwise).
    #[serde(default)]
    pub fences: Vec<String>,
    /// The tenant.
    pub tenant: String,
    /// Why, as the proposer said.
    pub reason: Option<String>,
    /// Who proposed it.
    pub proposed_by: Admin,
    /// When (ms since the epoch).
    pub proposed_ms: u64,
    /// When the proposal expires unless approved.
    pub expires_ms: u64,
    /// Who approved it.
    pub approved_by: Option<Admin>,
    /// When.
    pub approved_ms: Option<u64>,
    /// Where it stands.
    pub state: ErasureState,
    /// The node process carrying it out, and when it last said so.
    pub worker: String,
    /// See `worker`.
    pub heartbeat_ms: u64,
    /// How many times a node started carrying it out.
    pub attempt: u32,
    /// When it ended.
    pub ended_ms: Option<u64>,
    /// Every place cleaned.
    pub report: Vec<Cleaned>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Erasure {
    /// The kind every erasure's record names.
    pub const KIND: &'static str = "erase";

    /// Its state now: a proposal past its expiry is expired.
    fn current(mut self) -> Self {
        if self.state == ErasureState::Proposed && now_ms() > self.expires_ms {
            self.state = ErasureState::Expired;
        }
        self
    }
}

/// Records removed per transaction.
const PAGE: usize = 1_000;

impl Engine {
    /// Every erasure, newest first.
    pub fn erasures(&self) -> Result<Vec<Erasure>, RecoveryError> {
        let mut all: Vec<Erasure> = self
            .operations::<Erasure>(Erasure::KIND)?
            .into_iter()
            .map(|(e, _)| e.current())
            .collect();
        all.sort_by(|a, b| b.proposed_ms.cmp(&a.proposed_ms).then(a.id.cmp(&b.id)));
        Ok(all)
    }

    /// The erasure `id`.
    pub fn erasure(&self, id: &str) -> Result<Erasure, RecoveryError> {
        self.erasure_at(id).map(|(e, _)| e)
    }

    fn erasure_at(&self, id: &str) -> Result<(Erasure, u64), RecoveryError> {
        self.operations::<Erasure>(Erasure::KIND)?
            .into_iter()
            .find(|(e, _)| e.id == id)
            .map(|(e, r)| (e.current(), r))
            .ok_or_else(|| RecoveryError::Unknown(id.to_owned()))
    }

    /// Proposes erasing `tenant`: nothing happens until another admin approves.
    pub fn propose_erasure(
        &self,
        tenant: &str,
        reason: Option<String>,
        by: Admin,
    ) -> Result<Erasure, RecoveryError> {
        TenantId::parse(tenant).map_err(|e| RecoveryError::Invalid(format!("tenant {e}")))?;
        if let Some(open) = self.erasures()?.into_iter().find(|e| {
            e.tenant == tenant && matches!(e.state, ErasureState::Proposed | ErasureState::Erasing)
        }) {
            return Err(RecoveryError::State(format!(
                "erasure {} of tenant {tenant:?} is already {}",
                open.id,
                open.state.as_str()
            )));
        }
        let now = now_ms();
        let mut id = [0u8; 6];
        let _ = getrandom::fill(&mut id);
        let erasure = Erasure {
            kind: Erasure::KIND.to_owned(),
            id: format!("era-{}", crate::backup::keys::encode_hex(&id)),
            fences: Vec::new(),
            tenant: tenant.to_owned(),
            reason,
            proposed_by: by,
            proposed_ms: now,
            expires_ms: now + self.erase_approval_window.as_millis() as u64,
            approved_by: None,
            approved_ms: None,
            state: ErasureState::Proposed,
            worker: String::new(),
            heartbeat_ms: now,
            attempt: 0,
            ended_ms: None,
            report: Vec::new(),
            error: None,
        };
        self.save_operation(&erasure.id, &erasure, 0)?;
        self.audit_erasure(
            "erase_propose",
            &erasure,
            &erasure.proposed_by.to_string(),
            "proposed",
        );
        Ok(erasure)
    }

    /// Approves erasure `id` as `by` (not its proposer) and carries it out.
    /// Blocking.
    pub fn approve_erasure(&self, id: &str, by: Admin) -> Result<Erasure, RecoveryError> {
        let (mut erasure, revision) = self.erasure_at(id)?;
        match erasure.state {
            ErasureState::Proposed => {}
            ErasureState::Expired => {
                self.audit_erasure("erase_approve", &erasure, &by.to_string(), "expired");
                return Err(RecoveryError::Expired(format!(
                    "erasure {id} expired at {} unapproved; propose it again",
                    crate::tenancy::migration::rfc3339(erasure.expires_ms)
                )));
            }
            other => {
                return Err(RecoveryError::State(format!(
                    "erasure {id} is {}, not waiting for an approval",
                    other.as_str()
                )));
            }
        }
        if by.issuer.is_none() || by.issuer == erasure.proposed_by.issuer {
            self.audit_erasure("erase_approve", &erasure, &by.to_string(), "refused");
            return Err(RecoveryError::SameAdmin(format!(
                "erasure {id} was proposed by {}: another admin (a token of another issuer) must approve it",
                erasure.proposed_by
            )));
        }
        self.realms.directory.refresh()?;
        self.not_held(&erasure.tenant)?;
        erasure.approved_by = Some(by.clone());
        erasure.approved_ms = Some(now_ms());
        erasure.state = ErasureState::Erasing;
        erasure.fences = vec![erasure.tenant.clone()];
        erasure.worker = self.worker.clone();
        erasure.attempt = 1;
        erasure.heartbeat_ms = now_ms();
        let mut revision = self.save_operation(&erasure.id, &erasure, revision)?;
        self.audit_erasure("erase_approve", &erasure, &by.to_string(), "approved");
        self.wait_for_the_hold();
        self.finish_erasure(erasure, &mut revision)
    }

    /// Carries `erasure` out and records its end.
    fn finish_erasure(
        &self,
        mut erasure: Erasure,
        revision: &mut u64,
    ) -> Result<Erasure, RecoveryError> {
        let outcome = self.erase_everywhere(&mut erasure);
        erasure.fences.clear();
        erasure.ended_ms = Some(now_ms());
        let result = match &outcome {
            Ok(()) => {
                erasure.state = ErasureState::Erased;
                "erased"
            }
            Err(e) => {
                erasure.state = ErasureState::Failed;
                erasure.error = Some(e.to_string());
                "failed"
            }
        };
        *revision = self.save_operation(&erasure.id, &erasure, *revision)?;
        let by = erasure
            .approved_by
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        self.audit_erasure("erase", &erasure, &by, result);
        match outcome {
            Ok(()) => {
                tracing::warn!(erasure = %erasure.id, tenant = %erasure.tenant, report = ?erasure.report, "tenant erased");
                Ok(erasure)
            }
            Err(e) => {
                tracing::error!(erasure = %erasure.id, error = %e, "an erasure failed; approve a new proposal to finish it");
                Err(e)
            }
        }
    }

    /// Removes the tenant from every realm's store, the directory, the
    /// backups' keys and this node's caches. Each step is safe to repeat.
    fn erase_everywhere(&self, erasure: &mut Erasure) -> Result<(), RecoveryError> {
        let tenant = erasure.tenant.clone();
        erasure.report.clear();
        let mut note = |place: &str, what: &str, count: u64| {
            erasure.report.push(Cleaned {
                place: place.to_owned(),
                what: what.to_owned(),
                count,
            });
        };
        for realm in self.realms.all() {
            let place = format!("realm {}", realm.name);
            let stores = &realm.stores;
            // Every record type it has records of, configured or not.
            let mut types: BTreeSet<String> = (self.record_types)().into_iter().collect();
            stores.records.scan(&mut |id, _| {
                if id.tenant == tenant {
                    types.insert(id.record_type);
                }
                Ok(())
            })?;
            let mut removed = 0u64;
            for record_type in &types {
                loop {
                    let purged = stores.records.purge_tenant(record_type, &tenant, PAGE)?;
                    if purged.is_empty() {
                        break;
                    }
                    removed += purged.len() as u64;
                }
            }
            note(&place, "records and tombstones removed", removed);
            let redacted = stores.records.redact_changes(&tenant)?;
            note(&place, "change log entries redacted", redacted);
            let mut letters = 0u64;
            for letter in stores.dead_letters.dead_letters(None, usize::MAX)? {
                if letter.tenant == tenant
                    && stores
                        .dead_letters
                        .remove_dead_letter(&letter.source, &letter.event_id)?
                {
                    letters += 1;
                }
            }
            note(&place, "dead letters removed", letters);
            let staged = stores.snapshots.drop_staged(&tenant)?;
            note(&place, "staged snapshot events removed", staged);
            let marker = stores.records.log_erasure(&tenant)?;
            note(&place, "tenant-erased marker logged at seq", marker);
            stores.records.compact()?;
            note(&place, "store files compacted", 1);
        }
        let unpinned = self.realms.directory.store().unpin(&tenant)?;
        self.realms.directory.reload()?;
        self.realms.base.records.compact()?;
        note("directory", "pin removed", u64::from(unpinned));
        if let Some(backups) = &self.backups {
            let runtime = tokio::runtime::Handle::current();
            let destroyed = runtime.block_on(backups.keys.destroy(&tenant))?;
            note("backups", "data key destroyed", u64::from(destroyed));
        }
        (self.drop_cached)(&tenant);
        note(
            "caches",
            "dropped on this node (others and sidecars on the marker)",
            1,
        );
        Ok(())
    }

    /// Carries through every erasure whose worker went silent past the lease.
    pub(super) fn resume_stale_erasures(&self) {
        let stale: Vec<(Erasure, u64)> = match self.operations::<Erasure>(Erasure::KIND) {
            Ok(all) => all
                .into_iter()
                .filter(|(e, _)| {
                    e.state == ErasureState::Erasing
                        && e.worker != self.worker
                        && now_ms().saturating_sub(e.heartbeat_ms)
                            > super::restore::LEASE.as_millis() as u64
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the recorded erasures");
                return;
            }
        };
        for (mut erasure, revision) in stale {
            erasure.worker = self.worker.clone();
            erasure.attempt += 1;
            erasure.heartbeat_ms = now_ms();
            let Ok(mut revision) = self.save_operation(&erasure.id, &erasure, revision) else {
                continue;
            };
            tracing::warn!(erasure = %erasure.id, attempt = erasure.attempt, "carrying through an erasure whose worker went silent");
            if let Err(e) = self.finish_erasure(erasure, &mut revision) {
                tracing::error!(error = %e, "a resumed erasure failed");
            }
        }
    }

    fn audit_erasure(&self, action: &str, erasure: &Erasure, by: &str, outcome: &str) {
        audit::append(
            self.realms.directory.recovery().as_ref(),
            &audit::Entry {
                action,
                id: &erasure.id,
                by,
                outcome,
                details: serde_json::json!({
                    "tenant": erasure.tenant,
                    "reason": erasure.reason,
                    "proposed_by": erasure.proposed_by.to_string(),
                    "report": erasure.report,
                }),
            },
        );
    }
}
