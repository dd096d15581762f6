//! What can go wrong with backups and restores, each naming the file or the
//! range it concerns.

use crate::store::StoreError;

/// Why a backup, a verification or a restore could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The master key file cannot be read or is not 64 hex digits.
    #[error("the backup master key file {file}: {reason}")]
    MasterKey {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The backup target could not be read or written.
    #[error("backup target {operation} of {name} failed: {reason}")]
    Target {
        /// What was being done.
        operation: &'static str,
        /// The object.
        name: String,
        /// Why.
        reason: String,
    },
    /// A backup file or manifest is damaged: it is never restored from.
    #[error("backup file {file} is damaged ({range}): {reason}")]
    Corrupt {
        /// The file.
        file: String,
        /// The sequence numbers it holds, as its manifest says.
        range: String,
        /// What is wrong.
        reason: String,
    },
    /// No backup (nor the change log) reaches back to the instant asked for.
    #[error("{0}")]
    OutOfRange(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BackupError {
    /// A failure of the target's `operation` on `name`.
    pub(super) fn target(
        operation: &'static str,
        name: &str,
    ) -> impl FnOnce(object_store::Error) -> Self {
        move |e| BackupError::Target {
            operation,
            name: name.to_owned(),
            reason: e.to_string(),
        }
    }
}
