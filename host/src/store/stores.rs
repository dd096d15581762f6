//! One of each store trait, as the service holds them.

use std::sync::Arc;
use std::time::Duration;

use super::{Cached, DeadLetters, EventOutcome, Records, Snapshots, StoreError, VerifySnapshot};

/// The records (through the read cache when there is one), dead letters and
/// snapshot batches droid works with. Records are reached only through
/// `records`, so no write can go around the cache.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Records and the change log.
    pub records: Arc<dyn Records>,
    /// Events that could not be ingested.
    pub dead_letters: Arc<dyn DeadLetters>,
    /// Snapshot batches being staged.
    pub snapshots: Arc<dyn Snapshots>,
}

/// The read cache in front of records: at most `capacity_bytes`, each entry
/// kept at most `ttl`.
#[derive(Debug, Clone, Copy)]
pub struct CacheSize {
    /// Its bound in bytes; 0 for no cache.
    pub capacity_bytes: u64,
    /// How long an entry is kept at most.
    pub ttl: Duration,
}

impl Stores {
    /// All three from one backend, with a read cache of `cache` in front of its
    /// records (none when its capacity is 0).
    pub fn of<B>(backend: B, cache: CacheSize) -> Self
    where
        B: Records + DeadLetters + Snapshots + 'static,
    {
        let backend = Arc::new(backend);
        let records: Arc<dyn Records> = match cache.capacity_bytes {
            0 => backend.clone(),
            capacity => Arc::new(Cached::new(backend.clone(), capacity, cache.ttl)),
        };
        Self {
            records,
            dead_letters: backend.clone(),
            snapshots: backend,
        }
    }

    /// Commits snapshot `id` (see [`Snapshots::commit_snapshot`]) and tells the
    /// records, so the read cache forgets what the commit changed.
    pub fn commit_snapshot(
        &self,
        id: &str,
        verify: &VerifySnapshot,
    ) -> Result<Result<Vec<EventOutcome>, String>, StoreError> {
        let verdict = self.snapshots.commit_snapshot(id, verify)?;
        if let Ok(outcomes) = &verdict {
            self.records.committed_elsewhere(outcomes);
        }
        Ok(verdict)
    }
}
