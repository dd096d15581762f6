//! The read-through caches of one record type: found (`200`), not found (`404`)
//! and error (everything else), each with its own byte capacity and TTL.
//!
//! The caches are moka caches weighed by each entry's real size (key, body and
//! bookkeeping). An entry carries its own freshness: found entries are kept past
//! their TTL for as long as a stale window allows, so they can still be served
//! stale while revalidating or when the backing store fails; the cache's own
//! expiry is only the hard end of an entry's life.
//!
//! This module stores and looks up; deciding what to serve (fresh, stale,
//! coalesced or fetched) is the read path's job.

mod entry;

use std::sync::Arc;
use std::time::Duration;

use moka::notification::RemovalCause;
use moka::sync::Cache;

pub use entry::{Cached, Failure, Kind, Outcome, Producer};

use crate::config::{CachePolicy, CacheSettings};
use crate::metrics::{CACHE_BYTES, CACHE_CAPACITY_BYTES, CACHE_ENTRIES, CACHE_EVICTIONS};

/// A cache key: tenant and entity key, joined by a separator neither may contain.
pub type CacheKey = String;

/// Joins a tenant and a key into a cache key.
pub fn cache_key(tenant: &str, key: &str) -> CacheKey {
    let mut k = String::with_capacity(tenant.len() + 1 + key.len());
    k.push_str(tenant);
    k.push('\u{0}');
    k.push_str(key);
    k
}

/// The tenant and key a cache key joins (the inverse of [`cache_key`]).
pub fn split_cache_key(k: &str) -> (&str, &str) {
    k.split_once('\u{0}').unwrap_or(("", k))
}

/// The longest cache key: the longest tenant, the separator and the longest key.
const MAX_CACHE_KEY: usize = crate::key::MAX_TENANT_BYTES + 1 + crate::key::MAX_KEY_BYTES;

/// Runs `f` with the cache key of `tenant` and `key`, built on the stack: lookups,
/// which are most reads, allocate nothing.
pub fn with_cache_key<R>(tenant: &str, key: &str, f: impl FnOnce(&str) -> R) -> R {
    let len = tenant.len() + 1 + key.len();
    if len > MAX_CACHE_KEY {
        return f(&cache_key(tenant, key));
    }
    let mut buf = [0u8; MAX_CACHE_KEY];
    buf[..tenant.len()].copy_from_slice(tenant.as_bytes());
    buf[tenant.len() + 1..len].copy_from_slice(key.as_bytes());
    let joined =
        std::str::from_utf8(&buf[..len]).expect("two UTF-8 strings joined by NUL are UTF-8");
    f(joined)
}

/// The three caches of one record type.
#[derive(Debug)]
pub struct RecordCache {
    record_type: String,
    found: Cache<CacheKey, Arc<Cached>>,
    not_found: Option<Cache<CacheKey, Arc<Cached>>>,
    error: Option<Cache<CacheKey, Arc<Cached>>>,
    settings: CacheSettings,
}

impl RecordCache {
    /// Empty caches for `record_type` with `settings`.
    pub fn new(record_type: &str, settings: CacheSettings) -> Self {
        // Found records outlive their TTL by the longer stale window, so they can
        // still be served stale; the others are never served past their TTL.
        let stale = settings.stale_while_revalidate.max(settings.stale_if_error);
        let build = |kind: Kind, policy: CachePolicy, keep: Duration| {
            policy
                .enabled
                .then(|| build_cache(record_type, kind, policy, policy.ttl + keep))
        };
        Self {
            record_type: record_type.to_owned(),
            found: build(Kind::Found, settings.found, stale).expect("the found cache is always on"),
            not_found: build(Kind::NotFound, settings.not_found, Duration::ZERO),
            error: build(Kind::Error, settings.error, Duration::ZERO),
            settings,
        }
    }

    /// The settings the caches were built with.
    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// The TTL of entries of `kind`.
    pub fn ttl(&self, kind: Kind) -> Duration {
        self.policy(kind).ttl
    }

    fn policy(&self, kind: Kind) -> CachePolicy {
        match kind {
            Kind::Found => self.settings.found,
            Kind::NotFound => self.settings.not_found,
            Kind::Error => self.settings.error,
        }
    }

    fn cache(&self, kind: Kind) -> Option<&Cache<CacheKey, Arc<Cached>>> {
        match kind {
            Kind::Found => Some(&self.found),
            Kind::NotFound => self.not_found.as_ref(),
            Kind::Error => self.error.as_ref(),
        }
    }

    /// The entry of `kind` under `key`, fresh or not.
    pub fn get(&self, kind: Kind, key: &str) -> Option<Arc<Cached>> {
        self.cache(kind)?.get(key)
    }

