//! The three things a store keeps, one trait each, so a backend is written and
//! tested one trait at a time ([`super::conformance`] has a suite per trait).

use std::fmt::Debug;

/// What [`Records::scan`] hands each record to; an error stops the scan.
pub type ScanVisitor<'a> = dyn FnMut(RecordId, StoredRecord) -> Result<(), StoreError> + 'a;

use super::{
    AuditEntry, Change, DeadLetter, EventOutcome, EventWrite, InvalidatedKey, NodeReport, Pin,
    PushedFile, PushedPlugin, RecordId, Snapshot, StoreError, StoredMigration, StoredOperation,
    StoredRecord, VerifySnapshot,
};

/// Records and the change log: the core every backend implements, and what the
/// read cache ([`super::Cached`]) wraps.
pub trait Records: Send + Sync + Debug {
    /// Commits `events` in one transaction, durably, and says what became of
    /// each (in order). Either everything is committed or nothing is. An
    /// event that is in the store afterwards (applied, or a duplicate) leaves
    /// the backend's dead letters in that same transaction.
    fn apply(&self, events: &[EventWrite]) -> Result<Vec<EventOutcome>, StoreError>;

    /// The record, tombstones included (their `body` is `None`).
    fn get(&self, id: &RecordId) -> Result<Option<StoredRecord>, StoreError>;

    /// The record if it is at hand without touching the backend (the read
    /// cache holds it): what an async caller asks first, going to the
    /// blocking pool for [`Records::get`] only when this says `None`.
    fn cached(&self, id: &RecordId) -> Option<StoredRecord> {
        let _ = id;
        None
    }

