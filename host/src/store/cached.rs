//! A read cache in front of any backend's [`Records`], so hot ingested records are served
//! from memory rather than from a read transaction.
//!
//! Writes go to the store first; only after they commit is the cache told, by
//! leaving a *marker* that says "the record is at least at sequence S" on every
//! record they touched that is cached or being read. A read that misses notes
//! itself as pending, takes the record from the store and puts it in the cache
//! only if it is at least as new as whatever the cache holds (marker or
//! record), comparing change-log sequence numbers in one atomic step per key.
//! So a read that raced a write and came back with the older record can never
//! hide the newer one: either the write saw the read pending and left a
//! marker, or the read began after the commit. Records neither cached nor
//! being read cost a write nothing beyond a lookup. One window is left: a
//! marker evicted (memory pressure) between a write and the racing read's
//! insert; the entry's time to live bounds how long that older record can be
//! served.
//!
//! Keys the store does not have are not cached (nothing to compare them by);
//! deleted records (tombstones) are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::ops::compute::Op as CacheOp;

use super::{
    Change, EventOutcome, EventWrite, InvalidatedKey, RecordId, Records, ScanVisitor, StoreError,
    StoredRecord,
};

/// What the cache holds for a record.
#[derive(Debug, Clone)]
enum Slot {
    /// The record as stored.
    Record(Arc<StoredRecord>),
    /// A write committed this record at this sequence number or later; the
    /// record itself must come from the store.
    AtLeast(u64),
}

impl Slot {
    fn seq(&self) -> u64 {
        match self {
            Slot::Record(record) => record.seq,
            Slot::AtLeast(seq) => *seq,
        }
    }
}

/// The bytes an entry costs beyond its key and body: the slot, the record's
/// fields and moka's bookkeeping.
const ENTRY_OVERHEAD: u32 = 160;

/// [`Records`] with a read cache.
#[derive(Debug)]
pub struct Cached {
    inner: Arc<dyn Records>,
    records: moka::sync::Cache<RecordId, Slot>,
    /// Records being read from the store, with how many reads each: a write
    /// must leave a marker on these even though they are not cached yet.
    pending: Mutex<HashMap<RecordId, u32>>,
}