    /// Stores a fresh outcome. A found record or a not-found answer supersedes
    /// whatever else was known about the key; an error leaves a found record in
    /// place, so it can still be served stale if the settings allow.
    pub fn store(&self, key: &str, entry: Arc<Cached>) {
        let kind = entry.kind();
        match kind {
            Kind::Found | Kind::NotFound => {
                for other in [Kind::Found, Kind::NotFound, Kind::Error] {
                    if other != kind
                        && let Some(cache) = self.cache(other)
                    {
                        cache.invalidate(key);
                    }
                }
            }
            Kind::Error => {}
        }
        if let Some(cache) = self.cache(kind) {
            cache.insert(key.to_owned(), entry);
        }
    }

    /// Removes `key` from all three caches; says whether anything was there.
    pub fn remove(&self, key: &str) -> bool {
        let mut removed = false;
        for kind in [Kind::Found, Kind::NotFound, Kind::Error] {
            if let Some(cache) = self.cache(kind) {
                removed |= cache.remove(key).is_some();
            }
        }
        removed
    }

    /// Removes every entry.
    pub fn clear(&self) {
        for kind in [Kind::Found, Kind::NotFound, Kind::Error] {
            if let Some(cache) = self.cache(kind) {
                cache.invalidate_all();
            }
        }
    }

    /// Drops every entry produced by plugin version `producer` (a version that
    /// was rolled back). Entries go lazily, before any of them is served again.
    pub fn drop_produced_by(&self, producer: u64) {
        for kind in [Kind::Found, Kind::NotFound, Kind::Error] {
            if let Some(cache) = self.cache(kind)
                && let Err(e) =
                    cache.invalidate_entries_if(move |_, entry| entry.producer.id == producer)
            {
                tracing::error!(error = %e, record_type = %self.record_type, "cannot drop a rolled-back version's entries; clearing the cache");
                cache.invalidate_all();
            }
        }
    }

    /// Drops every entry of `tenant` (it moved to another realm: what was
    /// fetched for it before came from the old realm's backing store).
    pub fn drop_tenant(&self, tenant: &str) {
        for kind in [Kind::Found, Kind::NotFound, Kind::Error] {
            if let Some(cache) = self.cache(kind) {
                let tenant = tenant.to_owned();
                if let Err(e) =
                    cache.invalidate_entries_if(move |k, _| split_cache_key(k).0 == tenant)
                {
                    tracing::error!(error = %e, record_type = %self.record_type, "cannot drop a moved tenant's entries; clearing the cache");
                    cache.invalidate_all();
                }
            }
        }
    }

    /// Runs the caches' pending bookkeeping (recorded reads, expiries, evictions).
    pub fn run_pending_tasks(&self) {
        for kind in [Kind::Found, Kind::NotFound, Kind::Error] {
            if let Some(cache) = self.cache(kind) {
                cache.run_pending_tasks();
            }
        }
    }

    /// Publishes entry counts and weighed sizes as gauges. Runs the caches'
    /// pending maintenance first, so the figures are current.
    pub fn publish_gauges(&self) {
        for kind in [Kind::Found, Kind::NotFound, Kind::Error] {
            let labels = [
                ("record_type", self.record_type.clone()),
                ("cache", kind.label().to_owned()),
            ];
            let (entries, bytes) = match self.cache(kind) {
                Some(cache) => {
                    cache.run_pending_tasks();
                    (cache.entry_count(), cache.weighted_size())
                }
                None => (0, 0),
            };
            metrics::gauge!(CACHE_ENTRIES, &labels).set(entries as f64);
            metrics::gauge!(CACHE_BYTES, &labels).set(bytes as f64);
            let capacity = if self.policy(kind).enabled {
                self.policy(kind).capacity_bytes
            } else {
                0
            };
            metrics::gauge!(CACHE_CAPACITY_BYTES, &labels).set(capacity as f64);
        }
    }
}

fn build_cache(
    record_type: &str,
    kind: Kind,
    policy: CachePolicy,
    lifetime: Duration,
) -> Cache<CacheKey, Arc<Cached>> {
    let evicted_for_size = metrics::counter!(
        CACHE_EVICTIONS,
        "record_type" => record_type.to_owned(),
        "cache" => kind.label(),
        "cause" => "size"
    );
    let evicted_for_age = metrics::counter!(
        CACHE_EVICTIONS,
        "record_type" => record_type.to_owned(),
        "cache" => kind.label(),
        "cause" => "expired"
    );
    Cache::builder()
        .max_capacity(policy.capacity_bytes)
        .weigher(|key: &CacheKey, entry: &Arc<Cached>| {
            u32::try_from(key.len() + entry.weight()).unwrap_or(u32::MAX)
        })
        .time_to_live(lifetime)
        .support_invalidation_closures()
        .eviction_listener(move |_key, _entry, cause| match cause {
            RemovalCause::Size => evicted_for_size.increment(1),
            RemovalCause::Expired => evicted_for_age.increment(1),
            RemovalCause::Explicit | RemovalCause::Replaced => {}
        })
        .build()
}