    /// Up to `limit` live records (tombstones skipped) of `record_type`, in
    /// tenant and key order, after the record of `after` (tenant, key) when
    /// given: the pages of an export.
    fn records(
        &self,
        record_type: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(RecordId, StoredRecord)>, StoreError>;

    /// Every record, tombstones included, as of one instant (one read
    /// transaction), handed to `visit` in record order; returns the sequence
    /// number of the last change that instant includes. What a backup's
    /// snapshot is taken from: copying the file while it is written is
    /// unsafe, and a read transaction sees one committed state throughout.
    fn scan(&self, visit: &mut ScanVisitor<'_>) -> Result<u64, StoreError>;

    /// Up to `limit` changes with sequence numbers above `after`, in order.
    fn changes(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.changes_within(after, limit, usize::MAX)
    }

    /// Like [`Records::changes`], stopping once the changes read weigh
    /// `max_bytes` together (always at least one): what a reader holds is
    /// bounded in bytes, whatever the records weigh.
    fn changes_within(
        &self,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Change>, StoreError>;

    /// What tells this store from any other, even one at the same place
    /// (made anew after its disk was lost): a backup chain of another
    /// store is never continued with this one's change log.
    fn instance(&self) -> Result<String, StoreError>;

    /// The sequence number of the last change (0 when there is none).
    fn last_seq(&self) -> Result<u64, StoreError>;

    /// The last sequence number, now and whenever the log grows: what followers
    /// of the change log wait on.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64>;

    /// The first sequence number the change log still holds (changes before it
    /// were trimmed); `last_seq() + 1` when it holds none.
    fn first_seq(&self) -> Result<u64, StoreError>;

    /// Up to `limit` records of `tenant` in `record_type`, tombstones
    /// included, in key order after `after`: what a realm migration copies
    /// and checks.
    fn tenant_records(
        &self,
        record_type: &str,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, StoredRecord)>, StoreError>;

    /// Removes up to `limit` records of `tenant` in `record_type`
    /// (tombstones included) and logs an invalidation for each, in one
    /// transaction, so followers drop what they hold of them; returns the
    /// records removed with their invalidations' sequence numbers (none: the
    /// tenant has no records of the type left). The tenant's data leaving a
    /// realm: a migration's commit in the source, its rollback in the target.
    fn purge_tenant(
        &self,
        record_type: &str,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<(RecordId, u64)>, StoreError>;

    /// Rewrites the changes of `tenant` the log still holds as invalidations
    /// without bodies, keeping their sequence numbers (the log stays
    /// gapless); returns how many were rewritten. After
    /// [`Records::purge_tenant`], so no copy of the tenant's values stays in
    /// the realm's log.
    fn redact_changes(&self, tenant: &str) -> Result<u64, StoreError>;

    /// Appends the marker of `tenant`'s erasure to the change log, durably
    /// (followers drop everything they hold of it); returns its sequence
    /// number.
    fn log_erasure(&self, tenant: &str) -> Result<u64, StoreError>;

    /// Rewrites the store's files so that what was removed leaves them (an
    /// erasure's last step): redb compacts its file, PostgreSQL rewrites
    /// the tables (`VACUUM FULL`). Other calls may wait while it runs.
    fn compact(&self) -> Result<(), StoreError>;

    /// Appends invalidations of read-through keys to the change log, durably;
    /// returns their sequence numbers.
    fn log_invalidations(&self, keys: &[InvalidatedKey]) -> Result<Vec<u64>, StoreError>;

    /// Trims the change log to its last `keep` changes; returns how many went.
    fn trim_changes(&self, keep: u64) -> Result<u64, StoreError>;

    /// Hears that `outcomes` were committed by another trait of the same
    /// backend (a snapshot commit), not through [`Records::apply`]. A backend
    /// has nothing to do; a wrapper that remembers records (the read cache)
    /// forgets what they changed. [`super::Stores::commit_snapshot`] calls it.
    fn committed_elsewhere(&self, outcomes: &[EventOutcome]) {
        let _ = outcomes;
    }

    /// Hears of `changes` another node sharing the backend committed, read
    /// from the change log: a backend has nothing to do; the read cache
    /// forgets the records they changed.
    fn heard(&self, changes: &[Change]) {
        let _ = changes;
    }
}

/// Events droid could not ingest, kept for inspection and replay.
pub trait DeadLetters: Send + Sync + Debug {
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
}

/// Snapshot batches: events staged out of sight, then applied all at once or
/// not at all.
pub trait Snapshots: Send + Sync + Debug {
    /// Opens a snapshot batch: events staged into it stay invisible until it is
    /// committed, and vanish if it is aborted or expires.
    fn open_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError>;

    /// The snapshot batch `id`, if open.
    fn snapshot(&self, id: &str) -> Result<Option<Snapshot>, StoreError>;

    /// Stages `events` in snapshot `id` (in order); returns how many it holds now.
    fn stage(&self, id: &str, events: &[EventWrite]) -> Result<u64, StoreError>;

    /// Applies every event staged in snapshot `id` in one transaction, as
    /// [`Records::apply`] would, and closes it; `verify` sees the staged events
    /// first and may refuse (then nothing changes and the snapshot stays
    /// open). Call it through [`super::Stores::commit_snapshot`], so the read
    /// cache hears of what changed.
    fn commit_snapshot(
        &self,
        id: &str,
        verify: &VerifySnapshot,
    ) -> Result<Result<Vec<EventOutcome>, String>, StoreError>;

    /// Drops every staged event of `tenant` from every open batch (an
    /// erasure); returns how many went.
    fn drop_staged(&self, tenant: &str) -> Result<u64, StoreError>;

    /// Closes snapshot `id` and drops what it staged; says whether it was open.
    fn abort_snapshot(&self, id: &str) -> Result<bool, StoreError>;

    /// Every open snapshot batch.
    fn snapshots(&self) -> Result<Vec<Snapshot>, StoreError>;
}

/// What the nodes of a fleet share besides records (a backend several nodes
/// use implements it): plugin files operators pushed, the rollout decisions
/// about each plugin, and what each node says it holds and serves.
pub trait Fleet: Send + Sync + Debug {
    /// Keeps `plugin`, replacing an earlier push of the same file name.
    fn push_plugin(&self, plugin: &PushedPlugin) -> Result<(), StoreError>;

    /// Every pushed file, without its bytes.
    fn pushed_files(&self) -> Result<Vec<PushedFile>, StoreError>;

    /// The pushed file `file`, with its bytes.
    fn pushed_plugin(&self, file: &str) -> Result<Option<PushedPlugin>, StoreError>;

    /// Keeps `decisions` (JSON) about `plugin`.
    fn put_decisions(&self, plugin: &str, decisions: &str) -> Result<(), StoreError>;

    /// The largest revision of any decision: what a node compares with the
    /// last one it applied.
    fn decisions_revision(&self) -> Result<u64, StoreError>;

    /// Every plugin's decisions (JSON), and the revision they are at.
    fn decisions(&self) -> Result<(u64, std::collections::BTreeMap<String, String>), StoreError>;

    /// Keeps what node `node` reports (JSON), with the time.
    fn report_node(&self, node: &str, report: &str) -> Result<(), StoreError>;

    /// Every node's last report.
    fn node_reports(&self) -> Result<Vec<NodeReport>, StoreError>;
}

/// The tenant directory: which realm each tenant is pinned to, and the realm
/// migrations under way, in a store every node sees.
pub trait Directory: Send + Sync + Debug {
    /// Every pin.
    fn pins(&self) -> Result<Vec<Pin>, StoreError>;

    /// Pins `tenant` to `realm`; with `only_if_absent`, a tenant already
    /// pinned keeps its pin. Returns the realm it is pinned to afterwards.
    fn pin(&self, tenant: &str, realm: &str, only_if_absent: bool) -> Result<String, StoreError>;

    /// Pins each tenant of `pins` (tenant, realm) that is not pinned yet, in
    /// one transaction; tenants already pinned keep their pins.
    fn pin_absent(&self, pins: &[(String, String)]) -> Result<(), StoreError>;

    /// Removes `tenant`'s pin (an erasure); says whether it had one. The
    /// directory's revision need not move (on PostgreSQL it is the largest
    /// row revision, which a removal may leave): the erasure's own record,
    /// written next through [`Recovery::put_operation`], moves it.
    fn unpin(&self, tenant: &str) -> Result<bool, StoreError>;

    /// Every migration recorded.
    fn migrations(&self) -> Result<Vec<StoredMigration>, StoreError>;

    /// Records migration `id` of `tenant` as `body` if its revision is
    /// still `expected` (0: a new one); returns its new revision
    /// (`expected + 1`), or `None` when it changed meanwhile (another node
    /// moved it on) and nothing was written.
    fn put_migration(
        &self,
        id: &str,
        tenant: &str,
        body: &str,
        expected: u64,
    ) -> Result<Option<u64>, StoreError>;

    /// A number that grows with every change to pins or migrations: what a
    /// node compares with the last it read.
    fn directory_revision(&self) -> Result<u64, StoreError>;
}

/// What recovery keeps in the store every node shares: its operations
/// (restores, erasure proposals), each with a revision so two nodes cannot
/// both move one on from the same state, and the audit log, append-only.
pub trait Recovery: Send + Sync + Debug {
    /// Every operation recorded.
    fn operations(&self) -> Result<Vec<StoredOperation>, StoreError>;

    /// Records operation `id` as `body` if its revision is still `expected`
    /// (0: a new one); returns its new revision, or `None` when it changed
    /// meanwhile and nothing was written. Moves the directory's revision on
    /// too (see [`Directory::directory_revision`]): an operation may fence a
    /// tenant's writes, which every node must hear of.
    fn put_operation(&self, id: &str, body: &str, expected: u64)
    -> Result<Option<u64>, StoreError>;

    /// Appends `entry` (JSON) to the audit log, durably; returns its number
    /// (consecutive from 1).
    fn append_audit(&self, entry: &str) -> Result<u64, StoreError>;

    /// Up to `limit` audit entries numbered above `after`, in order.
    fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
}
