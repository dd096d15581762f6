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
mod origin;
mod reader;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use invalidation::{Applied, Invalidation};
pub use origin::{Fetched, Origin};
pub use reader::{Busy, Reader, Update, WhenBusy};

use crate::cache::Cached;
use crate::config::{Mode, RecordTypeConfig};
use crate::failure::Journal;
use crate::key::{EntityKey, TenantId};
use crate::plugins::{Binding, Plugin, Registry};
use origin::PluginOrigin;

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

/// The read path of every read-through record type. Its set of record types is
/// swapped whole on a configuration reload; readers of unchanged record types
/// carry over with their caches.
pub struct ReadThrough {
    readers: ArcSwap<Readers>,
    /// Where every reader keeps its failures' details.
    journal: Arc<Journal>,
    /// The realm of a tenant, for record types whose backing store has a
    /// base URL per realm.
    realm_of: RealmOf,
}

/// Tells the realm a tenant's data is in (`None`: no realms declared).
pub type RealmOf = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The readers of one configuration.
#[derive(Default)]
struct Readers {
    by_name: HashMap<String, Bound>,
    /// Record types that exist but are not read-through.
    others: HashSet<String>,
}

/// A reader and what it was built from: a reload reuses the reader (and its
/// caches) when neither the record type's configuration nor its plugin changed.
struct Bound {
    reader: Arc<Reader>,
    config: Arc<RecordTypeConfig>,
    plugin: Arc<Plugin>,
}

impl Bound {
    fn serves(&self, binding: &Binding) -> bool {
        Arc::ptr_eq(&self.plugin, &binding.plugin) && *self.config == *binding.config
    }
}

impl Readers {
    fn get(&self, record_type: &str) -> Result<&Arc<Reader>, ReadError> {
        match self.by_name.get(record_type) {
            Some(bound) => Ok(&bound.reader),
            None if self.others.contains(record_type) => {
                Err(ReadError::NotReadThrough(record_type.to_owned()))
            }
            None => Err(ReadError::UnknownRecordType(record_type.to_owned())),
        }
    }
}

impl std::fmt::Debug for ReadThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadThrough")
            .field(
                "record_types",
                &self.readers.load().by_name.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ReadThrough {
    /// Caches and read paths for every read-through record type in
    /// `registry`, keeping failed fetches' details in `journal`.
    /// Misses of a tenant go to its realm's base URL, as `realm_of` tells.
    pub fn new(registry: &Registry, journal: Arc<Journal>, realm_of: RealmOf) -> Self {
        Self {
            readers: ArcSwap::from_pointee(build(
                registry,
                &Readers::default(),
                &journal,
                &realm_of,
            )),
            journal,
            realm_of,
        }
    }

    /// Where failed fetches' details are kept, by error id.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Switches to the record types of `registry`: unchanged ones keep their
    /// readers and caches, changed ones start empty, removed ones are dropped
    /// once the reads in flight on them end.
    pub fn rebind(&self, registry: &Registry) {
        let old = self.readers.load_full();
        self.readers.store(Arc::new(build(
            registry,
            &old,
            &self.journal,
            &self.realm_of,
        )));
    }

    /// Reads `key` of `tenant` from `record_type`.
    pub async fn get(
        &self,
        record_type: &str,
        key: &EntityKey,
        tenant: &TenantId,
        when_busy: WhenBusy,
    ) -> Result<Served, ReadError> {
        let (reader, fallback) = {
            let readers = self.readers.load();
            let reader = readers.get(record_type)?;
            match reader.cached(key, tenant) {
                Ok(served) => return Ok(served),
                Err(fallback) => (reader.clone(), fallback),
            }
        };
        reader
            .fetch(key, tenant, when_busy, fallback)
            .await
            .map_err(|Busy| ReadError::Busy {
                record_type: record_type.to_owned(),
                limit: reader.max_in_flight(),
            })
    }

    /// Checks that `record_type` can be read through, without reading.
    pub fn check(&self, record_type: &str) -> Result<(), ReadError> {
        self.readers.load().get(record_type).map(|_| ())
    }

    /// Applies one invalidation event.
    pub fn invalidate(
        &self,
        event: &Invalidation,
        key: &EntityKey,
        tenant: &TenantId,
    ) -> Result<Applied, ReadError> {
        Ok(self
            .readers
            .load()
            .get(&event.record_type)?
            .invalidate(event, key, tenant))
    }

    /// Publishes cache sizes and hit ratios; called before metrics are rendered.
    pub fn publish_gauges(&self) {
        for Bound { reader, .. } in self.readers.load().by_name.values() {
            reader.publish_gauges();
        }
    }

    /// Runs the caches' pending bookkeeping now.
    pub fn run_pending_tasks(&self) {
        for Bound { reader, .. } in self.readers.load().by_name.values() {
            reader.run_pending_tasks();
        }
    }

    /// Drops, in every record type, the cache entries plugin version `producer`
    /// made (it was rolled back).
    pub fn drop_produced_by(&self, producer: u64) {
        for Bound { reader, .. } in self.readers.load().by_name.values() {
            reader.drop_produced_by(producer);
        }
    }

    /// Drops, in every record type, the entries of `tenant`: it moved to
    /// another realm, whose backing stores answer for it from now on.
    pub fn drop_tenant(&self, tenant: &str) {
        for Bound { reader, .. } in self.readers.load().by_name.values() {
            reader.drop_tenant(tenant);
        }
    }

    /// The names of the read-through record types.
    pub fn record_types(&self) -> Vec<String> {
        let readers = self.readers.load();
        let mut names: Vec<_> = readers
            .by_name
            .values()
            .map(|b| b.reader.name().to_owned())
            .collect();
        names.sort();
        names
    }
}

/// The readers for `registry`, reusing those of `old` that still fit.
fn build(
    registry: &Registry,
    old: &Readers,
    journal: &Arc<Journal>,
    realm_of: &RealmOf,
) -> Readers {
    let mut readers = Readers::default();
    for (name, binding) in registry.iter() {
        let Mode::ReadThrough(config) = &binding.config.mode else {
            readers.others.insert(name.clone());
            continue;
        };
        let reader = match old.by_name.get(name) {
            Some(bound) if bound.serves(binding) => bound.reader.clone(),
            _ => {
                let origin = PluginOrigin {
                    plugin: binding.plugin.clone(),
                    context: binding.context.clone(),
                    realm_of: (!config.realm_base_urls.is_empty()).then(|| realm_of.clone()),
                };
                Arc::new(Reader::new(
                    name,
                    config.cache,
                    binding.config.max_in_flight,
                    Arc::new(origin),
                    journal.clone(),
                ))
            }
        };
        let bound = Bound {
            reader,
            config: binding.config.clone(),
            plugin: binding.plugin.clone(),
        };
        readers.by_name.insert(name.clone(), bound);
    }
    readers
}
