//! Loaded plugins and the calls they answer.
//!
//! A loaded plugin is a compiled component already linked against the host's
//! imports (`InstancePre`): each call only instantiates it into a fresh store from
//! the pooling allocator and calls one export, so no state survives between calls
//! or leaks between tenants. Calls run on the plugin executor, in one of their
//! record type's call slots, and what they hand back is checked against the
//! record type's limits before anything keeps it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Engine;

use super::artifacts::Provenance;
use super::bindings::{AdapterPre, TransformerPre};
use super::call;
use super::context::PluginContext;
use super::executor::Executor;
use super::logs;
use super::stats::CallStats;
use super::world::Identity;
use crate::body::{BodyError, MAX_VERSION};
use crate::entity::{EntityOp, FetchOutcome, PluginFailure, SourceEvent};
use crate::failure::Outcome;
use crate::failure::{CallError, FetchError};

/// What is known about a loaded plugin file.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// The plugin's name (the file name without `@VERSION` and `.wasm`).
    pub name: String,
    /// The version the file name or the component declares, if any.
    pub declared_version: Option<String>,
    /// The version's label: declared version plus content hash (see [`super::naming`]).
    pub label: String,
    /// The file name inside the plugin folder.
    pub file: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// SHA-256 of the file, in hex: the plugin's version identity.
    pub sha256: String,
    /// The file's size in bytes.
    pub size: u64,
    /// Its world and package version.
    pub identity: Identity,
    /// Whether it came from the compiled-artifact cache.
    pub provenance: Provenance,
    /// How long loading took.
    pub load_time: Duration,
}

impl PluginInfo {
    /// The version label used in metrics, logs and commands.
    pub fn version_label(&self) -> &str {
        &self.label
    }
}

/// A loaded adapter.
pub struct AdapterPlugin {
    pub(crate) info: PluginInfo,
    pub(crate) label: Arc<str>,
    pub(crate) engine: Engine,
    pub(crate) executor: Arc<Executor>,
    pub(crate) pre: AdapterPre<super::state::CallState>,
    pub(crate) stats: CallStats,
}

/// A loaded transformer.
pub struct TransformerPlugin {
    pub(crate) info: PluginInfo,
    pub(crate) label: Arc<str>,
    pub(crate) engine: Engine,
    pub(crate) executor: Arc<Executor>,
    pub(crate) pre: TransformerPre<super::state::CallState>,
    pub(crate) stats: CallStats,
}

impl std::fmt::Debug for AdapterPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterPlugin")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TransformerPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformerPlugin")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl AdapterPlugin {
    /// What is known about the file.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// This version's call counters.
    pub fn stats(&self) -> &CallStats {
        &self.stats
    }

    /// Fetches `key` of `tenant` from the record type's backing store.
    pub async fn fetch(
        self: &Arc<Self>,
        ctx: &Arc<PluginContext>,
        key: &str,
        tenant: &str,
    ) -> Result<FetchOutcome, FetchError> {
        let (this, ctx) = (self.clone(), ctx.clone());
        let (key, tenant) = (key.to_owned(), tenant.to_owned());
        let work = async move { this.fetch_here(&ctx, &key, &tenant).await };
        self.executor
            .run(work)
            .await
            .unwrap_or_else(|lost| Err(FetchError::Call(lost)))
    }

    /// [`AdapterPlugin::fetch`], on the executor's thread.
    async fn fetch_here(
        &self,
        ctx: &Arc<PluginContext>,
        key: &str,
        tenant: &str,
    ) -> Result<FetchOutcome, FetchError> {
        let started = Instant::now();
        let _slot = call::slot(ctx).await.map_err(FetchError::Call)?;
        let mut store = call::new_store(&self.engine, ctx, &self.label);
        let pre = &self.pre;
        let record_type = ctx.record_type.as_str();
        let result = call::run(ctx.limits.deadline, async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .droid_plugin_read_through()
                .call_fetch(&mut store, record_type, key, tenant)
                .await
        })
        .await;
        let result = call::settle(result, store.data());
        let max_error = ctx.limits.max_error_bytes as usize;
        let outcome = match (result, store.data_mut().limit_hit.take()) {
            (_, Some(limit)) => Err(FetchError::Call(limit)),
            (Ok(Ok(found)), None) => check_found(found.of(key, tenant), ctx),
            (Ok(Err(failure)), None) => Err(match store.data_mut().egress_denied.take() {
                Some(reason) => FetchError::EgressDenied(reason),
                None => FetchError::Plugin(cut_failure(failure.into(), max_error)),
            }),
            (Err(error), None) => Err(FetchError::Call(error)),
        };
        let ended = match &outcome {
            Ok(_) => Outcome::Ok,
            Err(FetchError::Plugin(_)) => Outcome::PluginError,
            Err(FetchError::EgressDenied(_)) => Outcome::EgressDenied,
            Err(FetchError::Call(e)) => e.outcome(),
        };
        call::record(store.data(), &self.info.label, &self.stats, ended, started);
        outcome
    }
}

impl AdapterPlugin {
    /// Creates a fresh instance and drops it: the fixed cost every call pays before
    /// its export runs. For benchmarks.
    #[doc(hidden)]
    pub async fn instantiate_only(
        self: &Arc<Self>,
        ctx: &Arc<PluginContext>,
    ) -> Result<(), CallError> {
        let (this, ctx) = (self.clone(), ctx.clone());
        let work = async move {
            let mut store = call::new_store(&this.engine, &ctx, &this.label);
            let pre = &this.pre;
            let result = call::run(ctx.limits.deadline, async {
                pre.instantiate_async(&mut store).await.map(drop)
            })
            .await;
            call::settle(result, store.data())
        };
        self.executor.run(work).await?
    }
}

