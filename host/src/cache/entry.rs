//! What a cache holds for one key: the outcome of a fetch and when it was made.

use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use bytes::Bytes;

use crate::entity::FetchOutcome;
use crate::failure::{Context, ErrorId, FetchError, Journal};

/// The outcome of one fetch, as served from then on.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The record, with its body ready to send.
    Found {
        /// The JSON body.
        body: Bytes,
        /// The strong entity tag, quoted, ready to send as `ETag`.
        etag: HeaderValue,
        /// The provider's version, if the adapter reported one.
        version: Option<u64>,
    },
    /// The backing store has no such record.
    NotFound,
    /// The fetch failed; the failure is replayed until the entry expires.
    Failed(Failure),
}

/// A failed fetch, with the id its detail was logged under: answers name the
/// id, never the detail (a provider's panic text, file names, URLs and error
/// chains are for its operators, not its consumers).
#[derive(Debug, Clone)]
pub struct Failure {
    /// What went wrong.
    pub error: FetchError,
    /// Where the detail is in the log.
    pub id: ErrorId,
}

impl Failure {
    /// `error`, logged with its detail in `journal` (and the log) under a new id.
    pub fn logged(error: FetchError, journal: &Journal, at: Context<'_>) -> Self {
        let id = journal.record(&error, at);
        Self { error, id }
    }
}

/// The plugin version that produced an entry.
#[derive(Debug, Clone, Default)]
pub struct Producer {
    /// The version's id ([`crate::plugins::Version::id`]); 0 for none.
    pub id: u64,
    /// Its label, ready to send as `Droid-Plugin-Version`.
    pub label: Option<HeaderValue>,
}

impl Producer {
    /// The producer with `id` and `label`.
    pub fn new(id: u64, label: &str) -> Self {
        Self {
            id,
            label: HeaderValue::from_str(label).ok(),
        }
    }
}

/// One cache entry.
#[derive(Debug)]
pub struct Cached {
    /// What the fetch produced.
    pub outcome: Outcome,
    /// Which plugin version produced it.
    pub producer: Producer,
    /// When the fetch finished.
    pub stored_at: Instant,
    /// Until when the entry is fresh.
    pub fresh_until: Instant,
}

/// Which of the three caches an outcome belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `200`
    Found,
    /// `404`
    NotFound,
    /// Everything else.
    Error,
}

impl Kind {
    /// The label used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Found => "found",
            Kind::NotFound => "not_found",
            Kind::Error => "error",
        }
    }
}

/// Bytes an entry costs beyond its key and body: the entry itself, its `Arc`, the
/// cache's own bookkeeping (hash-table slot, key `Arc`, LRU and timer nodes) and
/// allocator rounding. Measured with `bench/load.sh`: a full 1 GiB cache of
/// 4 KiB records used about 1 KiB per entry more than its bodies; 512 bytes is the
/// part that belongs to the entry, the rest is allocator slack left by evictions.
const OVERHEAD: usize = 512;

impl Cached {
    /// The entry for a fetch that finished at `now`, fresh for `ttl`.
    pub fn new(
        fetched: Result<FetchOutcome, Failure>,
        producer: Producer,
        now: Instant,
        ttl: Duration,
    ) -> Self {
        let outcome = match fetched {
            Ok(FetchOutcome::Found(entity)) => {
                let etag = etag(&entity.body, entity.version);
                Outcome::Found {
                    body: Bytes::from(entity.body),
                    etag,
                    version: entity.version,
                }
            }
            Ok(FetchOutcome::NotFound) => Outcome::NotFound,
            Err(failure) => Outcome::Failed(failure),
        };
        Self {
            outcome,
            producer,
            stored_at: now,
            fresh_until: now + ttl,
        }
    }

    /// The cache this entry belongs in.
    pub fn kind(&self) -> Kind {
        match self.outcome {
            Outcome::Found { .. } => Kind::Found,
            Outcome::NotFound => Kind::NotFound,
            Outcome::Failed(_) => Kind::Error,
        }
    }

    /// Whether the entry is still fresh at `now`.
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.fresh_until
    }

    /// Whether `now` lies within `window` past the end of freshness.
    pub fn within_stale_window(&self, now: Instant, window: Duration) -> bool {
        !window.is_zero() && now < self.fresh_until + window
    }

    /// How long the entry stays fresh after `now` (zero once stale).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.fresh_until.saturating_duration_since(now)
    }

    /// How old the entry is at `now`.
    pub fn age(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.stored_at)
    }

    /// The provider's version of a found record.
    pub fn version(&self) -> Option<u64> {
        match &self.outcome {
            Outcome::Found { version, .. } => *version,
            _ => None,
        }
    }

    /// What the entry weighs in its cache, in bytes, besides its key.
    pub fn weight(&self) -> usize {
        OVERHEAD
            + match &self.outcome {
                Outcome::Found { body, etag, .. } => body.len() + etag.len(),
                Outcome::NotFound => 0,
                Outcome::Failed(failure) => failure.error.to_string().len(),
            }
    }
}

/// A strong entity tag: the provider's version when it has one (so every node and
/// sidecar agrees on it), otherwise a hash of the body.
fn etag(body: &str, version: Option<u64>) -> HeaderValue {
    let text = match version {
        Some(v) => format!("\"v{v}\""),
        None => {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            body.hash(&mut hasher);
            format!("\"h{:016x}\"", hasher.finish())
        }
    };
    HeaderValue::from_maybe_shared(Bytes::from(text))
        .expect("quoted digits and hex are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::Entity;

    fn found(body: &str, version: Option<u64>) -> Cached {
        let entity = Entity {
            key: "k".into(),
            tenant: "t".into(),
            body: body.into(),
            version,
        };
        Cached::new(
            Ok(FetchOutcome::Found(entity)),
            Producer::default(),
            Instant::now(),
            Duration::from_secs(10),
        )
    }

    #[test]
    fn etags_follow_versions_or_bodies() {
        let tag = |c: &Cached| match &c.outcome {
            Outcome::Found { etag, .. } => etag.to_str().unwrap().to_owned(),
            _ => unreachable!(),
        };
        assert_eq!(tag(&found("{}", Some(7))), "\"v7\"");
        assert_eq!(
            tag(&found("{\"a\":1}", None)),
            tag(&found("{\"a\":1}", None))
        );
        assert_ne!(
            tag(&found("{\"a\":1}", None)),
            tag(&found("{\"a\":2}", None))
        );
    }

    #[test]
    fn freshness_and_stale_windows() {
        let now = Instant::now();
        let entry = Cached::new(
            Ok(FetchOutcome::NotFound),
            Producer::default(),
            now,
            Duration::from_secs(1),
        );
        assert!(entry.is_fresh(now));
        let later = now + Duration::from_millis(1500);
        assert!(!entry.is_fresh(later));
        assert!(entry.within_stale_window(later, Duration::from_secs(1)));
        assert!(!entry.within_stale_window(later, Duration::ZERO));
        assert!(!entry.within_stale_window(now + Duration::from_secs(3), Duration::from_secs(1)));
    }

    #[test]
    fn weight_counts_the_body() {
        let small = found("{}", None).weight();
        let big = found(&format!("{{\"x\":\"{}\"}}", "a".repeat(1000)), None).weight();
        assert!(big >= small + 1000);
    }
}