impl Cached {
    /// `inner` with a cache of at most `capacity_bytes`, each entry kept at most `ttl`.
    pub fn new(inner: Arc<dyn Records>, capacity_bytes: u64, ttl: Duration) -> Self {
        let records = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .time_to_live(ttl)
            .weigher(|id: &RecordId, slot: &Slot| {
                let body = match slot {
                    Slot::Record(record) => record.body.as_ref().map_or(0, String::len),
                    Slot::AtLeast(_) => 0,
                };
                let key = id.record_type.len() + id.tenant.len() + id.key.len();
                u32::try_from(key + body)
                    .unwrap_or(u32::MAX)
                    .saturating_add(ENTRY_OVERHEAD)
            })
            .build();
        Self {
            inner,
            records,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Reads `id` from the store and offers it to the cache, noted as pending
    /// meanwhile.
    fn read_through(&self, id: &RecordId) -> Result<Option<StoredRecord>, StoreError> {
        *crate::locks::lock(&self.pending)
            .entry(id.clone())
            .or_insert(0) += 1;
        let record = self.inner.get(id);
        if let Ok(Some(record)) = &record {
            self.offer(id, Slot::Record(Arc::new(record.clone())));
        }
        let mut pending = crate::locks::lock(&self.pending);
        if let Some(count) = pending.get_mut(id) {
            *count -= 1;
            if *count == 0 {
                pending.remove(id);
            }
        }
        record
    }

    /// Leaves a marker of `seq` on `id` if it is cached or being read.
    fn mark_one(&self, pending: &HashMap<RecordId, u32>, id: &RecordId, seq: u64) {
        if pending.contains_key(id) || self.records.contains_key(id) {
            self.offer(id, Slot::AtLeast(seq));
        }
    }

    /// Keeps `slot` for `id` unless the cache already holds something as new.
    fn offer(&self, id: &RecordId, slot: Slot) {
        self.records
            .entry_by_ref(id)
            .and_compute_with(|current| match current {
                Some(entry) if !supersedes(&slot, entry.value()) => CacheOp::Nop,
                _ => CacheOp::Put(slot),
            });
    }

    /// Marks every record `events` changed as at least at the sequence number
    /// its change got.
    fn mark(&self, events: &[EventWrite], outcomes: &[EventOutcome]) {
        let pending = crate::locks::lock(&self.pending);
        for (event, outcome) in events.iter().zip(outcomes) {
            let EventOutcome::Applied { seqs, .. } = outcome else {
                continue;
            };
            // Which of the event's changes were skipped as stale is not said,
            // so each of its records is marked with the event's lowest
            // sequence number: no newer than any change the event committed.
            if let Some(&lowest) = seqs.iter().min() {
                for op in &event.ops {
                    self.mark_one(&pending, op.id(), lowest);
                }
            }
        }
    }
}

/// Whether `new` should replace `current`: it is newer, or it is the record a
/// marker of the same write asked for.
fn supersedes(new: &Slot, current: &Slot) -> bool {
    match (current, new) {
        (Slot::AtLeast(at), Slot::Record(record)) => record.seq >= *at,
        _ => new.seq() > current.seq(),
    }
}

impl Records for Cached {
    fn apply(&self, events: &[EventWrite]) -> Result<Vec<EventOutcome>, StoreError> {
        let outcomes = self.inner.apply(events)?;
        self.mark(events, &outcomes);
        Ok(outcomes)
    }

    fn get(&self, id: &RecordId) -> Result<Option<StoredRecord>, StoreError> {
        if let Some(record) = self.cached(id) {
            return Ok(Some(record));
        }
        self.read_through(id)
    }

    fn cached(&self, id: &RecordId) -> Option<StoredRecord> {
        match self.records.get(id) {
            Some(Slot::Record(record)) => Some(StoredRecord::clone(&record)),
            _ => None,
        }
    }

    fn records(
        &self,
        record_type: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(RecordId, StoredRecord)>, StoreError> {
        // A scan, not a lookup: from the store itself, past the cache.
        self.inner.records(record_type, after, limit)
    }

    fn scan(&self, visit: &mut ScanVisitor<'_>) -> Result<u64, StoreError> {
        self.inner.scan(visit)
    }

    fn changes_within(
        &self,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Change>, StoreError> {
        self.inner.changes_within(after, limit, max_bytes)
    }

    fn instance(&self) -> Result<String, StoreError> {
        self.inner.instance()
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        self.inner.last_seq()
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.subscribe()
    }

    fn first_seq(&self) -> Result<u64, StoreError> {
        self.inner.first_seq()
    }

    fn tenant_records(
        &self,
        record_type: &str,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, StoredRecord)>, StoreError> {
        self.inner.tenant_records(record_type, tenant, after, limit)
    }

    fn purge_tenant(
        &self,
        record_type: &str,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<(RecordId, u64)>, StoreError> {
        let purged = self.inner.purge_tenant(record_type, tenant, limit)?;
        let pending = crate::locks::lock(&self.pending);
        for (id, seq) in &purged {
            self.mark_one(&pending, id, *seq);
        }
        Ok(purged)
    }

    fn redact_changes(&self, tenant: &str) -> Result<u64, StoreError> {
        self.inner.redact_changes(tenant)
    }

    fn log_invalidations(&self, keys: &[InvalidatedKey]) -> Result<Vec<u64>, StoreError> {
        self.inner.log_invalidations(keys)
    }

    fn log_erasure(&self, tenant: &str) -> Result<u64, StoreError> {
        // What the cache holds of the tenant goes: its records are gone.
        for (id, _) in self.records.iter() {
            if id.tenant == tenant {
                self.records.invalidate(&*id);
            }
        }
        self.inner.log_erasure(tenant)
    }

    fn compact(&self) -> Result<(), StoreError> {
        self.inner.compact()
    }

    fn trim_changes(&self, keep: u64) -> Result<u64, StoreError> {
        self.inner.trim_changes(keep)
    }

    fn committed_elsewhere(&self, outcomes: &[EventOutcome]) {
        // The staged changes are not at hand: the change log says which
        // records the commit touched.
        let seqs = outcomes.iter().flat_map(|o| match o {
            EventOutcome::Applied { seqs, .. } => seqs.as_slice(),
            EventOutcome::Duplicate => &[],
        });
        let (Some(first), Some(last)) = (seqs.clone().min(), seqs.max()) else {
            return;
        };
        let span = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
        match self.inner.changes(first - 1, span) {
            Ok(changes) => {
                let pending = crate::locks::lock(&self.pending);
                for change in changes {
                    let id = RecordId {
                        record_type: change.record_type,
                        tenant: change.tenant,
                        key: change.key,
                    };
                    self.mark_one(&pending, &id, change.seq);
                }
            }
            // Which records changed cannot be read: forget them all rather
            // than serve one that is older than the store's.
            Err(error) => {
                tracing::warn!(%error, "the read cache is emptied: a snapshot commit's changes cannot be read");
                self.records.invalidate_all();
            }
        }
    }

    fn heard(&self, changes: &[Change]) {
        let pending = crate::locks::lock(&self.pending);
        // Invalidations too: another node's purge of a tenant's records
        // logs one per record it removed.
        for change in changes {
            let id = RecordId {
                record_type: change.record_type.clone(),
                tenant: change.tenant.clone(),
                key: change.key.clone(),
            };
            self.mark_one(&pending, &id, change.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conformance::{event, id, upsert};
    use super::super::{Embedded, Op, Snapshot, Stores};
    use super::*;

    fn embedded() -> (tempfile::TempDir, Embedded) {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(&dir.path().join("store.redb")).unwrap();
        (dir, store)
    }

    fn cached() -> (tempfile::TempDir, Cached) {
        let (dir, store) = embedded();
        (
            dir,
            Cached::new(Arc::new(store), 1 << 20, Duration::from_secs(60)),
        )
    }

    fn body(store: &dyn Records, key: &str) -> Option<String> {
        store.get(&id(key)).unwrap().and_then(|r| r.body)
    }

    #[test]
    fn writes_replace_what_reads_cached() {
        let (_dir, store) = cached();
        store
            .apply(&[event("e1", vec![upsert("K", 1, "{\"v\":1}")])])
            .unwrap();
        assert_eq!(body(&store, "K").as_deref(), Some("{\"v\":1}"));
        assert!(matches!(store.records.get(&id("K")), Some(Slot::Record(_))));
        store
            .apply(&[event("e2", vec![upsert("K", 2, "{\"v\":2}")])])
            .unwrap();
        assert_eq!(body(&store, "K").as_deref(), Some("{\"v\":2}"));
        store
            .apply(&[event(
                "e3",
                vec![Op::Delete {
                    id: id("K"),
                    version: 3,
                }],
            )])
            .unwrap();
        let gone = store.get(&id("K")).unwrap().unwrap();
        assert_eq!((gone.body, gone.version), (None, 3));
        // Unknown keys are not cached.
        assert_eq!(store.get(&id("nope")).unwrap(), None);
        assert!(store.records.get(&id("nope")).is_none());
    }

    #[test]
    fn a_read_that_raced_a_write_cannot_hide_it() {
        let (_dir, store) = cached();
        store
            .apply(&[event("e1", vec![upsert("K", 1, "{\"v\":1}")])])
            .unwrap();
        // A read notes itself pending and takes version 1 from the store...
        store.pending.lock().unwrap().insert(id("K"), 1);
        let old = store.inner.get(&id("K")).unwrap().unwrap();
        // ...a write commits version 2 and marks the record...
        store
            .apply(&[event("e2", vec![upsert("K", 2, "{\"v\":2}")])])
            .unwrap();
        // ...and only then does the read offer what it found.
        store.offer(&id("K"), Slot::Record(Arc::new(old)));
        assert_eq!(body(&store, "K").as_deref(), Some("{\"v\":2}"));
        store.pending.lock().unwrap().clear();
        // The same when the older record was cached before the write.
        assert!(store.records.contains_key(&id("K")));
        let older = store.inner.get(&id("K")).unwrap().unwrap();
        store
            .apply(&[event("e3", vec![upsert("K", 3, "{\"v\":3}")])])
            .unwrap();
        store.offer(&id("K"), Slot::Record(Arc::new(older)));
        assert_eq!(body(&store, "K").as_deref(), Some("{\"v\":3}"));
    }

    #[test]
    fn a_committed_snapshot_replaces_cached_records() {
        let (_dir, backend) = embedded();
        let stores = Stores::of(backend, 1 << 20, Duration::from_secs(60));
        let store = &*stores.records;
        store
            .apply(&[event("e1", vec![upsert("K", 1, "{\"v\":1}")])])
            .unwrap();
        assert_eq!(body(store, "K").as_deref(), Some("{\"v\":1}"));
        let snapshot = Snapshot {
            id: "s1".into(),
            source: "jira".into(),
            opened_at_ms: 0,
            expires_at_ms: u64::MAX,
            expected_count: None,
            checksum: None,
            staged: 0,
        };
        stores.snapshots.open_snapshot(&snapshot).unwrap();
        stores
            .snapshots
            .stage("s1", &[event("e2", vec![upsert("K", 2, "{\"v\":2}")])])
            .unwrap();
        assert_eq!(body(store, "K").as_deref(), Some("{\"v\":1}"));
        stores
            .commit_snapshot("s1", &|_, _| Ok(()))
            .unwrap()
            .unwrap();
        assert_eq!(body(store, "K").as_deref(), Some("{\"v\":2}"));
    }

    /// Readers racing a writer never see a version older than one whose
    /// write had returned before their read began, and the end state is the last write.
    #[test]
    fn reads_racing_writes_never_go_back() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let (_dir, store) = cached();
        let committed = AtomicU64::new(0);
        const LAST: u64 = 300;
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    while committed.load(Ordering::SeqCst) < LAST {
                        let before = committed.load(Ordering::SeqCst);
                        let seen = store.get(&id("K")).unwrap().map_or(0, |r| r.version);
                        assert!(seen >= before, "read {seen} after {before} was committed");
                    }
                });
            }
            for v in 1..=LAST {
                let body = format!("{{\"v\":{v}}}");
                store
                    .apply(&[event(&format!("e{v}"), vec![upsert("K", v, &body)])])
                    .unwrap();
                committed.store(v, Ordering::SeqCst);
            }
        });
        assert_eq!(store.get(&id("K")).unwrap().unwrap().version, LAST);
    }
}
