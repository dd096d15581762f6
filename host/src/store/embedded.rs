//! The embedded store: one redb file, nothing to install.
//!
//! Tables: `records` (record key → record with its version and last sequence
//! number; deletions stay as tombstones so an older upsert arriving later cannot
//! bring a record back), `changes` (sequence number → change, JSON), `events`
//! (source and event id → nothing: the ids seen) and `meta` (the last sequence
//! number). One write transaction per batch, committed with redb's default
//! durability (synced to disk before `apply` returns).

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::codec::{decode_record, decode_record_key, encode_record, event_key, record_key};
use super::{
    Change, ChangeKind, DeadLetter, EventOutcome, EventWrite, InvalidatedKey, Op, RecordId,
    Snapshot, Store, StoreError, StoredRecord, VerifySnapshot, now_ms,
};

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
const EVENTS: TableDefinition<&[u8], ()> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const DEAD_LETTERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("dead_letters");
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
/// Staged events: (snapshot id, position) → event.
const STAGED: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("staged");
const LAST_SEQ: &str = "last_seq";
/// The first sequence number the change log holds (1 until it is trimmed).
const FIRST_SEQ: &str = "first_seq";

/// The store in one redb file.
#[derive(Debug)]
pub struct Embedded {
    db: Database,
    /// The last sequence number committed, for followers of the change log.
    grown: tokio::sync::watch::Sender<u64>,
}

fn io(operation: &'static str) -> impl Fn(redb::Error) -> StoreError {
    move |e| StoreError::Io {
        operation,
        reason: e.to_string(),
    }
}

macro_rules! try_io {
    ($op:literal, $e:expr) => {
        $e.map_err(|e| io($op)(e.into()))?
    };
}

/// The page cache of a store opened without a size (tests, tools).
const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

impl Embedded {
    /// Opens (or creates) the store at `path`. redb checks the file and repairs
    /// an interrupted commit on open: what was committed is there, nothing else.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Like [`Embedded::open`], with redb's page cache bounded to
    /// `cache_bytes` (`store.engine_cache_bytes`). redb's own default is a
    /// gigabyte, which a growing store fills: droid's memory would then
    /// follow the file's size rather than its configuration.
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        let db = redb::Builder::new()
            .set_cache_size(usize::try_from(cache_bytes).unwrap_or(usize::MAX))
            .create(path)
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        // Create the tables, so readers of an empty store find them.
        let txn = try_io!("open", db.begin_write());
        {
            try_io!("open", txn.open_table(RECORDS));
            try_io!("open", txn.open_table(CHANGES));
            try_io!("open", txn.open_table(EVENTS));
            try_io!("open", txn.open_table(META));
            try_io!("open", txn.open_table(DEAD_LETTERS));
            try_io!("open", txn.open_table(SNAPSHOTS));
            try_io!("open", txn.open_table(STAGED));
        }
        try_io!("open", txn.commit());
        let store = Self {
            db,
            grown: tokio::sync::watch::Sender::new(0),
        };
        store.grown.send_replace(store.last_seq()?);
        Ok(store)
    }
}

impl Embedded {
    /// Tells followers the log grew to the last sequence number `outcomes` got.
    fn grew(&self, outcomes: &[EventOutcome]) {
        let last = outcomes.iter().filter_map(|o| match o {
            EventOutcome::Applied { seqs, .. } => seqs.last().copied(),
            EventOutcome::Duplicate => None,
        });
        if let Some(last) = last.max() {
            self.grown.send_if_modified(|seen| {
                let newer = last > *seen;
                if newer {
                    *seen = last;
                }
                newer
            });
        }
    }
}

impl Store for Embedded {
    fn apply(&self, events: &[EventWrite]) -> Result<Vec<EventOutcome>, StoreError> {
        let txn = try_io!("write", self.db.begin_write());
        let outcomes = apply_in(&txn, events)?;
        try_io!("commit", txn.commit());
        self.grew(&outcomes);
        Ok(outcomes)
    }

