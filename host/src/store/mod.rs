//! Where ingested records live: the store traits ([`Records`] with the change
//! log every write appends to, [`DeadLetters`], [`Snapshots`], the tenant
//! [`Directory`], and [`Fleet`] for a shared backend), the read cache in
//! front of records ([`Cached`]), the embedded backend on redb
//! ([`Embedded`]) and the PostgreSQL one ([`Postgres`]). Each realm has a
//! store of its own (see `tenancy`).
//!
//! A write is a batch of events, each with the record changes its transformer
//! asked for. The whole batch commits in one transaction: every applied change
//! gets the next sequence number in the change log in that same transaction, so
//! the log has no gaps and never disagrees with the records. Each event id is
//! remembered per source, so a re-sent event changes nothing; each change
//! carries the provider's version, and a change older than what the store holds
//! for its record (a deletion included, kept as a tombstone) is skipped.
//!
//! The traits are narrow so a backend can be written and tested one at a time:
//! [`Records`] is the core every backend implements and the read cache wraps;
//! dead letters, snapshot staging and the directory are apart. [`Stores`]
//! holds one of each, and [`conformance`] is the suite any backend must pass
//! (the PostgreSQL one keeps the same rules: one transaction per batch, a
//! gapless log, a unique event-id index).

mod cached;
mod codec;
pub mod conformance;
mod embedded;
mod postgres;
mod stores;
mod traits;

pub use cached::Cached;
pub use embedded::Embedded;
pub use postgres::{Postgres, PostgresOptions};
pub use stores::Stores;
pub use traits::{DeadLetters, Directory, Fleet, Records, Recovery, ScanVisitor, Snapshots};

/// Names one record.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct RecordId {
    /// Its record type.
    pub record_type: String,
    /// Its tenant.
    pub tenant: String,
    /// Its key within the record type and tenant.
    pub key: String,
}

/// One change an event asks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Op {
    /// Create or replace the record with `body` (JSON) at `version`.
    Upsert {
        /// The record.
        id: RecordId,
        /// Its JSON body.
        body: String,
        /// The provider's version; older versions never overwrite newer ones.
        version: u64,
    },
    /// Delete the record as of `version`.
    Delete {
        /// The record.
        id: RecordId,
        /// The provider's version of the deletion.
        version: u64,
    },
}

impl Op {
    /// The record it changes.
    pub fn id(&self) -> &RecordId {
        match self {
            Op::Upsert { id, .. } | Op::Delete { id, .. } => id,
        }
    }

    /// The provider's version of the change.
    pub fn version(&self) -> u64 {
        match self {
            Op::Upsert { version, .. } | Op::Delete { version, .. } => *version,
        }
    }
}

/// One source event and the changes it produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventWrite {
    /// The ingestion source it came from.
    pub source: String,
    /// Its id, unique within the source: what makes ingestion idempotent.
    pub event_id: String,
    /// When it happened at the source, in milliseconds since the Unix epoch.
    pub occurred_at_ms: u64,
    /// The changes.
    pub ops: Vec<Op>,
    /// A restore's write: each change replaces its record whatever version
    /// the store holds (the version it sets is the one the record had at
    /// the instant restored), so a record can go back to an older version.
    #[serde(default)]
    pub overwrite: bool,
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Its changes were committed (those not older than the stored record).
    Applied {
        /// The sequence numbers its applied changes got, in order.
        seqs: Vec<u64>,
        /// How many of its changes were older than the stored record and skipped.
        stale: usize,
    },
    /// The event id was seen before; nothing changed.
    Duplicate,
}

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its JSON body; `None` for a deleted record (a tombstone).
    pub body: Option<String>,
    /// The provider's version of the last change.
    pub version: u64,
    /// The change log sequence number of the last change.
    pub seq: u64,
    /// When the last change was committed, in milliseconds since the Unix epoch.
    pub committed_at_ms: u64,
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ChangeKind {
    /// The record was created or replaced.
    Upsert {
        /// The new body.
        body: String,
    },
    /// The record was deleted.
    Delete,
    /// A read-through key was invalidated (`POST /v1/invalidate`): followers
    /// drop what they cached for it.
    Invalidate,
    /// The tenant was erased (its key and record type are empty): followers
    /// drop everything they hold of it, of every record type.
    Erase,
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    /// Its position in the log: consecutive, starting at 1.
    pub seq: u64,
    /// The record type.
    pub record_type: String,
    /// The tenant.
    pub tenant: String,
    /// The key.
    pub key: String,
    /// The provider's version.
    pub version: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: ChangeKind,
    /// The source and event that caused it.
    pub source: String,
    /// The event id.
    pub event_id: String,
    /// When the event happened at the source (ms since the epoch).
    pub occurred_at_ms: u64,
    /// When the change was committed (ms since the epoch).
    pub committed_at_ms: u64,
}

