//! The per-call store data, and the host side of every import a plugin may call.
//!
//! Each plugin call gets a fresh [`CallState`]: nothing a plugin did in one call is
//! visible in the next. WASI is linked because Rust's standard library imports it,
//! but the context is empty: no environment, arguments, preopened folders or
//! network; stdout is discarded and stderr is captured (bounded) so a panic
//! message can be reported with the failure.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{clock, config, log, outbound_http, types};
use super::context::PluginContext;
use super::logs::CallLog;
use super::outbound::{OutboundError, OutboundRequest};
use crate::failure::CallError;

/// The most stderr kept per call; enough for a panic message and its location.
const STDERR_CAPACITY: usize = 8 * 1024;

/// Store data of one plugin call.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) ctx: Arc<PluginContext>,
    pub(crate) plugin: Arc<str>,
    pub(crate) deadline: Instant,
    /// The first egress denial of this call: it explains a failure better than
    /// whatever the plugin made of it.
    pub(crate) egress_denied: Option<String>,
    pub(crate) stderr: Capture,
    /// What the call logged so far, against its budgets.
    pub(crate) log: CallLog,
    /// Outbound requests sent so far.
    pub(crate) requests: u32,
    /// The first limit the call went past: the call fails with it, whatever
    /// the plugin made of the refusal.
    pub(crate) limit_hit: Option<CallError>,
}

impl CallState {
    pub(crate) fn new(ctx: Arc<PluginContext>, plugin: Arc<str>, deadline: Instant) -> Self {
        let stderr = Capture::default();
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        let limiter = MemoryLimiter::new(ctx.limits.memory_bytes);
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter,
            ctx,
            plugin,
            deadline,
            egress_denied: None,
            stderr,
            log: CallLog::default(),
            requests: 0,
            limit_hit: None,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory at the record type's limit and remembers when the cap was hit,
/// so the failure is reported as memory exhaustion rather than a generic trap.
pub(crate) struct MemoryLimiter {
    limits: StoreLimits,
    cap: usize,
    pub(crate) exhausted: bool,
}

impl MemoryLimiter {
    fn new(cap: u64) -> Self {
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        Self {
            limits: StoreLimitsBuilder::new().memory_size(cap).build(),
            cap,
            exhausted: false,
        }
    }
}

/// The error a plugin traps with when it grows past its memory cap.
#[derive(Debug, thiserror::Error)]
#[error("plugin tried to grow its memory to {desired} bytes; the cap is {cap} bytes")]
pub(crate) struct MemoryCapExceeded {
    desired: usize,
    cap: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.exhausted = true;
            return Err(MemoryCapExceeded {
                desired,
                cap: self.cap,
            }
            .into());
        }
        self.limits.memory_growing(current, desired, maximum)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

impl types::Host for CallState {}

impl log::Host for CallState {
    fn log(&mut self, level: log::Level, message: String) {
        let Ok(message) = self
            .log
            .admit(&message, &self.ctx.limits, &self.ctx.log_budget)
        else {
            return;
        };
        let record_type = self.ctx.record_type.as_str();
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => {
                tracing::trace!(target: "droid::plugin", record_type, plugin, "{message}")
            }
            log::Level::Debug => {
                tracing::debug!(target: "droid::plugin", record_type, plugin, "{message}")
            }
            log::Level::Info => {
                tracing::info!(target: "droid::plugin", record_type, plugin, "{message}")
            }
            log::Level::Warn => {
                tracing::warn!(target: "droid::plugin", record_type, plugin, "{message}")
            }
            log::Level::Error => {
                tracing::error!(target: "droid::plugin", record_type, plugin, "{message}")
            }
        }
    }
}

impl clock::Host for CallState {
    fn now(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

impl config::Host for CallState {
    fn get(&mut self, name: String) -> Option<String> {
        self.ctx.values.get(&name).cloned()
    }

    fn names(&mut self) -> Vec<String> {
        self.ctx.values.keys().cloned().collect()
    }
}

impl outbound_http::Host for CallState {
    fn base_url(&mut self) -> String {
        self.ctx
            .outbound
            .as_ref()
            .map(|o| o.base_url().to_owned())
            .unwrap_or_default()
    }

    async fn send(
        &mut self,
        request: outbound_http::Request,
    ) -> Result<outbound_http::Response, outbound_http::HttpError> {
        use outbound_http::{HttpError, Method};
        let Some(outbound) = self.ctx.outbound.clone() else {
            return Err(HttpError::Denied(
                "this record type has no base URL".to_owned(),
            ));
        };
        let budget = self.ctx.limits.max_requests_per_call;
        if self.requests >= budget {
            let record_type = &self.ctx.record_type;
            let error = self.limit_hit.get_or_insert_with(|| {
                CallError::limit(
                    record_type,
                    "max_requests_per_call",
                    format!("the call sent more than {budget} outbound requests"),
                )
            });
            return Err(HttpError::Denied(error.to_string()));
        }
        self.requests += 1;
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
        };
        let outcome = outbound
            .send(
                OutboundRequest {
                    method,
                    url: request.url,
                    headers: request.headers,
                    body: request.body,
                },
                self.deadline,
            )
            .await;
        match outcome {
            Ok(r) => Ok(outbound_http::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(OutboundError::Denied(reason)) => {
                tracing::warn!(record_type = %self.ctx.record_type, plugin = %self.plugin, %reason, "egress denied");
                metrics::counter!(crate::metrics::EGRESS_DENIED, "record_type" => self.ctx.record_type.clone())
                    .increment(1);
                self.egress_denied.get_or_insert_with(|| reason.clone());
                Err(HttpError::Denied(reason))
            }
            Err(OutboundError::Timeout) => Err(HttpError::Timeout),
            Err(OutboundError::Connect(m)) => Err(HttpError::Connect(m)),
            Err(OutboundError::TooLarge(limit)) => Err(HttpError::ResponseTooLarge(limit)),
            Err(OutboundError::Protocol(m)) => Err(HttpError::Protocol(m)),
        }
    }
}

/// A bounded, shared in-memory sink for a plugin's stderr. Writes past the
/// capacity are accepted and dropped, so a chatty plugin is never trapped for it.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// What was captured, as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("capture lock")).into_owned()
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut kept = self.0.lock().expect("capture lock");
        let room = STDERR_CAPACITY.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..buf.len().min(room)]);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