    fn get(&self, id: &RecordId) -> Result<Option<StoredRecord>, StoreError> {
        let txn = try_io!("read", self.db.begin_read());
        let records = try_io!("read", txn.open_table(RECORDS));
        match try_io!("read", records.get(record_key(id).as_slice())) {
            Some(bytes) => decode_record(bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    fn records(
        &self,
        record_type: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(RecordId, StoredRecord)>, StoreError> {
        let txn = try_io!("read", self.db.begin_read());
        let records = try_io!("read", txn.open_table(RECORDS));
        // Keys are `type NUL tenant NUL key`: the record type's range starts
        // at `type NUL` and ends before `type \x01`.
        let mut start = record_type.as_bytes().to_vec();
        start.push(0);
        let mut end = record_type.as_bytes().to_vec();
        end.push(1);
        let from = match after {
            Some((tenant, key)) => {
                let mut from = record_key(&RecordId {
                    record_type: record_type.to_owned(),
                    tenant: tenant.to_owned(),
                    key: key.to_owned(),
                });
                // Just past it: the smallest longer key.
                from.push(0);
                from
            }
            None => start,
        };
        let mut out = Vec::new();
        for entry in try_io!("read", records.range(from.as_slice()..end.as_slice())) {
            let (k, value) = try_io!("read", entry);
            let record = decode_record(value.value())?;
            if record.body.is_none() {
                continue;
            }
            out.push((decode_record_key(k.value())?, record));
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    fn changes_within(
        &self,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let txn = try_io!("read", self.db.begin_read());
        let changes = try_io!("read", txn.open_table(CHANGES));
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for entry in try_io!("read", changes.range(after.saturating_add(1)..)).take(limit) {
            if bytes >= max_bytes {
                break;
            }
            let (_, value) = try_io!("read", entry);
            bytes += value.value().len();
            out.push(
                serde_json::from_slice(value.value())
                    .map_err(|e| StoreError::Corrupt(format!("a change does not decode: {e}")))?,
            );
        }
        Ok(out)
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        let txn = try_io!("read", self.db.begin_read());
        let meta = try_io!("read", txn.open_table(META));
        Ok(try_io!("read", meta.get(LAST_SEQ)).map_or(0, |v| v.value()))
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.grown.subscribe()
    }

    fn first_seq(&self) -> Result<u64, StoreError> {
        let txn = try_io!("read", self.db.begin_read());
        let meta = try_io!("read", txn.open_table(META));
        Ok(try_io!("read", meta.get(FIRST_SEQ)).map_or(1, |v| v.value()))
    }

    fn log_invalidations(&self, keys: &[InvalidatedKey]) -> Result<Vec<u64>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let committed_at_ms = now_ms();
        let txn = try_io!("write", self.db.begin_write());
        let mut seqs = Vec::with_capacity(keys.len());
        {
            let mut changes = try_io!("write", txn.open_table(CHANGES));
            let mut meta = try_io!("write", txn.open_table(META));
            let mut seq = try_io!("write", meta.get(LAST_SEQ)).map_or(0, |v| v.value());
            for key in keys {
                seq += 1;
                let change = Change {
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
                };
                let json = serde_json::to_vec(&change)
                    .map_err(|e| StoreError::Corrupt(format!("cannot encode a change: {e}")))?;
                try_io!("write", changes.insert(seq, json.as_slice()));
                seqs.push(seq);
            }
            try_io!("write", meta.insert(LAST_SEQ, seq));
        }
        try_io!("commit", txn.commit());
        if let Some(&last) = seqs.last() {
            self.grown.send_replace(last);
        }
        Ok(seqs)
    }

    fn trim_changes(&self, keep: u64) -> Result<u64, StoreError> {
        let txn = try_io!("write", self.db.begin_write());
        let removed = {
            let mut changes = try_io!("write", txn.open_table(CHANGES));
            let mut meta = try_io!("write", txn.open_table(META));
            let last = try_io!("write", meta.get(LAST_SEQ)).map_or(0, |v| v.value());
            let first = try_io!("write", meta.get(FIRST_SEQ)).map_or(1, |v| v.value());
            let cut = last.saturating_sub(keep);
            if cut < first {
                0
            } else {
                try_io!("write", changes.retain_in(first..=cut, |_, _| false));
                try_io!("write", meta.insert(FIRST_SEQ, cut + 1));
                cut + 1 - first
            }
        };
        try_io!("commit", txn.commit());
        Ok(removed)
    }

    fn put_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        if letters.is_empty() {
            return Ok(());
        }
        let txn = try_io!("write", self.db.begin_write());
        {
            let mut table = try_io!("write", txn.open_table(DEAD_LETTERS));
            for letter in letters {
                let key = event_key(&letter.source, &letter.event_id);
                // Refused again: the attempts add up.
                let earlier = match try_io!("write", table.get(key.as_slice())) {
                    Some(bytes) => serde_json::from_slice::<DeadLetter>(bytes.value())
                        .map(|d| d.attempts)
                        .unwrap_or(0),
                    None => 0,
                };
                let letter = DeadLetter {
                    attempts: earlier + letter.attempts,
                    ..letter.clone()
                };
                let json = serde_json::to_vec(&letter).map_err(|e| {
                    StoreError::Corrupt(format!("cannot encode a dead letter: {e}"))
                })?;
                try_io!("write", table.insert(key.as_slice(), json.as_slice()));
            }
        }
        try_io!("commit", txn.commit());
        Ok(())
    }

    fn dead_letters(
        &self,
        source: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let txn = try_io!("read", self.db.begin_read());
        let table = try_io!("read", txn.open_table(DEAD_LETTERS));
        let mut out = Vec::new();
        for entry in try_io!("read", table.iter()) {
            let (_, value) = try_io!("read", entry);
            let letter: DeadLetter = serde_json::from_slice(value.value())
                .map_err(|e| StoreError::Corrupt(format!("a dead letter does not decode: {e}")))?;
            if source.is_none_or(|s| s == letter.source) {
                out.push(letter);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn open_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let txn = try_io!("write", self.db.begin_write());
        {
            let mut table = try_io!("write", txn.open_table(SNAPSHOTS));
            let json = encode(snapshot)?;
            try_io!("write", table.insert(snapshot.id.as_str(), json.as_slice()));
        }
        try_io!("commit", txn.commit());
        Ok(())
    }

    fn snapshot(&self, id: &str) -> Result<Option<Snapshot>, StoreError> {
        let txn = try_io!("read", self.db.begin_read());
        let table = try_io!("read", txn.open_table(SNAPSHOTS));
        match try_io!("read", table.get(id)) {
            Some(v) => decode(v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn stage(&self, id: &str, events: &[EventWrite]) -> Result<u64, StoreError> {
        let txn = try_io!("write", self.db.begin_write());
        let staged = {
            let mut snapshots = try_io!("write", txn.open_table(SNAPSHOTS));
            let mut snapshot: Snapshot = match try_io!("write", snapshots.get(id)) {
                Some(v) => decode(v.value())?,
                None => return Err(StoreError::Corrupt(format!("no open snapshot {id:?}"))),
            };
            let mut staged = try_io!("write", txn.open_table(STAGED));
            for event in events {
                try_io!(
                    "write",
                    staged.insert((id, snapshot.staged), encode(event)?.as_slice())
                );
                snapshot.staged += 1;
            }
            try_io!("write", snapshots.insert(id, encode(&snapshot)?.as_slice()));
            snapshot.staged
        };
        try_io!("commit", txn.commit());
        Ok(staged)
    }

    fn commit_snapshot(
        &self,
        id: &str,
        verify: &VerifySnapshot,
    ) -> Result<Result<Vec<EventOutcome>, String>, StoreError> {
        let txn = try_io!("write", self.db.begin_write());
        let outcomes = {
            let mut snapshots = try_io!("write", txn.open_table(SNAPSHOTS));
            let snapshot: Snapshot = match try_io!("write", snapshots.get(id)) {
                Some(v) => decode(v.value())?,
                None => return Ok(Err(format!("no open snapshot {id:?}"))),
            };
            let mut staged = try_io!("write", txn.open_table(STAGED));
            let mut events: Vec<EventWrite> = Vec::new();
            for entry in try_io!("read", staged.range((id, 0)..=(id, u64::MAX))) {
                let (_, value) = try_io!("read", entry);
                events.push(decode(value.value())?);
            }
            let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
            if let Err(why) = verify(&snapshot, &ids) {
                return Ok(Err(why));
            }
            for n in 0..snapshot.staged {
                try_io!("write", staged.remove((id, n)));
            }
            try_io!("write", snapshots.remove(id));
            drop((snapshots, staged));
            apply_in(&txn, &events)?
        };
        try_io!("commit", txn.commit());
        self.grew(&outcomes);
        Ok(Ok(outcomes))
    }

    fn abort_snapshot(&self, id: &str) -> Result<bool, StoreError> {
        let txn = try_io!("write", self.db.begin_write());
        let existed = {
            let mut snapshots = try_io!("write", txn.open_table(SNAPSHOTS));
            let staged_count = match try_io!("write", snapshots.remove(id)) {
                Some(v) => decode::<Snapshot>(v.value())?.staged,
                None => return Ok(false),
            };
            let mut staged = try_io!("write", txn.open_table(STAGED));
            for n in 0..staged_count {
                try_io!("write", staged.remove((id, n)));
            }
            true
        };
        try_io!("commit", txn.commit());
        Ok(existed)
    }

    fn snapshots(&self) -> Result<Vec<Snapshot>, StoreError> {
        let txn = try_io!("read", self.db.begin_read());
        let table = try_io!("read", txn.open_table(SNAPSHOTS));
        let mut out = Vec::new();
        for entry in try_io!("read", table.iter()) {
            let (_, value) = try_io!("read", entry);
            out.push(decode(value.value())?);
        }
        Ok(out)
    }

    fn remove_dead_letter(&self, source: &str, event_id: &str) -> Result<bool, StoreError> {
        let txn = try_io!("write", self.db.begin_write());
        let removed = {
            let mut table = try_io!("write", txn.open_table(DEAD_LETTERS));
            let key = event_key(source, event_id);
            try_io!("write", table.remove(key.as_slice())).is_some()
        };
        try_io!("commit", txn.commit());
        Ok(removed)
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("does not decode: {e}")))
}

/// Applies `events` within the write transaction `txn` (see [`Store::apply`]).
fn apply_in(
    txn: &redb::WriteTransaction,
    events: &[EventWrite],
) -> Result<Vec<EventOutcome>, StoreError> {
    let committed_at_ms = now_ms();
    let mut outcomes = Vec::with_capacity(events.len());
    {
        let mut records = try_io!("write", txn.open_table(RECORDS));
        let mut changes = try_io!("write", txn.open_table(CHANGES));
        let mut seen = try_io!("write", txn.open_table(EVENTS));
        let mut meta = try_io!("write", txn.open_table(META));
        let mut letters = try_io!("write", txn.open_table(DEAD_LETTERS));
        // An event that is in the store leaves the dead letters in the same
        // transaction (most batches find none to look for).
        let any_letters = try_io!("write", letters.len()) > 0;
        let mut seq = try_io!("write", meta.get(LAST_SEQ)).map_or(0, |v| v.value());
        for event in events {
            let ek = event_key(&event.source, &event.event_id);
            if any_letters {
                try_io!("write", letters.remove(ek.as_slice()));
            }
            if try_io!("write", seen.get(ek.as_slice())).is_some() {
                outcomes.push(EventOutcome::Duplicate);
                continue;
            }
            try_io!("write", seen.insert(ek.as_slice(), ()));
            let mut seqs = Vec::new();
            let mut stale = 0;
            for op in &event.ops {
                let rk = record_key(op.id());
                let current = match try_io!("write", records.get(rk.as_slice())) {
                    Some(bytes) => Some(decode_record(bytes.value())?),
                    None => None,
                };
                if current.is_some_and(|c| c.version >= op.version()) {
                    stale += 1;
                    continue;
                }
                seq += 1;
                let (body, kind) = match op {
                    Op::Upsert { body, .. } => (
                        Some(body.clone()),
                        ChangeKind::Upsert { body: body.clone() },
                    ),
                    Op::Delete { .. } => (None, ChangeKind::Delete),
                };
                let record = StoredRecord {
                    body,
                    version: op.version(),
                    seq,
                    committed_at_ms,
                };
                try_io!(
                    "write",
                    records.insert(rk.as_slice(), encode_record(&record).as_slice())
                );
                let id = op.id();
                let change = Change {
                    seq,
                    record_type: id.record_type.clone(),
                    tenant: id.tenant.clone(),
                    key: id.key.clone(),
                    version: op.version(),
                    kind,
                    source: event.source.clone(),
                    event_id: event.event_id.clone(),
                    occurred_at_ms: event.occurred_at_ms,
                    committed_at_ms,
                };
                let json = serde_json::to_vec(&change)
                    .map_err(|e| StoreError::Corrupt(format!("cannot encode a change: {e}")))?;
                try_io!("write", changes.insert(seq, json.as_slice()));
                seqs.push(seq);
            }
            outcomes.push(EventOutcome::Applied { seqs, stale });
        }
        try_io!("write", meta.insert(LAST_SEQ, seq));
    }
    Ok(outcomes)
}

#[cfg(test)]
pub(in crate::store) mod tests {
    use super::*;

    pub(in crate::store) fn id(key: &str) -> RecordId {
        RecordId {
            record_type: "ticket".into(),
            tenant: "acme".into(),
            key: key.into(),
        }
    }

    pub(in crate::store) fn upsert(key: &str, version: u64, body: &str) -> Op {
        Op::Upsert {
            id: id(key),
            body: body.into(),
            version,
        }
    }

    pub(in crate::store) fn event(event_id: &str, ops: Vec<Op>) -> EventWrite {
        EventWrite {
            source: "jira".into(),
            event_id: event_id.into(),
            occurred_at_ms: 1_000,
            ops,
        }
    }

    pub(in crate::store) fn open() -> (tempfile::TempDir, Embedded) {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(&dir.path().join("store.redb")).unwrap();
        (dir, store)
    }

    #[test]
    fn writes_get_consecutive_sequence_numbers_and_read_back() {
        let (_dir, store) = open();
        let out = store
            .apply(&[
                event(
                    "e1",
                    vec![upsert("A", 1, "{\"a\":1}"), upsert("B", 1, "{}")],
                ),
                event("e2", vec![upsert("A", 2, "{\"a\":2}")]),
            ])
            .unwrap();
        assert_eq!(
            out,
            [
                EventOutcome::Applied {
                    seqs: vec![1, 2],
                    stale: 0
                },
                EventOutcome::Applied {
                    seqs: vec![3],
                    stale: 0
                }
            ]
        );
        let a = store.get(&id("A")).unwrap().unwrap();
        assert_eq!(
            (a.body.as_deref(), a.version, a.seq),
            (Some("{\"a\":2}"), 2, 3)
        );
        assert_eq!(store.last_seq().unwrap(), 3);
        let log = store.changes(0, 10).unwrap();
        assert_eq!(log.iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(store.changes(2, 10).unwrap().len(), 1);
        assert_eq!(store.changes(0, 2).unwrap().len(), 2);
    }

    #[test]
    fn an_export_pages_through_one_record_type_in_order_without_tombstones() {
        let (_dir, store) = open();
        let other = |key: &str| Op::Upsert {
            id: RecordId {
                record_type: "ticket2".into(),
                tenant: "acme".into(),
                key: key.into(),
            },
            body: "{}".into(),
            version: 1,
        };
        let mut ops: Vec<Op> = ["B", "A", "AB", "C", "D"]
            .iter()
            .map(|k| upsert(k, 1, "{}"))
            .collect();
        ops.push(other("A"));
        ops.push(Op::Delete {
            id: id("C"),
            version: 2,
        });
        store.apply(&[event("e1", ops)]).unwrap();
        let keys = |page: Vec<(RecordId, StoredRecord)>| -> Vec<String> {
            page.into_iter().map(|(id, _)| id.key).collect()
        };
        assert_eq!(
            keys(store.records("ticket", None, 10).unwrap()),
            ["A", "AB", "B", "D"]
        );
        assert_eq!(keys(store.records("ticket", None, 2).unwrap()), ["A", "AB"]);
        assert_eq!(
            keys(store.records("ticket", Some(("acme", "A")), 2).unwrap()),
            ["AB", "B"]
        );
        assert_eq!(
            keys(store.records("ticket", Some(("acme", "D")), 2).unwrap()),
            Vec::<String>::new()
        );
        assert_eq!(keys(store.records("ticket2", None, 10).unwrap()), ["A"]);
        assert!(store.records("tick", None, 10).unwrap().is_empty());
    }

    #[test]
    fn a_resent_event_changes_nothing() {
        let (_dir, store) = open();
        store
            .apply(&[event("e1", vec![upsert("A", 1, "{}")])])
            .unwrap();
        let again = store
            .apply(&[event("e1", vec![upsert("A", 5, "{\"x\":1}")])])
            .unwrap();
        assert_eq!(again, [EventOutcome::Duplicate]);
        assert_eq!(store.get(&id("A")).unwrap().unwrap().version, 1);
        assert_eq!(store.last_seq().unwrap(), 1);
    }

    #[test]
    fn older_versions_never_overwrite_newer_ones_not_even_after_a_delete() {
        let (_dir, store) = open();
        store
            .apply(&[
                event("e3", vec![upsert("A", 3, "{\"v\":3}")]),
                event("e2", vec![upsert("A", 2, "{\"v\":2}")]),
            ])
            .unwrap();
        assert_eq!(store.get(&id("A")).unwrap().unwrap().version, 3);
        store
            .apply(&[event(
                "d4",
                vec![Op::Delete {
                    id: id("A"),
                    version: 4,
                }],
            )])
            .unwrap();
        let out = store
            .apply(&[event("e1", vec![upsert("A", 1, "{\"v\":1}")])])
            .unwrap();
        assert_eq!(
            out,
            [EventOutcome::Applied {
                seqs: vec![],
                stale: 1
            }]
        );
        let tombstone = store.get(&id("A")).unwrap().unwrap();
        assert_eq!((tombstone.body, tombstone.version), (None, 4));
        let kinds: Vec<_> = store
            .changes(0, 10)
            .unwrap()
            .into_iter()
            .map(|c| c.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                ChangeKind::Upsert {
                    body: "{\"v\":3}".into()
                },
                ChangeKind::Delete
            ]
        );
    }

    #[test]
    fn dead_letters_are_kept_listed_by_source_and_removed() {
        let (_dir, store) = open();
        let letter = |source: &str, id: &str| DeadLetter {
            source: source.into(),
            event_id: id.into(),
            kind: "ticket.created".into(),
            tenant: "acme".into(),
            occurred_at_ms: 1,
            payload: "{}".into(),
            reason: "bad".into(),
            plugin_version: "1.0.0+abc".into(),
            at_ms: 2,
            attempts: 1,
        };
        store
            .put_dead_letters(&[letter("jira", "b"), letter("jira", "a"), letter("crm", "c")])
            .unwrap();
        let jira: Vec<_> = store
            .dead_letters(Some("jira"), 10)
            .unwrap()
            .into_iter()
            .map(|l| l.event_id)
            .collect();
        assert_eq!(jira, ["a", "b"]);
        assert_eq!(store.dead_letters(None, 10).unwrap().len(), 3);
        assert_eq!(store.dead_letters(None, 2).unwrap().len(), 2);
        assert!(store.remove_dead_letter("jira", "a").unwrap());
        assert!(!store.remove_dead_letter("jira", "a").unwrap());
        assert_eq!(store.dead_letters(Some("jira"), 10).unwrap().len(), 1);
        assert_eq!(store.last_seq().unwrap(), 0, "dead letters are not changes");
    }

    #[test]
    fn everything_committed_is_there_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/store.redb");
        {
            let store = Embedded::open(&path).unwrap();
            store
                .apply(&[event("e1", vec![upsert("A", 1, "{}")])])
                .unwrap();
        }
        let store = Embedded::open(&path).unwrap();
        assert_eq!(store.last_seq().unwrap(), 1);
        assert!(store.get(&id("A")).unwrap().is_some());
        assert_eq!(
            store.apply(&[event("e1", vec![])]).unwrap(),
            [EventOutcome::Duplicate]
        );
    }

    #[test]
    fn invalidations_join_the_log_and_trimming_keeps_the_tail() {
        let (_dir, store) = open();
        let mut signal = store.subscribe();
        store
            .apply(&[event("e1", vec![upsert("A", 1, "{}")])])
            .unwrap();
        assert_eq!(
            *signal.borrow_and_update(),
            1,
            "followers hear of the commit"
        );
        let seqs = store
            .log_invalidations(&[InvalidatedKey {
                id: id("site-1"),
                version: Some(4),
                occurred_at_ms: None,
            }])
            .unwrap();
        assert_eq!(seqs, [2]);
        assert!(signal.has_changed().unwrap());
        let log = store.changes(0, 10).unwrap();
        assert_eq!(log[1].kind, ChangeKind::Invalidate);
        assert_eq!((log[1].key.as_str(), log[1].version), ("site-1", 4));
        for n in 0..5 {
            store
                .apply(&[event(&format!("f{n}"), vec![upsert("B", n + 1, "{}")])])
                .unwrap();
        }
        assert_eq!(store.first_seq().unwrap(), 1);
        assert_eq!(store.trim_changes(3).unwrap(), 4);
        assert_eq!(store.first_seq().unwrap(), 5);
        let seqs: Vec<u64> = store
            .changes(0, 10)
            .unwrap()
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(seqs, [5, 6, 7]);
        assert_eq!(store.trim_changes(3).unwrap(), 0, "nothing more to trim");
        // Records stay; only the log is trimmed.
        assert!(store.get(&id("A")).unwrap().is_some());
    }
}
