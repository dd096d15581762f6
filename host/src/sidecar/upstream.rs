//! The droid a sidecar reads through: its record reads (the sidecar's
//! backing store) and the credentials every call carries.
//!
//! `upstream.url` may list several nodes of one fleet: the sidecar uses one
//! and moves to the next when it cannot be reached (a read is tried once
//! more there; the feed reconnects there from the same position, which every
//! node sharing the store numbers alike).
//!
//! A sidecar signs its own short-lived tokens with its key and reuses each for
//! most of its life: droid remembers a verified token, so a reused one costs it
//! a lookup instead of a signature check. Read replay protection on the droid
//! (`auth.replay_protect_reads`) would refuse that reuse; sidecars want it off.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{self, HeaderValue};

use super::config::UpstreamConfig;
use crate::auth::mint::{MintError, TokenRequest, mint};
use crate::cache::Producer;
use crate::entity::{Entity, FetchOutcome, PluginFailure};
use crate::failure::FetchError;
use crate::key::{EntityKey, TenantId};
use crate::readthrough::{Fetched, Origin};

/// Characters left as they are in a path segment or query value.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A connection to the upstream droid.
#[derive(Debug)]
pub struct Upstream {
    /// The nodes' base URLs, without a trailing `/`.
    bases: Vec<String>,
    /// The realm it follows, if named.
    realm: Option<String>,
    /// The one in use (an index into `bases`, modulo its length).
    current: AtomicUsize,
    client: reqwest::Client,
    /// For the change feed: no overall timeout (the stream is endless).
    streaming: reqwest::Client,
    tokens: Tokens,
}

impl Upstream {
    /// A client for the droid `config` names.
    pub fn new(config: &UpstreamConfig) -> Result<Self, reqwest::Error> {
        let builder = || {
            reqwest::Client::builder()
                .connect_timeout(config.connect_timeout)
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(60))
        };
        Ok(Self {
            bases: config
                .urls
                .iter()
                .map(|url| url.as_str().trim_end_matches('/').to_owned())
                .collect(),
            realm: config.realm.clone(),
            current: AtomicUsize::new(0),
            client: builder().timeout(config.request_timeout).build()?,
            streaming: builder().build()?,
            tokens: Tokens {
                key: config.key_file.clone(),
                audience: config.audience.clone(),
                lifetime: config.token_lifetime,
                current: Mutex::new(None),
            },
        })
    }

    /// The base URL of the node in use.
    pub fn base(&self) -> &str {
        &self.bases[self.current.load(Ordering::Relaxed) % self.bases.len()]
    }

    /// Moves to the next node, if there is another, after `from` (the base
    /// that failed: a move another caller already made is not repeated).
    pub fn fail_over(&self, from: &str) {
        if self.bases.len() < 2 || self.base() != from {
            return;
        }
        let next = self.current.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(
            from,
            to = %self.bases[next % self.bases.len()],
            "the upstream droid cannot be reached; using the next one"
        );
    }

    /// Opens the change feed after `since` (`None`: from now on) for
    /// `record_types`. The response is the droid's, whatever its status.
    pub async fn changes(
        &self,
        since: Option<u64>,
        record_types: &[&str],
        heartbeat: Duration,
    ) -> Result<reqwest::Response, UpstreamError> {
        let since = since.map_or_else(|| "now".to_owned(), |s| s.to_string());
        let types: Vec<String> = record_types
            .iter()
            .map(|t| utf8_percent_encode(t, UNRESERVED).to_string())
            .collect();
        let mut url = format!(
            "{}/v1/changes?since={since}&record_types={}&heartbeat_ms={}",
            self.base(),
            types.join(","),
            heartbeat.as_millis()
        );
        self.name_realm(&mut url);
        Ok(self.authorized(self.streaming.get(url))?.send().await?)
    }

    /// Adds the sidecar's realm to a feed or export URL's query.
    fn name_realm(&self, url: &mut String) {
        if let Some(realm) = &self.realm {
            url.push_str("&realm=");
            url.extend(utf8_percent_encode(realm, UNRESERVED));
        }
    }

    /// `request` with the sidecar's current token, when it has a key.
    fn authorized(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, MintError> {
        Ok(match self.tokens.authorization()? {
            Some(authorization) => request.header(header::AUTHORIZATION, authorization),
            None => request,
        })
    }

    /// One page of `record_type`'s export, after the record `after` (tenant,
    /// key). Failures are worded for the log and health.
    pub async fn records(
        &self,
        record_type: &str,
        after: Option<&(String, String)>,
        limit: usize,
    ) -> Result<Page, String> {
        let mut url = format!(
            "{}/v1/records/{}?limit={limit}",
            self.base(),
            utf8_percent_encode(record_type, UNRESERVED)
        );
        self.name_realm(&mut url);
        if let Some((tenant, key)) = after {
            url.push_str("&after_tenant=");
            url.extend(utf8_percent_encode(tenant, UNRESERVED));
            url.push_str("&after_key=");
            url.extend(utf8_percent_encode(key, UNRESERVED));
        }
        let response = self
            .authorized(self.client.get(url))
            .map_err(|e| UpstreamError::from(e).to_string())?
            .send()
            .await
            .map_err(|e| UpstreamError::from(e).to_string())?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!(
                "the droid answered {status}: {}",
                message(&String::from_utf8_lossy(&body))
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|e| format!("an export page that does not parse: {e}"))
    }

    /// Reads `key` of `tenant` from `record_type` on the droid; once more on
    /// the next node when this one cannot be connected to.
    async fn get(
        &self,
        record_type: &str,
        key: &EntityKey,
        tenant: &TenantId,
    ) -> Result<reqwest::Response, UpstreamError> {
        let base = self.base().to_owned();
        match self.get_from(&base, record_type, key, tenant).await {
            Err(UpstreamError::Http(e)) if e.is_connect() && self.bases.len() > 1 => {
                self.fail_over(&base);
                let next = self.base().to_owned();
                self.get_from(&next, record_type, key, tenant).await
            }
            answer => answer,
        }
    }

    async fn get_from(
        &self,
        base: &str,
        record_type: &str,
        key: &EntityKey,
        tenant: &TenantId,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut url = format!(
            "{base}/v1/entity/{}/{}",
            utf8_percent_encode(record_type, UNRESERVED),
            utf8_percent_encode(key.as_str(), UNRESERVED)
        );
        if *tenant != TenantId::default_tenant() {
            url.push_str("?tenant=");
            url.extend(utf8_percent_encode(tenant.as_str(), UNRESERVED));
        }
        Ok(self.authorized(self.client.get(url))?.send().await?)
    }
}

