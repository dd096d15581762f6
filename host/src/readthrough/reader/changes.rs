//! What changes a reader's caches from outside its own fetches: an
//! invalidation (`POST /v1/invalidate`, or one the change feed carries), a
//! change its owner pushed (a sidecar following the feed), and records read in
//! bulk (a replica's initial load). Each is ordered against fetches in flight
//! by the reader's sequence of changes, so none is undone by a fetch that
//! started before it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::super::invalidation::{Applied, Invalidation, Mark};
use super::Reader;
use crate::cache::{Cached, Kind, cache_key};
use crate::entity::{Entity, FetchOutcome};
use crate::key::{EntityKey, TenantId};

/// A change to one key that its owner pushed (a sidecar following the change
/// feed): applied in order, unconditionally, ahead of any fetch in flight.
#[derive(Debug, Clone)]
pub enum Update {
    /// The record is now `body` at `version`.
    Upsert {
        /// The record as JSON.
        body: String,
        /// Its version.
        version: u64,
    },
    /// The record is gone.
    Delete,
    /// Whatever is cached for the key is no longer valid.
    Invalidate,
}

impl Reader {
    /// Applies an invalidation of `key` of `tenant`, unless it is older than what
    /// the cache already saw for the key.
    pub(in crate::readthrough) fn invalidate(
        &self,
        event: &Invalidation,
        key: &EntityKey,
        tenant: &TenantId,
    ) -> Applied {
        let k = cache_key(tenant.as_str(), key.as_str());
        let mut flights = self.flights.lock();
        if let Some(mark) = self.invalidations.get(&k)
            && mark.supersedes(event)
        {
            return Applied::Ignored {
                reason: "an invalidation at least as new was already applied".to_owned(),
            };
        }
        if let (Some(new), Some(cached)) = (
            event.version,
            self.cache.get(Kind::Found, &k).and_then(|e| e.version()),
        ) && cached >= new
        {
            return Applied::Ignored {
                reason: format!("the cache already holds version {cached}"),
            };
        }
        let seq = self.invalidation_seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.invalidations.insert(
            k.clone(),
            Mark {
                version: event.version,
                timestamp: event.timestamp,
                seq,
            },
        );
        let removed = self.cache.remove(&k);
        // Later misses start a new fetch; the one in flight will not write back.
        flights.remove(&k);
        self.metrics.invalidated.increment(1);
        Applied::Invalidated { removed }
    }

    /// Applies a change its owner pushed for `key` of `tenant`, in order and
    /// unconditionally: a fetch in flight for the key will not write back. An
    /// upsert or delete replaces what is cached (or being fetched) for the key;
    /// keys nobody asked for are not added. Says whether the key was held.
    ///
    /// `add`: store the change even for a key not held (a record type kept
    /// whole).
    pub fn apply(&self, key: &str, tenant: &str, update: Update, add: bool) -> bool {
        let k = cache_key(tenant, key);
        let mut flights = self.flights.lock();
        let seq = self.invalidation_seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.invalidations.insert(
            k.clone(),
            Mark {
                version: None,
                timestamp: None,
                seq,
            },
        );
        let pending = flights.remove(&k).is_some();
        let held = pending
            || [Kind::Found, Kind::NotFound, Kind::Error]
                .into_iter()
                .any(|kind| self.cache.get(kind, &k).is_some());
        let replacement = match update {
            Update::Upsert { body, version } => Some(Ok(FetchOutcome::Found(Entity {
                key: key.to_owned(),
                tenant: tenant.to_owned(),
                body,
                version: Some(version),
            }))),
            Update::Delete => Some(Ok(FetchOutcome::NotFound)),
            Update::Invalidate => None,
        };
        match replacement {
            Some(outcome) if held || add => {
                let kind = match outcome {
                    Ok(FetchOutcome::Found(_)) => Kind::Found,
                    _ => Kind::NotFound,
                };
                let entry = Cached::new(
                    outcome,
                    crate::cache::Producer::default(),
                    Instant::now(),
                    self.cache.ttl(kind),
                );
                // Replaces whatever the key held (a not-found answer is kept
                // only where such answers are cached).
                self.cache.store(&k, Arc::new(entry));
            }
            _ => {
                self.cache.remove(&k);
            }
        }
        if held {
            self.metrics.invalidated.increment(1);
        }
        held
    }

    /// A marker to pass to [`Reader::seed`]: changes applied after it win
    /// over records seeded with it.
    pub fn marker(&self) -> u64 {
        self.invalidation_seq.load(Ordering::SeqCst)
    }

    /// Stores a record read in bulk (a replica's initial load), unless the key
    /// changed, or the caches were emptied, after `marker` was taken: the
    /// change is newer than the bulk read. Says whether it was stored.
    pub fn seed(&self, key: &str, tenant: &str, body: String, version: u64, marker: u64) -> bool {
        let k = cache_key(tenant, key);
        let _flights = self.flights.lock();
        if self.cleared_seq.load(Ordering::SeqCst) > marker
            || self
                .invalidations
                .get(&k)
                .is_some_and(|mark| mark.seq > marker)
        {
            return false;
        }
        let entity = Entity {
            key: key.to_owned(),
            tenant: tenant.to_owned(),
            body,
            version: Some(version),
        };
        let entry = Cached::new(
            Ok(FetchOutcome::Found(entity)),
            crate::cache::Producer::default(),
            Instant::now(),
            self.cache.ttl(Kind::Found),
        );
        self.cache.store(&k, Arc::new(entry));
        true
    }
}
