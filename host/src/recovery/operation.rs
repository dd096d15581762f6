//! A restore as it is recorded in the store every node shares: what was
//! asked, who asked, where it stands, the restore points it left (each
//! realm's log end before it wrote: what undoing it goes back to) and what
//! it changed. While it runs it lists its tenants in `fences`, which every
//! node's directory reads to refuse their writes (`tenant_restoring`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where a restore stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreState {
    /// Computed, not written (a dry run; never recorded).
    DryRun,
    /// Its tenants' writes are being held off; every node hears of it.
    Fencing,
    /// Writing the difference.
    Writing,
    /// Done: the tenants are as of the instant.
    Restored,
    /// It stopped on an error; what it wrote stays (undo it, or run it again).
    Failed,
}

impl RestoreState {
    /// Whether it still holds its tenants (and a node works on it).
    pub fn running(self) -> bool {
        matches!(self, RestoreState::Fencing | RestoreState::Writing)
    }

    /// Its name in metrics and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreState::DryRun => "dry_run",
            RestoreState::Fencing => "fencing",
            RestoreState::Writing => "writing",
            RestoreState::Restored => "restored",
            RestoreState::Failed => "failed",
        }
    }
}

/// What a restore changes (or would) of one tenant's record type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// The tenant.
    pub tenant: String,
    /// The record type.
    pub record_type: String,
    /// Records written back as they were.
    pub upserts: u64,
    /// Records that did not exist (or were deleted) at the instant, deleted.
    pub deletes: u64,
    /// Records already as they were.
    pub unchanged: u64,
}

/// A restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restore {
    /// Always `restore`: what the directory reads to name the hold.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// The tenants it holds off while it runs (empty once it ends).
    #[serde(default)]
    pub fences: Vec<String>,
    /// The tenants restored.
    pub tenants: Vec<String>,
    /// Only these record types (`None`: every one).
    pub record_types: Option<Vec<String>>,
    /// The instant, as asked (an RFC 3339 time or a sequence number).
    pub at: String,
    /// The instant in each realm the tenants are in.
    pub at_by_realm: BTreeMap<String, crate::backup::At>,
    /// The restore this one undoes, if any.
    pub undoes: Option<String>,
    /// Who asked (the admin token's issuer and subject).
    pub by: String,
    /// Where it stands.
    pub state: RestoreState,
    /// The node process working on it, and when it last said so (ms).
    pub worker: String,
    /// See `worker`.
    pub heartbeat_ms: u64,
    /// How many times a node started on it (a crash's successor resumes).
    pub attempt: u32,
    /// When it was asked for (ms since the epoch).
    pub started_ms: u64,
    /// When it ended.
    pub ended_ms: Option<u64>,
    /// Each realm's change log end before it wrote: undoing it restores
    /// the tenants to these.
    pub restore_points: BTreeMap<String, u64>,
    /// Where each realm's past came from (backups, the change log).
    pub sources: BTreeMap<String, String>,
    /// What it changes, by tenant and record type.
    pub counts: Vec<Count>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Restore {
    /// The kind every restore's record names.
    pub const KIND: &'static str = "restore";

    /// Totals over every tenant and record type: upserts, deletes, unchanged.
    pub fn totals(&self) -> (u64, u64, u64) {
        self.counts.iter().fold((0, 0, 0), |(u, d, n), c| {
            (u + c.upserts, d + c.deletes, n + c.unchanged)
        })
    }
}
