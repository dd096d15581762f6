//! The embedded store: one redb file, nothing to install.
//!
//! Tables: `records` (record key → record with its version and last sequence
//! number; deletions stay as tombstones so an older upsert arriving later cannot
//! bring a record back), `changes` (sequence number → change, JSON), `events`
//! (source and event id → nothing: the ids seen) and `meta` (the last sequence
//! number), the tenant directory's `pins` and `migrations`, and recovery's
//! `operations` and `audit`. One write transaction per batch, committed with redb's default
//! durability (synced to disk before `apply` returns).

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};

use super::{EventOutcome, Records, StoreError};

const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("records");
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
const EVENTS: TableDefinition<&[u8], ()> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const DEAD_LETTERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("dead_letters");
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
/// Staged events: (snapshot id, position) → event.
const STAGED: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("staged");
/// The tenant directory: tenant → its pin (JSON).
const PINS: TableDefinition<&str, &[u8]> = TableDefinition::new("pins");
/// Realm migrations: id → migration (JSON).
const MIGRATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("migrations");
/// Recovery operations: id → operation (JSON).
const OPERATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("operations");
/// The audit log: number → entry (JSON).
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const LAST_SEQ: &str = "last_seq";
/// The first sequence number the change log holds (1 until it is trimmed).
const FIRST_SEQ: &str = "first_seq";
/// A random number drawn when the file was made: which store this is.
const INSTANCE: &str = "instance";

/// The store in one redb file.
#[derive(Debug)]
pub struct Embedded {
    /// Behind a lock only so compaction (which needs it alone) can run:
    /// every other call takes it shared for the moment of beginning a
    /// transaction.
    db: std::sync::RwLock<Database>,
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

mod dead_letters;
mod directory;
mod records;
mod recovery;
mod snapshots;

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
            try_io!("open", txn.open_table(PINS));
            try_io!("open", txn.open_table(MIGRATIONS));
            try_io!("open", txn.open_table(OPERATIONS));
            try_io!("open", txn.open_table(AUDIT));
            let mut meta = try_io!("open", txn.open_table(META));
            if try_io!("open", meta.get(INSTANCE)).is_none() {
                let mut instance = [0u8; 8];
                getrandom::fill(&mut instance).map_err(|e| StoreError::Open {
                    path: path.display().to_string(),
                    reason: format!("no random number for the store's identity: {e}"),
                })?;
                try_io!("open", meta.insert(INSTANCE, u64::from_le_bytes(instance)));
            }
        }
        try_io!("open", txn.commit());
        let store = Self {
            db: std::sync::RwLock::new(db),
            grown: tokio::sync::watch::Sender::new(0),
        };
        store.grown.send_replace(store.last_seq()?);
        Ok(store)
    }
}

impl Embedded {
    /// The database, to begin a transaction on (transactions do not borrow it).
    fn db(&self) -> std::sync::RwLockReadGuard<'_, Database> {
        self.db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Compacts the file: removed records' pages are reused or cut off the
    /// end. Waits for transactions in progress to end (new ones wait for it).
    fn compact_file(&self) -> Result<(), StoreError> {
        let mut db = self
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut busy = 0u32;
        loop {
            match db.compact() {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(redb::CompactionError::TransactionInProgress) if busy < 10_000 => {
                    busy += 1;
                    // Those in progress end; no new one can begin meanwhile.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => {
                    return Err(StoreError::Io {
                        operation: "compact",
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

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

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("does not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::super::conformance::{event, id, upsert};
    use super::super::{EventOutcome, Records};
    use super::Embedded;

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
        assert_eq!(*store.subscribe().borrow(), 1, "followers start at the end");
        assert!(store.get(&id("A")).unwrap().is_some());
        assert_eq!(
            store.apply(&[event("e1", vec![])]).unwrap(),
            [EventOutcome::Duplicate]
        );
    }
}
