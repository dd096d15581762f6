//! Issuers' public keys, found by `kid` in key repositories: a local folder
//! (`{dir}/{kid}`) or an HTTP(S) base URL (`{base}/{kid}` answering a PEM).
//!
//! Repositories are tried in order, the first being the primary and the rest
//! fallbacks: a key missing from one, or a repository that fails, sends the
//! lookup on to the next. Keys are cached as their repository's cache headers
//! allow (`Cache-Control: max-age`, `no-store`), within a bound on entries and
//! a default lifetime; however many requests wait for a `kid`, one lookup runs.
//! A key no repository has is remembered briefly too, so a stream of tokens
//! with an unknown `kid` does not become a stream of fetches.
//!
//! Tokens arrive before anything about their sender is known, so what their
//! headers can make droid fetch is bounded: at most `fetch_concurrency`
//! lookups run at once, and each issuer gets `fetches_per_s` lookups a
//! second. A lookup past either is refused at once ([`KeyError::Busy`])
//! without reaching a repository; only granted issuers get this far (see
//! [`super::Authenticator`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jsonwebtoken::DecodingKey;
use moka::Expiry;
use tokio::sync::Semaphore;

pub use crate::config::{KeySettings, Repository};
use crate::metrics::{KEY_FETCHES, KEY_LOOKUPS_REFUSED};

/// The most bytes a key file may have.
const MAX_KEY_BYTES: usize = 16 * 1024;

/// A looked-up key, or the fact that there is none, with how long it may be kept.
#[derive(Clone)]
enum Lookup {
    Found(Arc<DecodingKey>, Duration),
    Missing(Duration),
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lookup::Found(_, ttl) => write!(f, "Found({ttl:?})"),
            Lookup::Missing(ttl) => write!(f, "Missing({ttl:?})"),
        }
    }
}

/// Each entry lives as long as its lookup said.
struct ByLookup;

impl Expiry<String, Lookup> for ByLookup {
    fn expire_after_create(
        &self,
        _kid: &String,
        lookup: &Lookup,
        _now: Instant,
    ) -> Option<Duration> {
        Some(match lookup {
            Lookup::Found(_, ttl) | Lookup::Missing(ttl) => *ttl,
        })
    }
}

/// Why a key could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No repository has a key of that id.
    #[error("no repository has that key")]
    Unknown,
    /// Every repository that might have it failed (down, slow, bad answer).
    #[error("the key repositories are unavailable")]
    Unavailable,
    /// Too many lookups at once, or for this issuer this second: refused
    /// without asking a repository.
    #[error("too many key lookups; try again shortly")]
    Busy,
}

/// Issuers' public keys, cached.
#[derive(Debug)]
pub struct Keys {
    settings: KeySettings,
    client: reqwest::Client,
    cache: moka::future::Cache<String, Lookup>,
    /// Lookups running now.
    fetching: Semaphore,
    /// Lookups per issuer per second.
    per_issuer: DefaultKeyedRateLimiter<String>,
}

impl Keys {
    /// Keys from the repositories of `settings`.
    pub fn new(settings: KeySettings) -> Self {
        let cache = moka::future::Cache::builder()
            .max_capacity(settings.max_entries)
            .expire_after(ByLookup)
            .build();
        crate::tls::install_default_provider();
        let client = reqwest::Client::builder()
            .timeout(settings.fetch_timeout)
            .connect_timeout(settings.fetch_timeout)
            .build()
            .unwrap_or_default();
        let rate = std::num::NonZeroU32::new(settings.fetches_per_s.max(1)).expect("at least 1");
        Self {
            fetching: Semaphore::new(settings.fetch_concurrency.max(1) as usize),
            per_issuer: RateLimiter::keyed(Quota::per_second(rate)),
            settings,
            client,
            cache,
        }
    }

    /// The key of `kid` (already checked to be a safe relative path and to
    /// begin with `issuer`).
    pub async fn get(&self, kid: &str, issuer: &str) -> Result<Arc<DecodingKey>, KeyError> {
        if let Some(Lookup::Missing(_)) = self.cache.get(kid).await {
            refused("negative_cache");
            return Err(KeyError::Unknown);
        }
        // One lookup per kid: concurrent callers wait for it. Failures are
        // not cached, so the next request tries again.
        let lookup = self
            .cache
            .try_get_with_by_ref(kid, self.bounded_lookup(kid, issuer))
            .await
            .map_err(|e: Arc<KeyError>| KeyError::clone(&e))?;
        match lookup {
            Lookup::Found(key, _) => Ok(key),
            Lookup::Missing(_) => Err(KeyError::Unknown),
        }
    }

