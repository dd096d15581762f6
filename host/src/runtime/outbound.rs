//! Outbound HTTP for adapters: the egress rule applied, then one request sent with
//! the record type's timeouts and size limit.
//!
//! Redirects are never followed and proxies from the environment are ignored: the
//! request goes exactly where the egress rule allowed it, or nowhere.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::config::HttpSettings;
use droid_rules::egress::EgressPolicy;

/// A request as the plugin asked for it, in host terms.
#[derive(Debug)]
pub(crate) struct OutboundRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// The whole response.
#[derive(Debug)]
pub(crate) struct OutboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OutboundError {
    #[error("denied: {0}")]
    Denied(String),
    #[error("timed out")]
    Timeout,
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("response larger than {0} bytes")]
    TooLarge(u64),
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// One record type's outbound HTTP: its egress rule, settings, connection pool and
/// the metrics of its backing store.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    policy: EgressPolicy,
    settings: HttpSettings,
    client: reqwest::Client,
    metrics: StoreMetrics,
}

/// Pre-registered metric handles, so a request costs no label lookups.
#[derive(Debug, Clone)]
struct StoreMetrics {
    duration: metrics::Histogram,
    record_type: String,
}

impl StoreMetrics {
    fn attempt(&self, outcome: &'static str) {
        metrics::counter!(
            crate::metrics::BACKING_STORE_REQUESTS,
            "record_type" => self.record_type.clone(),
            "outcome" => outcome
        )
        .increment(1);
    }
}

impl Outbound {
    pub(crate) fn new(
        record_type: &str,
        base_url: url::Url,
        settings: HttpSettings,
    ) -> Result<Self, reqwest::Error> {
        crate::tls::install_default_provider();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("droid/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            policy: EgressPolicy::new(base_url),
            settings,
            client,
            metrics: StoreMetrics {
                duration: metrics::histogram!(
                    crate::metrics::BACKING_STORE_DURATION,
                    "record_type" => record_type.to_owned()
                ),
                record_type: record_type.to_owned(),
            },
        })
    }

    pub(crate) fn base_url(&self) -> &str {
        self.policy.base_url()
    }

    /// Sends `req` if the egress rule allows it. Each attempt is bounded by the
    /// request timeout; idempotent requests are retried after a connection
    /// failure, an attempt timeout or a `502`/`503`/`504`, up to the configured
    /// number of retries with doubling backoff. Nothing outlives `deadline`, the
    /// plugin call's.
    pub(crate) async fn send(
        &self,
        req: OutboundRequest,
        deadline: Instant,
    ) -> Result<OutboundResponse, OutboundError> {
        let url = self
            .policy
            .check_url(&req.url)
            .map_err(OutboundError::Denied)?;
        let idempotent = matches!(
            req.method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE
        );
        let mut builder = self.client.request(req.method, url);
        for (name, value) in &req.headers {
            self.policy
                .check_header(name)
                .map_err(OutboundError::Denied)?;
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let request = builder
            .build()
            .map_err(|e| OutboundError::Denied(format!("invalid request: {e}")))?;

        let retries = if idempotent { self.settings.retries } else { 0 };
        let mut backoff = self.settings.retry_backoff;
        let mut attempt = 0;
        loop {
            let this = request
                .try_clone()
                .expect("requests with in-memory bodies can be cloned");
            let outcome = self.attempt(this, deadline).await;
            let retryable = match &outcome {
                Ok(r) => matches!(r.status, 502..=504),
                Err(
                    OutboundError::Timeout | OutboundError::Connect(_) | OutboundError::Protocol(_),
                ) => true,
                Err(_) => false,
            };
            let wait_until = Instant::now() + backoff;
            if !retryable || attempt >= retries || wait_until >= deadline {
                return outcome;
            }
            tokio::time::sleep(backoff).await;
            attempt += 1;
            backoff *= 2;
        }
    }

    /// One attempt, bounded by the request timeout and the call's deadline.
    async fn attempt(
        &self,
        request: reqwest::Request,
        deadline: Instant,
    ) -> Result<OutboundResponse, OutboundError> {
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(self.settings.request_timeout);
        if budget.is_zero() {
            return Err(OutboundError::Timeout);
        }
        let limit = self.settings.max_response_bytes;
        let started = Instant::now();
        let exchange = async {
            let mut response = self.client.execute(request).await.map_err(classify)?;
            if response.content_length().is_some_and(|len| len > limit) {
                return Err(OutboundError::TooLarge(limit));
            }
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(classify)? {
                if body.len() as u64 + chunk.len() as u64 > limit {
                    return Err(OutboundError::TooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(OutboundResponse {
                status,
                headers,
                body,
            })
        };
        let outcome = tokio::time::timeout(budget, exchange)
            .await
            .unwrap_or(Err(OutboundError::Timeout));
        self.metrics
            .duration
            .record(started.elapsed().as_secs_f64());
        self.metrics.attempt(match &outcome {
            Ok(r) if r.status < 300 => "2xx",
            Ok(r) if r.status < 400 => "3xx",
            Ok(r) if r.status < 500 => "4xx",
            Ok(_) => "5xx",
            Err(OutboundError::Timeout) => "timeout",
            Err(OutboundError::Connect(_)) => "connect_error",
            Err(_) => "protocol_error",
        });
        outcome
    }
}

fn classify(e: reqwest::Error) -> OutboundError {
    if e.is_timeout() {
        OutboundError::Timeout
    } else if e.is_connect() {
        OutboundError::Connect(root_cause(&e))
    } else {
        OutboundError::Protocol(root_cause(&e))
    }
}

/// The innermost error message: reqwest's own top level only says "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}
