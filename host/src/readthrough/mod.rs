//! The read path for read-through record types: a consumer's read of one key,
//! answered from the record type's caches or through its adapter.
//!
//! Per record type ([`Reader`](reader)): a fresh cached entry is served at once
//! and is never limited; an expired found record may be served stale while one
//! background fetch refreshes it, or when fetching fails; concurrent misses for a
//! key share one fetch; at most `max_in_flight` fetches run at once, and a miss
//! past that is refused immediately. Invalidations remove a key everywhere and
//! keep a fetch that started before them from writing back.

mod flight;
mod invalidation;
mod reader;

use std::collections::HashMap;
use std::sync::Arc;

pub use invalidation::{Applied, Invalidation};
pub use reader::WhenBusy;

use crate::cache::Cached;
use crate::config::Mode;
use crate::key::{EntityKey, TenantId};
use crate::plugins::Registry;
use reader::{Busy, Reader};

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// A fresh cache entry.
    Hit,
    /// A fetch this request started.
    Miss,
    /// An expired entry, served while revalidating or because fetching failed.
    Stale,
    /// A fetch another request had already started.
    Coalesced,
}

impl CacheStatus {
    /// The value of the `Droid-Cache` header and metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Stale => "stale",
            CacheStatus::Coalesced => "coalesced",
        }
    }
}

/// An answer to a read.
#[derive(Debug, Clone)]
pub struct Served {
    /// The cached outcome (found, not found or a failure).
    pub entry: Arc<Cached>,
    /// Where it came from.
    pub status: CacheStatus,
    /// The record type's stale-while-revalidate window, for `Cache-Control`.
    pub stale_while_revalidate: std::time::Duration,
    /// The record type's stale-if-error window, for `Cache-Control`.
    pub stale_if_error: std::time::Duration,
}

/// Why a read produced no answer at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// No record type of that name is configured.
    #[error("no record type named {0:?}")]
    UnknownRecordType(String),
    /// The record type is ingested, not read-through.
    #[error("record type {0:?} is not a read-through record type")]
    NotReadThrough(String),
    /// The record type's in-flight limit is reached and nothing cached could be served.
    #[error("record type {record_type:?} already has {limit} fetches in flight; try again shortly")]
    Busy {
        /// The record type.
        record_type: String,
        /// Its limit.
        limit: u32,
    },
}

/// The read path of every read-through record type.
#[derive(Clone)]
pub struct ReadThrough {
    readers: Arc<HashMap<String, Arc<Reader>>>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for ReadThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadThrough")
            .field("record_types", &self.readers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ReadThrough {
    /// Caches and read paths for every read-through record type in `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        let readers = registry
            .iter()
            .filter_map(|(name, binding)| {
                let Mode::ReadThrough(config) = &binding.config.mode else {
                    return None;
                };
                let adapter = binding.adapter()?.clone();
                let reader = Reader::new(name, config, adapter, binding.context.clone());
                Some((name.clone(), Arc::new(reader)))
            })
            .collect();
        Self {
            readers: Arc::new(readers),
            registry,
        }
    }

    fn reader(&self, record_type: &str) -> Result<&Arc<Reader>, ReadError> {
        match self.readers.get(record_type) {
            Some(reader) => Ok(reader),
            None if self.registry.get(record_type).is_some() => {
                Err(ReadError::NotReadThrough(record_type.to_owned()))
            }
            None => Err(ReadError::UnknownRecordType(record_type.to_owned())),
        }
    }

    /// Reads `key` of `tenant` from `record_type`.
    pub async fn get(
        &self,
        record_type: &str,
        key: &EntityKey,
        tenant: &TenantId,
        when_busy: WhenBusy,
    ) -> Result<Served, ReadError> {
        let reader = self.reader(record_type)?;
        reader
            .get(key, tenant, when_busy)
            .await
            .map_err(|Busy| ReadError::Busy {
                record_type: record_type.to_owned(),
                limit: reader.max_in_flight(),
            })
    }

    /// Checks that `record_type` can be read through, without reading.
    pub fn check(&self, record_type: &str) -> Result<(), ReadError> {
        self.reader(record_type).map(|_| ())
    }

    /// Applies one invalidation event.
    pub fn invalidate(
        &self,
        event: &Invalidation,
        key: &EntityKey,
        tenant: &TenantId,
    ) -> Result<Applied, ReadError> {
        Ok(self
            .reader(&event.record_type)?
            .invalidate(event, key, tenant))
    }

    /// Publishes cache sizes and hit ratios; called before metrics are rendered.
    pub fn publish_gauges(&self) {
        for reader in self.readers.values() {
            reader.publish_gauges();
        }
    }

    /// Runs the caches' pending bookkeeping now.
    pub fn run_pending_tasks(&self) {
        for reader in self.readers.values() {
            reader.run_pending_tasks();
        }
    }

    /// The names of the read-through record types.
    pub fn record_types(&self) -> impl Iterator<Item = &str> {
        self.readers.values().map(|r| r.name())
    }
}
