//! Replay protection: a token id (`jti`) used once may not be used again while
//! its token lives.
//!
//! Each issuer's `jti`s are remembered until their token expires (plus the
//! clock skew), within a bound on entries. At the bound the oldest entries go
//! first; the bound is sized so that that takes far longer than a token lives
//! at any sane request rate, and the metric of evictions says when it does not.

use std::time::{Duration, Instant};

use moka::Expiry;

/// Remembers used token ids until they expire.
#[derive(Debug)]
pub struct Replay {
    seen: moka::sync::Cache<(String, String), Duration>,
}

/// Each id is kept for as long as its token (and the skew) lasts.
struct UntilExpiry;

impl Expiry<(String, String), Duration> for UntilExpiry {
    fn expire_after_create(
        &self,
        _id: &(String, String),
        lives_for: &Duration,
        _now: Instant,
    ) -> Option<Duration> {
        Some(*lives_for)
    }
}

impl Replay {
    /// Remembers at most `max_entries` ids.
    pub fn new(max_entries: u64) -> Self {
        Self {
            seen: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(UntilExpiry)
                .build(),
        }
    }

    /// Notes the use of `jti` by `issuer`, whose token lives `lives_for` more;
    /// says whether this is its first use.
    pub fn first_use(&self, issuer: &str, jti: &str, lives_for: Duration) -> bool {
        self.seen
            .entry((issuer.to_owned(), jti.to_owned()))
            .or_insert_with(|| lives_for)
            .is_fresh()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_used_once_per_issuer() {
        let replay = Replay::new(100);
        let hour = Duration::from_secs(3600);
        assert!(replay.first_use("a", "j1", hour));
        assert!(!replay.first_use("a", "j1", hour));
        assert!(replay.first_use("b", "j1", hour));
        assert!(replay.first_use("a", "j2", hour));
    }

    #[test]
    fn an_id_is_forgotten_once_its_token_expired() {
        let replay = Replay::new(100);
        assert!(replay.first_use("a", "j", Duration::from_millis(20)));
        std::thread::sleep(Duration::from_millis(40));
        assert!(replay.first_use("a", "j", Duration::from_millis(20)));
    }
}