/// One page of a record type's export.
#[derive(Debug, serde::Deserialize)]
pub struct Page {
    /// The records, in tenant and key order.
    pub records: Vec<ExportedRecord>,
    /// The last record's place, when more may follow.
    pub next: Option<PageCursor>,
}

/// One exported record.
#[derive(Debug, serde::Deserialize)]
pub struct ExportedRecord {
    /// Its tenant.
    pub tenant: String,
    /// Its key.
    pub key: String,
    /// Its version.
    pub version: u64,
    /// The record as JSON.
    pub body: Box<serde_json::value::RawValue>,
}

/// Where the next page of an export starts.
#[derive(Debug, serde::Deserialize)]
pub struct PageCursor {
    /// The tenant of the last record served.
    pub tenant: String,
    /// Its key.
    pub key: String,
}

/// Why a call to the upstream droid failed before it answered.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The sidecar could not sign a token.
    #[error("cannot sign a token for the upstream droid: {0}")]
    Token(#[from] MintError),
    /// Connecting, sending or receiving failed.
    #[error("the upstream droid could not be reached: {0}")]
    Http(#[from] reqwest::Error),
}

impl UpstreamError {
    /// Whether the droid took too long.
    pub fn is_timeout(&self) -> bool {
        matches!(self, UpstreamError::Http(e) if e.is_timeout())
    }
}

/// The sidecar's credentials: a signed token, renewed before it expires.
#[derive(Debug)]
struct Tokens {
    key: Option<PathBuf>,
    audience: String,
    lifetime: Duration,
    current: Mutex<Option<(HeaderValue, Instant)>>,
}

impl Tokens {
    /// The `Authorization` value to send, signing a new token when the last one
    /// is three quarters through its life.
    fn authorization(&self) -> Result<Option<HeaderValue>, MintError> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let mut current = self.current.lock().expect("token lock");
        if let Some((value, renew_at)) = current.as_ref()
            && Instant::now() < *renew_at
        {
            return Ok(Some(value.clone()));
        }
        let token = mint(key, &TokenRequest::new(&self.audience, self.lifetime))?;
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .expect("a signed token is a valid header value");
        value.set_sensitive(true);
        *current = Some((value.clone(), Instant::now() + self.lifetime * 3 / 4));
        Ok(Some(value))
    }
}

