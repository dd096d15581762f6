//! The read path of one read-through record type: caches, stale windows,
//! coalescing, the in-flight limit and invalidation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::flight::{Flight, FlightResult, Flights, share};
use super::invalidation::Mark;
use super::origin::Origin;
use super::{CacheStatus, Served};
use crate::cache::{
    CacheKey, Cached, Failure, Kind, Outcome, RecordCache, cache_key, split_cache_key,
    with_cache_key,
};
use crate::config::CacheSettings;
use crate::entity::FetchOutcome;
use crate::failure::{Context, FetchError, Journal};
use crate::key::{EntityKey, TenantId};
use crate::metrics::{
    CACHE_HIT_RATIO, CACHE_INVALIDATIONS, CACHE_REQUESTS, FETCHES_IN_FLIGHT, FETCHES_REJECTED,
};

/// How long an applied invalidation is remembered per key, to order later events
/// against it and to stop fetches that started before it from writing back.
const INVALIDATION_MEMORY: Duration = Duration::from_secs(3600);
/// The most keys whose last invalidation is remembered.
const INVALIDATION_KEYS: u64 = 1_000_000;

mod changes;

pub use changes::Update;

/// What to do when the in-flight limit is reached.
#[derive(Debug, Clone, Copy)]
pub enum WhenBusy {
    /// Answer at once (`429`, or a stale record when allowed): single reads.
    Reject,
    /// Wait for a slot until the given instant: batch reads, which spread their
    /// misses over the limit rather than failing most of them.
    WaitUntil(Instant),
}

/// The read path of one record type.
pub struct Reader {
    name: String,
    origin: Arc<dyn Origin>,
    cache: RecordCache,
    limit: Arc<Semaphore>,
    max_in_flight: u32,
    flights: Flights,
    invalidation_seq: AtomicU64,
    /// The sequence number of the last [`Reader::clear`]: fetches that started
    /// before it do not write back.
    cleared_seq: AtomicU64,
    invalidations: moka::sync::Cache<CacheKey, Mark>,
    metrics: ReaderMetrics,
    /// Where failed fetches' details are kept, by the id answers name.
    journal: Arc<Journal>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("name", &self.name)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

/// Pre-registered metric handles: the hit path costs an atomic add, no lookups.
struct ReaderMetrics {
    hit: metrics::Counter,
    miss: metrics::Counter,
    stale: metrics::Counter,
    coalesced: metrics::Counter,
    rejected: metrics::Counter,
    invalidated: metrics::Counter,
    in_flight: metrics::Gauge,
    hit_ratio: metrics::Gauge,
    served_from_cache: AtomicU64,
    served: AtomicU64,
}

impl ReaderMetrics {
    fn new(name: &str) -> Self {
        let result = |r: &'static str| metrics::counter!(CACHE_REQUESTS, "record_type" => name.to_owned(), "result" => r);
        Self {
            hit: result("hit"),
            miss: result("miss"),
            stale: result("stale"),
            coalesced: result("coalesced"),
            rejected: metrics::counter!(FETCHES_REJECTED, "record_type" => name.to_owned()),
            invalidated: metrics::counter!(CACHE_INVALIDATIONS, "record_type" => name.to_owned()),
            in_flight: metrics::gauge!(FETCHES_IN_FLIGHT, "record_type" => name.to_owned()),
            hit_ratio: metrics::gauge!(CACHE_HIT_RATIO, "record_type" => name.to_owned()),
            served_from_cache: AtomicU64::new(0),
            served: AtomicU64::new(0),
        }
    }

    fn count(&self, status: CacheStatus) {
        match status {
            CacheStatus::Hit => self.hit.increment(1),
            CacheStatus::Miss => self.miss.increment(1),
            CacheStatus::Stale => self.stale.increment(1),
            CacheStatus::Coalesced => self.coalesced.increment(1),
        }
        if status != CacheStatus::Miss {
            self.served_from_cache.fetch_add(1, Ordering::Relaxed);
        }
        self.served.fetch_add(1, Ordering::Relaxed);
    }
}

/// A miss that could not start a fetch: the in-flight limit is reached.
#[derive(Debug)]
pub struct Busy;

/// What the caches alone can answer.
enum Lookup {
    /// Serve this entry.
    Serve(Arc<Cached>, CacheStatus),
    /// Serve this expired entry and refresh it in the background.
    Revalidate(Arc<Cached>),
    /// Fetch; `fallback` may be served if the fetch fails.
    Miss { fallback: Option<Arc<Cached>> },
}

impl Reader {
    /// A reader of `name` with empty caches, fetching its misses from `origin`,
    /// at most `max_in_flight` at once, keeping failures' details in `journal`.
    pub fn new(
        name: &str,
        cache: CacheSettings,
        max_in_flight: u32,
        origin: Arc<dyn Origin>,
        journal: Arc<Journal>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            origin,
            cache: RecordCache::new(name, cache),
            limit: Arc::new(Semaphore::new(max_in_flight as usize)),
            max_in_flight,
            flights: Flights::default(),
            invalidation_seq: AtomicU64::new(0),
            cleared_seq: AtomicU64::new(0),
            invalidations: moka::sync::Cache::builder()
                .max_capacity(INVALIDATION_KEYS)
                .time_to_live(INVALIDATION_MEMORY)
                .build(),
            metrics: ReaderMetrics::new(name),
            journal,
        }
    }

