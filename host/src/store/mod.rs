//! Where ingested records live: the [`Store`] trait, the change log every write
//! appends to, and the embedded implementation on redb ([`Embedded`]).
//!
//! A write is a batch of events, each with the record changes its transformer
//! asked for. The whole batch commits in one transaction: every applied change
//! gets the next sequence number in the change log in that same transaction, so
//! the log has no gaps and never disagrees with the records. Each event id is
//! remembered per source, so a re-sent event changes nothing; each change
//! carries the provider's version, and a change older than what the store holds
//! for its record (a deletion included, kept as a tombstone) is skipped.
//!
//! The trait is what ingestion, reads and the change feed use; a PostgreSQL
//! implementation can sit behind it with the same rules (one transaction per
//! batch, a sequence for the log, a unique event-id index).

mod cached;
mod codec;
mod embedded;

use std::fmt::Debug;

pub use cached::Cached;
pub use embedded::Embedded;

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
    /// Stored bytes do not decode (a bug or corruption).
    #[error("the store holds a damaged entry: {0}")]
    Corrupt(String),
}

/// A durable store of records with an ordered change log.
pub trait Store: Send + Sync + Debug {
    /// Commits `events` in one transaction, durably, and says what became of
    /// each (in order). Either everything is committed or nothing is. An
    /// event that is in the store afterwards (applied, or a duplicate) leaves
    /// the dead letters in that same transaction.
    fn apply(&self, events: &[EventWrite]) -> Result<Vec<EventOutcome>, StoreError>;

    /// The record, tombstones included (their `body` is `None`).
    fn get(&self, id: &RecordId) -> Result<Option<StoredRecord>, StoreError>;

    /// Up to `limit` live records (tombstones skipped) of `record_type`, in
    /// tenant and key order, after the record of `after` (tenant, key) when
    /// given: the pages of an export.
    fn records(
        &self,
        record_type: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(RecordId, StoredRecord)>, StoreError>;

    /// Up to `limit` changes with sequence numbers above `after`, in order.
    fn changes(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.changes_within(after, limit, usize::MAX)
    }

    /// Like [`Store::changes`], stopping once the changes read weigh
    /// `max_bytes` together (always at least one): what a reader holds is
    /// bounded in bytes, whatever the records weigh.
    fn changes_within(
        &self,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Change>, StoreError>;

    /// The sequence number of the last change (0 when there is none).
    fn last_seq(&self) -> Result<u64, StoreError>;

    /// The last sequence number, now and whenever the log grows: what followers
    /// of the change log wait on.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;

    /// The first sequence number the change log still holds (changes before it
    /// were trimmed); `last_seq() + 1` when it holds none.
    fn first_seq(&self) -> Result<u64, StoreError>;

    /// Appends invalidations of read-through keys to the change log, durably;
    /// returns their sequence numbers.
    fn log_invalidations(&self, keys: &[InvalidatedKey]) -> Result<Vec<u64>, StoreError>;

    /// Trims the change log to its last `keep` changes; returns how many went.
    fn trim_changes(&self, keep: u64) -> Result<u64, StoreError>;

    /// Keeps `letters`, replacing earlier letters of the same source and
    /// event, whose attempts are added to theirs.
    fn put_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StoreError>;

    /// Up to `limit` dead letters, of `source` only when given, in source and
    /// event id order.
    fn dead_letters(
        &self,
        source: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError>;

    /// Removes the dead letter of `source`'s event `event_id`; says whether
    /// there was one.
    fn remove_dead_letter(&self, source: &str, event_id: &str) -> Result<bool, StoreError>;

    /// Opens a snapshot batch: events staged into it stay invisible until it is
    /// committed, and vanish if it is aborted or expires.
    fn open_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError>;

    /// The snapshot batch `id`, if open.
    fn snapshot(&self, id: &str) -> Result<Option<Snapshot>, StoreError>;

    /// Stages `events` in snapshot `id` (in order); returns how many it holds now.
    fn stage(&self, id: &str, events: &[EventWrite]) -> Result<u64, StoreError>;

    /// Applies every event staged in snapshot `id` in one transaction, as
    /// [`Store::apply`] would, and closes it; `verify` sees the staged event ids
    /// first and may refuse (then nothing changes and the snapshot stays open).
    fn commit_snapshot(
        &self,
        id: &str,
        verify: &VerifySnapshot,
    ) -> Result<Result<Vec<EventOutcome>, String>, StoreError>;

    /// Closes snapshot `id` and drops what it staged; says whether it was open.
    fn abort_snapshot(&self, id: &str) -> Result<bool, StoreError>;

    /// Every open snapshot batch.
    fn snapshots(&self) -> Result<Vec<Snapshot>, StoreError>;
}

/// A commit's last check of a snapshot batch, given the staged event ids in
/// order: `Err` with the reason refuses the commit.
pub type VerifySnapshot = dyn Fn(&Snapshot, &[String]) -> Result<(), String>;

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

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