/// One record type on the upstream droid, as a reader's origin.
#[derive(Debug)]
pub struct RecordSource {
    /// The record type.
    pub record_type: Arc<str>,
    /// The droid.
    pub upstream: Arc<Upstream>,
}

impl Origin for RecordSource {
    fn fetch(&self, key: EntityKey, tenant: TenantId) -> BoxFuture<'static, Fetched> {
        let record_type = self.record_type.clone();
        let upstream = self.upstream.clone();
        async move {
            let answer = upstream.get(&record_type, &key, &tenant).await;
            let (result, fresh_for, producer) = match answer {
                Ok(response) => read_answer(response, &key, &tenant).await,
                Err(e) => (Err(unreachable(&e)), None, Producer::default()),
            };
            Fetched {
                result,
                producer,
                fresh_for,
                still_current: Box::new(|| true),
            }
        }
        .boxed()
    }
}

type Answer = (Result<FetchOutcome, FetchError>, Option<Duration>, Producer);

/// What the droid's answer to a read means to the sidecar's caches. Its own
/// `max-age` caps how long the sidecar keeps the answer fresh, and the plugin
/// version that produced it is passed on.
async fn read_answer(response: reqwest::Response, key: &EntityKey, tenant: &TenantId) -> Answer {
    let status = response.status();
    let headers = response.headers();
    let fresh_for = headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let producer = Producer {
        id: 0,
        label: headers
            .get(crate::web::respond::DROID_PLUGIN_VERSION)
            .cloned(),
    };
    let version = headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(|tag| tag.strip_prefix("\"v")?.strip_suffix('"')?.parse().ok());
    let body = match response.text().await {
        Ok(body) => body,
        Err(e) => return (Err(unreachable(&e.into())), None, producer),
    };
    let result = match status.as_u16() {
        200 => Ok(FetchOutcome::Found(Entity {
            key: key.as_str().to_owned(),
            tenant: tenant.as_str().to_owned(),
            body,
            version,
        })),
        404 if error_code(&body).as_deref() == Some("not_found") => Ok(FetchOutcome::NotFound),
        421 => Err(FetchError::Plugin(PluginFailure::Elsewhere(format!(
            "this sidecar's droid does not serve the tenant: {}",
            message(&body)
        )))),
        429 | 500..=599 => Err(FetchError::Plugin(PluginFailure::UpstreamUnavailable(
            format!("the upstream droid answered {status}: {}", message(&body)),
        ))),
        _ => Err(FetchError::Plugin(PluginFailure::UpstreamStatus {
            status: status.as_u16(),
            message: format!("the upstream droid refused the read: {}", message(&body)),
        })),
    };
    (result, fresh_for, producer)
}

fn unreachable(e: &UpstreamError) -> FetchError {
    let message = e.to_string();
    FetchError::Plugin(if e.is_timeout() {
        PluginFailure::UpstreamTimeout(message)
    } else {
        PluginFailure::UpstreamUnavailable(message)
    })
}

/// `max-age` of a `Cache-Control` value.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let seconds = directive.trim().strip_prefix("max-age=")?;
        seconds.parse().ok().map(Duration::from_secs)
    })
}

/// The stable code of a droid error body.
fn error_code(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(value["error"]["code"].as_str()?.to_owned())
}

/// A droid error body as `code: message`, or the body itself.
fn message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    match parsed
        .as_ref()
        .map(|v| (&v["error"]["code"], &v["error"]["message"]))
    {
        Some((serde_json::Value::String(code), serde_json::Value::String(message))) => {
            format!("{code}: {message}")
        }
        _ => body.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_among_other_directives() {
        assert_eq!(max_age("max-age=30"), Some(Duration::from_secs(30)));
        assert_eq!(
            max_age("max-age=0, stale-while-revalidate=5"),
            Some(Duration::ZERO)
        );
        assert_eq!(max_age("no-store"), None);
    }

    #[test]
    fn droid_errors_are_summarised_by_code_and_message() {
        let body = r#"{"error":{"code":"forbidden","message":"no read grant"}}"#;
        assert_eq!(error_code(body).as_deref(), Some("forbidden"));
        assert_eq!(message(body), "forbidden: no read grant");
        assert_eq!(message("plain text"), "plain text");
    }
}