impl Change {
    /// The change `op` of `event` makes, numbered `seq`.
    pub fn of(event: &EventWrite, op: &Op, seq: u64, committed_at_ms: u64) -> Self {
        let id = op.id();
        Change {
            seq,
            record_type: id.record_type.clone(),
            tenant: id.tenant.clone(),
            key: id.key.clone(),
            version: op.version(),
            kind: match op {
                Op::Upsert { body, .. } => ChangeKind::Upsert { body: body.clone() },
                Op::Delete { .. } => ChangeKind::Delete,
            },
            source: event.source.clone(),
            event_id: event.event_id.clone(),
            occurred_at_ms: event.occurred_at_ms,
            committed_at_ms,
        }
    }

    /// The invalidation of `key`, numbered `seq` (version 0 when it named
    /// none; happened at the commit when it said nothing).
    pub fn invalidation(key: &InvalidatedKey, seq: u64, committed_at_ms: u64) -> Self {
        Change {
            seq,
            record_type: key.id.record_type.clone(),
            tenant: key.id.tenant.clone(),
            key: key.id.key.clone(),
            version: key.version.unwrap_or(0),
            kind: ChangeKind::Invalidate,
            source: "invalidate".to_owned(),
            event_id: String::new(),
            occurred_at_ms: key.occurred_at_ms.unwrap_or(committed_at_ms),
            committed_at_ms,
        }
    }
}

impl Change {
    /// The marker of `tenant`'s erasure, numbered `seq`.
    pub fn erasure(tenant: &str, seq: u64, committed_at_ms: u64) -> Self {
        Change {
            seq,
            record_type: String::new(),
            tenant: tenant.to_owned(),
            key: String::new(),
            version: 0,
            kind: ChangeKind::Erase,
            source: "erase".to_owned(),
            event_id: String::new(),
            occurred_at_ms: committed_at_ms,
            committed_at_ms,
        }
    }
}

/// A read-through key that was invalidated, for the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidatedKey {
    /// The record.
    pub id: RecordId,
    /// The record's version after the change, if the invalidation named one.
    pub version: Option<u64>,
    /// When the change happened at the source (ms since the epoch), if named.
    pub occurred_at_ms: Option<u64>,
}

/// Why the store could not do what was asked. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("cannot open the store at {path}: {reason}")]
    Open {
        /// The database file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A read or a transaction failed.
    #[error("store {operation} failed: {reason}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// Why.
        reason: String,
    },
    /// The store's schema is newer than this droid knows: a newer droid
    /// migrated it, and this one would misread it.
    #[error(
        "the store's schema {schema:?} is at version {found}, newer than this droid knows ({known}): run the newer droid, or give this one a schema of its own (store.schema)"
    )]
    NewerSchema {
        /// The schema.
        schema: String,
        /// Its version.
        found: i64,
        /// The newest version this droid knows.
        known: i64,
    },
    /// Stored bytes do not decode (a bug or corruption).
    #[error("the store holds a damaged entry: {0}")]
    Corrupt(String),
}

