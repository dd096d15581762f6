//! A realm migration and its lifecycle, as seed 002 tells it: scheduled
//! with a window and a target realm; started when the window begins
//! (Copying: a worker copies the tenant's records to the target); Ready to
//! commit once the copy is verified; committed (Committing: checked again,
//! the directory flipped, the source's copy deleted; Committed); or, on a
//! failure at any step (Failed), rolled back (Rolling back: the target's
//! copy deleted; Rolled back), the source serving as before.
//!
//! Every step is a change of the recorded migration at a known revision,
//! so two nodes cannot both take one; the work itself is the [`super::worker`]'s,
//! which holds a lease on the migration while it works.

use serde::{Deserialize, Serialize};

/// Where a migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MigrationState {
    /// Recorded; waiting for its window's start.
    #[serde(rename = "Scheduled")]
    Scheduled,
    /// The tenant's records are being copied to the target realm.
    #[serde(rename = "Copying")]
    Copying,
    /// Copied and verified; waiting for the commit.
    #[serde(rename = "Ready-to-commit")]
    ReadyToCommit,
    /// Being committed: checked again, the tenant moved, the source cleared.
    #[serde(rename = "Committing")]
    Committing,
    /// Done: the tenant lives in the target realm.
    #[serde(rename = "Committed")]
    Committed,
    /// A step failed; the source still serves. Roll it back.
    #[serde(rename = "Failed")]
    Failed,
    /// The target's copy is being removed.
    #[serde(rename = "Rolling back")]
    RollingBack,
    /// Undone: the tenant lives in the source realm as before.
    #[serde(rename = "Rolled back")]
    RolledBack,
}

impl MigrationState {
    /// Whether nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Committed | Self::RolledBack)
    }

    /// Whether the tenant's writes are held off: from the copy to the
    /// commit's end, so what was copied is what the source holds.
    pub fn fences_writes(self) -> bool {
        matches!(self, Self::Copying | Self::ReadyToCommit | Self::Committing)
    }

    /// Whether a worker has something to do in it.
    pub fn has_work(self) -> bool {
        matches!(self, Self::Copying | Self::Committing | Self::RollingBack)
    }

    /// Its name, as the seed writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "Scheduled",
            Self::Copying => "Copying",
            Self::ReadyToCommit => "Ready-to-commit",
            Self::Committing => "Committing",
            Self::Committed => "Committed",
            Self::Failed => "Failed",
            Self::RollingBack => "Rolling back",
            Self::RolledBack => "Rolled back",
        }
    }
}

/// What a copy saw of the tenant's records on one side: how many (records
/// and tombstones), and a SHA-256 over each one's record type, key,
/// version and body in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Records and tombstones.
    pub records: u64,
    /// The SHA-256 (hex).
    pub sha256: String,
}

/// One realm migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// Its id.
    pub id: String,
    /// The tenant it moves.
    pub tenant: String,
    /// Where the tenant lived when it was scheduled.
    pub source_realm: String,
    /// Where it goes.
    pub target_realm: String,
    /// The window's start (ms since the epoch).
    pub window_start_ms: u64,
    /// The window's end (ms since the epoch).
    pub window_end_ms: u64,
    /// Where it is.
    pub state: MigrationState,
    /// When it was scheduled (ms since the epoch).
    pub scheduled_at_ms: u64,
    /// When it last changed (ms since the epoch).
    pub updated_at_ms: u64,
    /// Records copied so far (or removed, while rolling back or committing).
    pub copied: u64,
    /// Where the copy stands: the record type and the last key copied.
    pub cursor: Option<(String, String)>,
    /// What the copy verified, on both sides.
    pub tally: Option<Tally>,
    /// Whether the directory was flipped to the target (past this, the
    /// migration only goes forward).
    pub flipped: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Every state it was in, with when it got there.
    pub history: Vec<(MigrationState, u64)>,
    /// The node working on it, if one is.
    pub worker: Option<String>,
    /// Until when that node's claim holds without news from it.
    pub lease_until_ms: u64,
}

impl Migration {
    /// Moves it to `state` at `now`.
    pub fn enter(&mut self, state: MigrationState, now: u64) {
        self.state = state;
        self.updated_at_ms = now;
        self.history.push((state, now));
    }

    /// Whether a node named `node` may take its work at `now`: no one holds
    /// it, `node` does, or the holder's lease ran out.
    pub fn claimable_by(&self, node: &str, now: u64) -> bool {
        match &self.worker {
            None => true,
            Some(holder) => holder == node || self.lease_until_ms < now,
        }
    }
}

/// Why a migration request is refused: each a stable code of the API.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// The directory could not be read or written.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Another node changed the migration at the same moment.
    #[error("migration {0} changed meanwhile; ask again")]
    Raced(String),
    /// The target realm is not declared.
    #[error("no realm named {0:?} is declared")]
    UnknownRealm(String),
    /// The tenant already lives in the target realm.
    #[error("tenant {tenant:?} already lives in realm {realm:?}")]
    SameRealm {
        /// The tenant.
        tenant: String,
        /// Its realm.
        realm: String,
    },
    /// The tenant has a migration that is not at an end.
    #[error("tenant {tenant:?} is already migrating (migration {id}, {state})")]
    AlreadyMigrating {
        /// The tenant.
        tenant: String,
        /// The migration.
        id: String,
        /// Its state.
        state: &'static str,
    },
    /// `tenancy.max_concurrent_migrations` are under way.
    #[error("{0} migrations are under way, the most tenancy.max_concurrent_migrations allows")]
    TooMany(usize),
    /// The window is not a window.
    #[error("invalid window: {0}")]
    InvalidWindow(String),
    /// The window ended already.
    #[error("the window ends at {0}, in the past")]
    WindowInPast(String),
    /// No migration of that id.
    #[error("no migration {0:?}")]
    Unknown(String),
    /// The request does not match the schedule.
    #[error("does not match migration {id}: {field} was {recorded}, the request says {asked}")]
    Mismatch {
        /// The migration.
        id: String,
        /// What differs.
        field: &'static str,
        /// What was scheduled.
        recorded: String,
        /// What the request said.
        asked: String,
    },
    /// The step does not apply in the migration's state.
    #[error("migration {id} is {state}: {step} applies {when}")]
    WrongState {
        /// The migration.
        id: String,
        /// Its state.
        state: &'static str,
        /// The step asked for.
        step: &'static str,
        /// When it applies.
        when: &'static str,
    },
    /// The window is not open.
    #[error("migration {id}'s window {when}")]
    OutsideWindow {
        /// The migration.
        id: String,
        /// Opens at or closed at.
        when: String,
    },
}

/// A time as RFC 3339, to the millisecond.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

/// Parses an RFC 3339 time into ms since the epoch.
pub fn parse_time(field: &str, text: &str) -> Result<u64, MigrationError> {
    let at = humantime::parse_rfc3339_weak(text).map_err(|e| {
        MigrationError::InvalidWindow(format!(
            "{field} must be an RFC 3339 time such as 2026-12-01T20:00:00Z, found {text:?} ({e})"
        ))
    })?;
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .map_err(|_| MigrationError::InvalidWindow(format!("{field} is before 1970")))
}
