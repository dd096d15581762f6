//! One of each store trait, as the service holds them.

use std::sync::Arc;
use std::time::Duration;

use super::{
    Cached, DeadLetters, Directory, EventOutcome, Fleet, Records, Recovery, Snapshots, StoreError,
    VerifySnapshot,
};

/// The records (through the read cache when there is one), dead letters,
/// snapshot batches and tenant directory droid works with. Records are reached only through
/// `records`, so no write can go around the cache.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Records and the change log.
    pub records: Arc<dyn Records>,
    /// Events that could not be ingested.
    pub dead_letters: Arc<dyn DeadLetters>,
    /// Snapshot batches being staged.
    pub snapshots: Arc<dyn Snapshots>,
    /// The tenant directory (what `tenancy` reads from the store every node
    /// shares; a realm's own store has one too, unused).
    pub directory: Arc<dyn Directory>,
    /// Recovery's operations and the audit log (like the directory, read
    /// from the store every node shares).
    pub recovery: Arc<dyn Recovery>,
    /// What a fleet of nodes shares, when the backend is shared (`None`: this
    /// node is alone, and plugin files and decisions stay on its disk).
    pub fleet: Option<Arc<dyn Fleet>>,
}

impl Stores {
    /// Each trait from one backend, with a read cache of at most
    /// `cache_bytes` (none when 0), each entry kept at most `cache_ttl`, in
    /// front of its records.
    pub fn of<B>(backend: B, cache_bytes: u64, cache_ttl: Duration) -> Self
    where
        B: Records + DeadLetters + Snapshots + Directory + Recovery + 'static,
    {
        Self::around(Arc::new(backend), cache_bytes, cache_ttl)
    }

    /// Each trait, [`Fleet`] too, from a backend several nodes share (see [`Stores::of`]).
    pub fn shared<B>(backend: B, cache_bytes: u64, cache_ttl: Duration) -> Self
    where
        B: Records + DeadLetters + Snapshots + Directory + Recovery + Fleet + 'static,
    {
        let backend = Arc::new(backend);
        let fleet: Arc<dyn Fleet> = backend.clone();
        Self {
            fleet: Some(fleet),
            ..Self::around(backend, cache_bytes, cache_ttl)
        }
    }

    fn around<B>(backend: Arc<B>, cache_bytes: u64, cache_ttl: Duration) -> Self
    where
        B: Records + DeadLetters + Snapshots + Directory + Recovery + 'static,
    {
        let records: Arc<dyn Records> = match cache_bytes {
            0 => backend.clone(),
            capacity => Arc::new(Cached::new(backend.clone(), capacity, cache_ttl)),
        };
        Self {
            records,
            dead_letters: backend.clone(),
            snapshots: backend.clone(),
            directory: backend.clone(),
            recovery: backend,
            fleet: None,
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