/// A commit's last check of a snapshot batch, given the staged events in
/// order: `Err` with the reason refuses the commit.
pub type VerifySnapshot = dyn Fn(&Snapshot, &[EventWrite]) -> Result<(), String>;

/// An open snapshot batch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Its id.
    pub id: String,
    /// The source it belongs to.
    pub source: String,
    /// When it was opened (ms since the epoch).
    pub opened_at_ms: u64,
    /// When it expires unless committed (ms since the epoch).
    pub expires_at_ms: u64,
    /// The number of events the provider says it will send, if declared.
    pub expected_count: Option<u64>,
    /// The SHA-256 (hex) of the event ids in order, each followed by a newline,
    /// if declared.
    pub checksum: Option<String>,
    /// Events staged so far.
    pub staged: u64,
}

/// An event droid could not ingest, kept with why, for inspection and replay.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// The source it was posted to.
    pub source: String,
    /// Its id.
    pub event_id: String,
    /// Its kind.
    pub kind: String,
    /// Its tenant.
    pub tenant: String,
    /// When it happened (ms since the epoch).
    pub occurred_at_ms: u64,
    /// Its payload, as posted (JSON text).
    pub payload: String,
    /// Why it was not ingested.
    pub reason: String,
    /// The transformer version that refused it.
    pub plugin_version: String,
    /// When it was last refused (ms since the epoch).
    pub at_ms: u64,
    /// How many times it was refused (first post and replays).
    pub attempts: u32,
}

/// A plugin file an operator pushed to the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedPlugin {
    /// Its file name (`NAME.wasm` or `NAME@VERSION.wasm`).
    pub file: String,
    /// The component.
    pub wasm: Vec<u8>,
    /// The SHA-256 (hex) of the component.
    pub sha256: String,
    /// Its `.sig` file, if signed.
    pub signature: Option<Vec<u8>>,
    /// When it was pushed (ms since the epoch).
    pub pushed_at_ms: u64,
}

/// A pushed plugin file, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedFile {
    /// Its file name.
    pub file: String,
    /// The SHA-256 (hex) of the component.
    pub sha256: String,
    /// Whether it came with a signature.
    pub signed: bool,
    /// When it was pushed (ms since the epoch).
    pub pushed_at_ms: u64,
}

/// What a node last said it holds and serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// The node's name.
    pub node: String,
    /// Its report (JSON).
    pub report: String,
    /// When it reported (ms since the epoch).
    pub at_ms: u64,
}

/// A tenant pinned to a realm in the tenant directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The tenant.
    pub tenant: String,
    /// The realm its data lives in.
    pub realm: String,
    /// When it was pinned there (ms since the epoch).
    pub pinned_at_ms: u64,
}

/// A realm migration as the tenant directory keeps it: what it is (JSON,
/// the tenancy module's to read) and a revision, so two nodes cannot both
/// move it on from the same state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMigration {
    /// Its id.
    pub id: String,
    /// The tenant it moves.
    pub tenant: String,
    /// What it is (JSON).
    pub body: String,
    /// Its revision: 1 when recorded, one more at every change.
    pub revision: u64,
}

/// A recovery operation as the store keeps it: what it is (JSON, the
/// recovery module's to read) and its revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOperation {
    /// Its id.
    pub id: String,
    /// What it is (JSON).
    pub body: String,
    /// Its revision: 1 when recorded, one more at every change.
    pub revision: u64,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its number: consecutive from 1.
    pub id: u64,
    /// When it was appended (ms since the epoch).
    pub at_ms: u64,
    /// What it says (JSON).
    pub entry: String,
}

/// Runs the store call `f` on tokio's blocking pool, as every store call from
/// async code must: calls block on disk and network, which must not hold up
/// the workers serving requests.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io {
            operation: "task",
            reason: format!("the store task failed: {e}"),
        })?
}

/// Milliseconds since the Unix epoch, as the store stamps things.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
