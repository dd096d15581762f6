//! The agreed ingestion rate of each source: a token bucket (governor) of
//! `rate_limit` events per second holding up to `burst` events. A request takes
//! as many tokens as it carries events, all or none.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::SourceConfig;

/// Why events were not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over the rate: try again after this long.
    Later(Duration),
    /// More events in one request than the bucket ever holds.
    TooMany {
        /// The bucket's size.
        burst: u32,
    },
}

/// One bucket per source, kept across configuration reloads while the source's
/// settings stay the same.
#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    settings: (NonZeroU32, NonZeroU32),
    limiter: Arc<DefaultDirectRateLimiter>,
}

impl RateLimits {
    /// Admits `events` events from `source`, or says why not.
    pub fn admit(&self, source: &str, config: &SourceConfig, events: u32) -> Result<(), Refusal> {
        let (Some(rate), Some(events)) = (config.rate_limit, NonZeroU32::new(events)) else {
            return Ok(());
        };
        let burst = config.burst.unwrap_or(rate);
        let limiter = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            let bucket = buckets.entry(source.to_owned()).or_insert_with(|| Bucket {
                settings: (rate, burst),
                limiter: Arc::new(RateLimiter::direct(
                    Quota::per_second(rate).allow_burst(burst),
                )),
            });
            if bucket.settings != (rate, burst) {
                *bucket = Bucket {
                    settings: (rate, burst),
                    limiter: Arc::new(RateLimiter::direct(
                        Quota::per_second(rate).allow_burst(burst),
                    )),
                };
            }
            bucket.limiter.clone()
        };
        match limiter.check_n(events) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Refusal::Later(
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
            Err(_) => Err(Refusal::TooMany { burst: burst.get() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(rate: u32, burst: u32) -> SourceConfig {
        SourceConfig {
            record_type: "t".into(),
            rate_limit: NonZeroU32::new(rate),
            burst: NonZeroU32::new(burst),
            failure_window: Duration::from_secs(60),
            warn_above: 0,
            page_above: 100,
            bootstrap_url: None,
            publishers: Vec::new(),
            max_in_flight: 16,
            stream: None,
        }
    }

    #[test]
    fn a_bucket_admits_its_burst_then_refuses_until_it_refills() {
        let limits = RateLimits::default();
        let config = source(10, 100);
        assert_eq!(limits.admit("s", &config, 100), Ok(()));
        match limits.admit("s", &config, 10) {
            Err(Refusal::Later(wait)) => assert!(wait > Duration::from_millis(500), "{wait:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            limits.admit("s", &config, 101),
            Err(Refusal::TooMany { burst: 100 })
        );
        // Another source has its own bucket; no limit means no bucket.
        assert_eq!(limits.admit("other", &config, 100), Ok(()));
        let unlimited = SourceConfig {
            rate_limit: None,
            burst: None,
            ..config
        };
        assert_eq!(limits.admit("s", &unlimited, 1_000_000), Ok(()));
    }
}