    /// A lookup within the bounds on concurrent lookups and on each
    /// issuer's rate, or [`KeyError::Busy`] at once.
    async fn bounded_lookup(&self, kid: &str, issuer: &str) -> Result<Lookup, KeyError> {
        let Ok(_running) = self.fetching.try_acquire() else {
            refused("concurrency");
            return Err(KeyError::Busy);
        };
        if self.per_issuer.check_key(&issuer.to_owned()).is_err() {
            refused("issuer_rate");
            return Err(KeyError::Busy);
        }
        // Issuers seen long ago are forgotten, so the limiter stays small.
        if self.per_issuer.len() > 10_000 {
            self.per_issuer.retain_recent();
        }
        let lookup = self.lookup(kid).await;
        let outcome = match &lookup {
            Ok(Lookup::Found(..)) => "found",
            Ok(Lookup::Missing(_)) => "missing",
            Err(_) => "failed",
        };
        metrics::counter!(KEY_FETCHES, "outcome" => outcome).increment(1);
        lookup
    }

    async fn lookup(&self, kid: &str) -> Result<Lookup, KeyError> {
        let mut failed = false;
        for repository in &self.settings.repositories {
            match self.fetch(repository, kid).await {
                Ok(Some((pem, max_age))) => match parse_key(&pem) {
                    Some(key) => {
                        let ttl = max_age
                            .unwrap_or(self.settings.max_age)
                            .min(self.settings.max_age);
                        return Ok(Lookup::Found(Arc::new(key), ttl));
                    }
                    None => {
                        tracing::warn!(
                            kid,
                            "a key repository answered with a key that is not a PEM public key"
                        );
                        failed = true;
                    }
                },
                Ok(None) => {}
                Err(why) => {
                    tracing::warn!(kid, error = %why, "a key repository failed");
                    failed = true;
                }
            }
        }
        if failed {
            Err(KeyError::Unavailable)
        } else {
            Ok(Lookup::Missing(self.settings.missing_for))
        }
    }

    /// The PEM of `kid` in `repository` and how long it may be kept, or `None` if it has none.
    async fn fetch(
        &self,
        repository: &Repository,
        kid: &str,
    ) -> Result<Option<(Vec<u8>, Option<Duration>)>, String> {
        match repository {
            Repository::Folder(dir) => match tokio::fs::read(dir.join(kid)).await {
                Ok(bytes) if bytes.len() <= MAX_KEY_BYTES => Ok(Some((bytes, None))),
                Ok(_) => Err("key file too large".to_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.to_string()),
            },
            Repository::Http(base) => {
                let url = format!("{}/{kid}", base.as_str().trim_end_matches('/'));
                let response = self
                    .client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                if status == reqwest::StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                if !status.is_success() {
                    return Err(format!("answered {status}"));
                }
                let max_age = cache_lifetime(response.headers());
                if response
                    .content_length()
                    .is_some_and(|n| n as usize > MAX_KEY_BYTES)
                {
                    return Err("key too large".to_owned());
                }
                let bytes = response.bytes().await.map_err(|e| e.to_string())?;
                if bytes.len() > MAX_KEY_BYTES {
                    return Err("key too large".to_owned());
                }
                Ok(Some((bytes.to_vec(), max_age)))
            }
        }
    }
}

/// Counts a lookup answered without asking a repository.
fn refused(reason: &'static str) {
    metrics::counter!(KEY_LOOKUPS_REFUSED, "reason" => reason).increment(1);
}

/// How long an HTTP answer may be kept, from its `Cache-Control`: `no-store`
/// or `no-cache` mean not at all, `max-age=N` means N seconds.
fn cache_lifetime(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let control = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    let mut lifetime = None;
    for directive in control.split(',').map(str::trim) {
        let directive = directive.to_ascii_lowercase();
        if directive == "no-store" || directive == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = directive.strip_prefix("max-age=") {
            lifetime = seconds
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    lifetime
}

/// An RSA or EC public key in PEM.
fn parse_key(pem: &[u8]) -> Option<DecodingKey> {
    DecodingKey::from_rsa_pem(pem)
        .or_else(|_| DecodingKey::from_ec_pem(pem))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_headers_set_the_lifetime() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(cache_lifetime(&headers), None);
        headers.insert("cache-control", "public, max-age=120".parse().unwrap());
        assert_eq!(cache_lifetime(&headers), Some(Duration::from_secs(120)));
        headers.insert("cache-control", "max-age=60, no-store".parse().unwrap());
        assert_eq!(cache_lifetime(&headers), Some(Duration::ZERO));
    }
}