/// A found record must carry a JSON body within the record type's limits
/// (what the API promises consumers) with its sensitive fields sealed, and a
/// version droid can keep. Its key and tenant are the ones asked for: the
/// adapter returns only body and version.
fn check_found(outcome: FetchOutcome, ctx: &PluginContext) -> Result<FetchOutcome, FetchError> {
    if let FetchOutcome::Found(entity) = &outcome {
        let invalid = |reason| FetchError::Call(CallError::InvalidResult { reason });
        if entity.version.is_some_and(|v| v > MAX_VERSION) {
            return Err(invalid(format!(
                "the record's version is above {MAX_VERSION}, the largest droid keeps"
            )));
        }
        crate::body::check(
            &entity.body,
            &ctx.limits,
            &ctx.sensitive_fields,
            ctx.seal_key.as_ref(),
        )
        .map_err(|e| FetchError::Call(body_error(&ctx.record_type, e)))?;
    }
    Ok(outcome)
}

/// A refused body as a call error: a limit, or an invalid result.
pub(crate) fn body_error(record_type: &str, error: BodyError) -> CallError {
    match error.limit() {
        Some(limit) => CallError::limit(record_type, limit, error.to_string()),
        None => CallError::InvalidResult {
            reason: error.to_string(),
        },
    }
}

/// A plugin's own failure with its message cut to `max` bytes: it is kept
/// in caches, answers and dead letters.
fn cut_failure(failure: PluginFailure, max: usize) -> PluginFailure {
    let cut = |message: String| {
        if message.len() <= max {
            return message;
        }
        let kept = logs::cut(&message, max);
        format!("{kept} [{} bytes cut]", message.len() - kept.len())
    };
    match failure {
        PluginFailure::InvalidInput(m) => PluginFailure::InvalidInput(cut(m)),
        PluginFailure::UpstreamStatus { status, message } => PluginFailure::UpstreamStatus {
            status,
            message: cut(message),
        },
        PluginFailure::UpstreamUnavailable(m) => PluginFailure::UpstreamUnavailable(cut(m)),
        PluginFailure::UpstreamTimeout(m) => PluginFailure::UpstreamTimeout(cut(m)),
        PluginFailure::Internal(m) => PluginFailure::Internal(cut(m)),
        PluginFailure::Elsewhere(m) => PluginFailure::Elsewhere(cut(m)),
    }
}

/// The result of one event in a batch: its changes, or why the plugin refused it.
pub type EventResult = Result<Vec<EntityOp>, PluginFailure>;

impl TransformerPlugin {
    /// What is known about the file.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// This version's call counters.
    pub fn stats(&self) -> &CallStats {
        &self.stats
    }

    /// Transforms a batch of events in one call; the answer has one result per
    /// event. The events must all be of one tenant (ingestion batches by
    /// tenant), so nothing the instance keeps can reach another tenant.
    pub async fn transform(
        self: &Arc<Self>,
        ctx: &Arc<PluginContext>,
        events: Vec<SourceEvent>,
    ) -> Result<Vec<EventResult>, CallError> {
        let (this, ctx) = (self.clone(), ctx.clone());
        let work = async move { this.transform_here(&ctx, events).await };
        self.executor.run(work).await?
    }

    /// [`TransformerPlugin::transform`], on the executor's thread.
    async fn transform_here(
        &self,
        ctx: &Arc<PluginContext>,
        events: Vec<SourceEvent>,
    ) -> Result<Vec<EventResult>, CallError> {
        let started = Instant::now();
        let expected = events.len();
        let _slot = call::slot(ctx).await?;
        let mut store = call::new_store(&self.engine, ctx, &self.label);
        let pre = &self.pre;
        let events: Vec<_> = events.into_iter().map(Into::into).collect();
        let result = call::run(ctx.limits.deadline, async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance
                .droid_plugin_transform()
                .call_transform(&mut store, &events)
                .await
        })
        .await;
        let result = call::settle(result, store.data());
        let max_error = ctx.limits.max_error_bytes as usize;
        let max_ops = ctx.limits.max_ops_per_call;
        let outcome = result.and_then(|results| {
            if results.len() != expected {
                return Err(CallError::InvalidResult {
                    reason: format!("{} results for a batch of {expected} events", results.len()),
                });
            }
            let ops: usize = results.iter().map(|r| r.as_ref().map_or(0, Vec::len)).sum();
            if ops > max_ops as usize {
                return Err(CallError::limit(
                    &ctx.record_type,
                    "max_ops_per_call",
                    format!("one call produced {ops} changes, more than the {max_ops} allowed"),
                ));
            }
            Ok(results
                .into_iter()
                .map(|r| match r {
                    Ok(ops) => Ok(ops.into_iter().map(Into::into).collect()),
                    Err(e) => Err(cut_failure(e.into(), max_error)),
                })
                .collect())
        });
        let ended = match &outcome {
            Ok(_) => Outcome::Ok,
            Err(e) => e.outcome(),
        };
        call::record(store.data(), &self.info.label, &self.stats, ended, started);
        outcome
    }
}
