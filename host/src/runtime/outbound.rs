//! Outbound HTTP for adapters: the egress rule applied, then one request sent with
//! the record type's timeouts and size limit.
//!
//! Redirects are never followed and proxies from the environment are ignored: the
//! request goes exactly where the egress rule allowed it, or nowhere.

use std::time::{Duration, Instant};

use reqwest::Method;

use super::egress::EgressPolicy;
use crate::config::HttpSettings;

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

/// One record type's outbound HTTP: its egress rule, settings and connection pool.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    policy: EgressPolicy,
    settings: HttpSettings,
    client: reqwest::Client,
}

impl Outbound {
    pub(crate) fn new(base_url: url::Url, settings: HttpSettings) -> Result<Self, reqwest::Error> {
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
        })
    }

    pub(crate) fn base_url(&self) -> &str {
        self.policy.base_url()
    }

    /// Sends `req` if the egress rule allows it, giving up at `deadline` (the
    /// plugin call's) or after the request timeout, whichever comes first.
    pub(crate) async fn send(
        &self,
        req: OutboundRequest,
        deadline: Instant,
    ) -> Result<OutboundResponse, OutboundError> {
        let url = self
            .policy
            .check_url(&req.url)
            .map_err(OutboundError::Denied)?;
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

        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(self.settings.request_timeout);
        if budget.is_zero() {
            return Err(OutboundError::Timeout);
        }
        let limit = self.settings.max_response_bytes;
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
        tokio::time::timeout(budget, exchange)
            .await
            .unwrap_or(Err(OutboundError::Timeout))
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
