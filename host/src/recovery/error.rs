//! Why a restore (or another recovery operation) was refused or failed.

use crate::backup::BackupError;
use crate::store::StoreError;

/// Why a recovery operation could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The request is not one (no tenants, a bad tenant id, a bad instant).
    #[error("{0}")]
    Invalid(String),
    /// A tenant is migrating between realms.
    #[error(
        "tenant {tenant:?} is migrating between realms (migration {migration}); restore it once the migration ends"
    )]
    Migrating {
        /// The tenant.
        tenant: String,
        /// Its migration.
        migration: String,
    },
    /// A tenant is held by another operation.
    #[error("tenant {tenant:?} is held by {kind} {id}; try again once it ends")]
    Held {
        /// The tenant.
        tenant: String,
        /// The operation's kind.
        kind: String,
        /// Its id.
        id: String,
    },
    /// No operation of that id.
    #[error("no operation {0:?} is recorded")]
    Unknown(String),
    /// The operation is not in a state that allows the step.
    #[error("{0}")]
    State(String),
    /// An erasure's approver is its proposer (or no one: unauthenticated).
    #[error("{0}")]
    SameAdmin(String),
    /// An erasure proposal was not approved in time.
    #[error("{0}")]
    Expired(String),
    /// No backup nor the change log reaches back to the instant.
    #[error("{0}")]
    OutOfRange(String),
    /// A backup file the restore needs is damaged: nothing was written.
    #[error("{0}")]
    Corrupt(String),
    /// The backup target failed.
    #[error("{0}")]
    Backup(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<BackupError> for RecoveryError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Corrupt { .. } => RecoveryError::Corrupt(e.to_string()),
            BackupError::OutOfRange(why) => RecoveryError::OutOfRange(why),
            BackupError::Store(e) => RecoveryError::Store(e),
            other => RecoveryError::Backup(other.to_string()),
        }
    }
}