    /// A failure of a fetch task itself (a panic, a shutdown), kept in the
    /// journal like any failed fetch.
    fn task_failed(&self, error: FetchError) -> Failure {
        let at = Context {
            record_type: &self.name,
            key: "",
            tenant: "",
            plugin_version: None,
        };
        Failure::logged(error, &self.journal, at)
    }

    /// The most fetches it runs at once.
    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight
    }

    /// Reads `key` of `tenant`: from the caches, or through the origin.
    pub async fn read(
        self: &Arc<Self>,
        key: &EntityKey,
        tenant: &TenantId,
        when_busy: WhenBusy,
    ) -> Result<Served, Busy> {
        match self.cached(key, tenant) {
            Ok(served) => Ok(served),
            Err(fallback) => self.fetch(key, tenant, when_busy, fallback).await,
        }
    }

    /// Answers `key` of `tenant` from the caches alone, or says it must be
    /// fetched (with the stale entry to fall back on if fetching fails).
    pub(super) fn cached(
        self: &Arc<Self>,
        key: &EntityKey,
        tenant: &TenantId,
    ) -> Result<Served, Option<Arc<Cached>>> {
        let now = Instant::now();
        match with_cache_key(tenant.as_str(), key.as_str(), |k| self.lookup(k, now)) {
            Lookup::Serve(entry, status) => Ok(self.served(entry, status)),
            Lookup::Revalidate(entry) => {
                self.revalidate(&cache_key(tenant.as_str(), key.as_str()), key, tenant);
                Ok(self.served(entry, CacheStatus::Stale))
            }
            Lookup::Miss { fallback } => Err(fallback),
        }
    }

    /// Fetches `key` of `tenant` through the adapter (or joins the fetch in
    /// flight). `Err(Busy)` only when nothing can be served and no fetch could
    /// start.
    pub(super) async fn fetch(
        self: &Arc<Self>,
        key: &EntityKey,
        tenant: &TenantId,
        when_busy: WhenBusy,
        fallback: Option<Arc<Cached>>,
    ) -> Result<Served, Busy> {
        let k = cache_key(tenant.as_str(), key.as_str());
        let (result, status) = match self.join_or_start(&k, key, tenant, when_busy).await {
            Ok(flight) => flight,
            Err(Busy) => {
                self.metrics.rejected.increment(1);
                return match fallback {
                    Some(stale) => Ok(self.served(stale, CacheStatus::Stale)),
                    None => Err(Busy),
                };
            }
        };
        let entry = result.await;
        Ok(match (&entry.outcome, fallback) {
            (Outcome::Failed(_), Some(stale)) => self.served(stale, CacheStatus::Stale),
            _ => self.served(entry, status),
        })
    }

    /// What the caches can answer for `k` at `now`, without fetching.
    fn lookup(&self, k: &str, now: Instant) -> Lookup {
        let settings = self.cache.settings();
        // A stale found record that may still be served if fetching fails.
        let mut fallback = None;
        if let Some(entry) = self.cache.get(Kind::Found, k) {
            if entry.is_fresh(now) {
                return Lookup::Serve(entry, CacheStatus::Hit);
            }
            if entry.within_stale_window(now, settings.stale_while_revalidate) {
                return Lookup::Revalidate(entry);
            }
            if entry.within_stale_window(now, settings.stale_if_error) {
                fallback = Some(entry);
            }
        }
        if let Some(entry) = self.cache.get(Kind::NotFound, k)
            && entry.is_fresh(now)
        {
            return Lookup::Serve(entry, CacheStatus::Hit);
        }
        if let Some(entry) = self.cache.get(Kind::Error, k)
            && entry.is_fresh(now)
        {
            return match fallback {
                Some(stale) => Lookup::Serve(stale, CacheStatus::Stale),
                None => Lookup::Serve(entry, CacheStatus::Hit),
            };
        }
        Lookup::Miss { fallback }
    }

    fn served(&self, entry: Arc<Cached>, status: CacheStatus) -> Served {
        self.metrics.count(status);
        let settings = self.cache.settings();
        Served {
            entry,
            status,
            stale_while_revalidate: settings.stale_while_revalidate,
            stale_if_error: settings.stale_if_error,
        }
    }

    /// Joins the fetch in flight for `k`, or starts one if a slot is free.
    async fn join_or_start(
        self: &Arc<Self>,
        k: &CacheKey,
        key: &EntityKey,
        tenant: &TenantId,
        when_busy: WhenBusy,
    ) -> Result<(FlightResult, CacheStatus), Busy> {
        let mut permit = None;
        loop {
            {
                let mut flights = self.flights.lock();
                if let Some(flight) = flights.get(k) {
                    return Ok((flight.result.clone(), CacheStatus::Coalesced));
                }
                if let Some(p) = permit
                    .take()
                    .or_else(|| self.limit.clone().try_acquire_owned().ok())
                {
                    let flight = self.start(k.clone(), key.clone(), tenant.clone(), p);
                    let result = flight.result.clone();
                    flights.insert(k.clone(), flight);
                    return Ok((result, CacheStatus::Miss));
                }
            }
            // Busy: wait for a slot (outside the lock), then look again, since a
            // fetch for this key may have started meanwhile.
            let WhenBusy::WaitUntil(deadline) = when_busy else {
                return Err(Busy);
            };
            let acquire = self.limit.clone().acquire_owned();
            match tokio::time::timeout_at(deadline.into(), acquire).await {
                Ok(Ok(p)) => permit = Some(p),
                _ => return Err(Busy),
            }
        }
    }

    /// Starts a background fetch for a stale entry, unless one is already in
    /// flight for the key or no slot is free (the stale entry keeps being served).
    fn revalidate(self: &Arc<Self>, k: &CacheKey, key: &EntityKey, tenant: &TenantId) {
        let mut flights = self.flights.lock();
        if flights.contains_key(k) {
            return;
        }
        if let Ok(permit) = self.limit.clone().try_acquire_owned() {
            let flight = self.start(k.clone(), key.clone(), tenant.clone(), permit);
            flights.insert(k.clone(), flight);
        }
    }

    /// Spawns the fetch. Called with the flight table locked, so the sequence
    /// number read here orders the fetch against invalidations.
    fn start(
        self: &Arc<Self>,
        k: CacheKey,
        key: EntityKey,
        tenant: TenantId,
        permit: OwnedSemaphorePermit,
    ) -> Flight {
        let id = self.flights.next_id();
        let started_seq = self.invalidation_seq.load(Ordering::SeqCst);
        let reader = Arc::clone(self);
        let task = tokio::spawn(async move {
            reader.metrics.in_flight.increment(1.0);
            let fetched = reader.origin.fetch(key, tenant).await;
            let now = Instant::now();
            let kind = match &fetched.result {
                Ok(FetchOutcome::Found(_)) => Kind::Found,
                Ok(FetchOutcome::NotFound) => Kind::NotFound,
                Err(_) => Kind::Error,
            };
            let ttl = match fetched.fresh_for {
                Some(fresh_for) => fresh_for.min(reader.cache.ttl(kind)),
                None => reader.cache.ttl(kind),
            };
            let still_current = fetched.still_current;
            let version = fetched.producer.label.as_ref();
            let result = fetched.result.map_err(|error| {
                let (tenant, key) = split_cache_key(&k);
                let at = Context {
                    record_type: &reader.name,
                    key,
                    tenant,
                    plugin_version: version.and_then(|v| v.to_str().ok()),
                };
                Failure::logged(error, &reader.journal, at)
            });
            let entry = Arc::new(Cached::new(result, fetched.producer, now, ttl));
            {
                let mut flights = reader.flights.lock();
                let invalidated = reader.cleared_seq.load(Ordering::SeqCst) > started_seq
                    || reader
                        .invalidations
                        .get(&k)
                        .is_some_and(|mark| mark.seq > started_seq);
                // A version rolled back meanwhile leaves nothing behind: its
                // entries are being dropped, and this one must not outlive them.
                if !invalidated && still_current() {
                    reader.cache.store(&k, entry.clone());
                    if !still_current() {
                        reader.cache.remove(&k);
                    }
                }
                if flights.get(&k).is_some_and(|f| f.id == id) {
                    flights.remove(&k);
                }
            }
            drop(permit);
            reader.metrics.in_flight.decrement(1.0);
            entry
        });
        Flight {
            id,
            result: share(task, {
                let reader = Arc::clone(self);
                move |error| reader.task_failed(error)
            }),
        }
    }

    /// Empties the caches; fetches in flight will not write back. For a
    /// follower that lost track of its owner's changes and starts over.
    pub fn clear(&self) {
        let mut flights = self.flights.lock();
        let seq = self.invalidation_seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.cleared_seq.store(seq, Ordering::SeqCst);
        flights.clear();
        self.cache.clear();
    }

    /// Publishes the gauges computed from counters and cache sizes.
    pub fn publish_gauges(&self) {
        let served = self.metrics.served.load(Ordering::Relaxed);
        if served > 0 {
            let ratio =
                self.metrics.served_from_cache.load(Ordering::Relaxed) as f64 / served as f64;
            self.metrics.hit_ratio.set(ratio);
        }
        self.cache.publish_gauges();
    }

    /// Drops the entries plugin version `producer` made.
    pub(super) fn drop_produced_by(&self, producer: u64) {
        self.cache.drop_produced_by(producer);
    }

    /// Drops everything cached of `tenant` (it moved realms, or was erased).
    pub fn drop_tenant(&self, tenant: &str) {
        self.cache.drop_tenant(tenant);
    }

    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
        self.invalidations.run_pending_tasks();
    }

    /// The record type's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
