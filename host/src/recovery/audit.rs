//! The audit log of destructive and recovery operations: who, when, what,
//! outcome; appended to the store every node shares, never changed.

use crate::store::Recovery;

/// One entry.
#[derive(Debug, serde::Serialize)]
pub struct Entry<'a> {
    /// What was done (`restore`, `restore_undo`, `migration_commit`, ...).
    pub action: &'a str,
    /// The operation's id.
    pub id: &'a str,
    /// Who asked.
    pub by: &'a str,
    /// How it ended.
    pub outcome: &'a str,
    /// What it concerned.
    pub details: serde_json::Value,
}

/// Appends `entry`; a failure is logged (with the entry, so it is not lost).
pub fn append(store: &dyn Recovery, entry: &Entry<'_>) {
    let json = serde_json::to_string(entry).expect("an audit entry encodes");
    if let Err(e) = store.append_audit(&json) {
        tracing::error!(error = %e, entry = %json, "an audit entry could not be appended");
    }
}
