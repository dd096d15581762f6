//! Loaded plugins and the calls they answer.
//!
//! A loaded plugin is a compiled component already linked against the host's
//! imports (`InstancePre`): each call only instantiates it into a fresh store from
//! the pooling allocator and calls one export, so no state survives between calls
//! or leaks between tenants.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Engine;

use super::artifacts::Provenance;
use super::bindings::{AdapterPre, TransformerPre};
use super::call;
use super::context::PluginContext;
use super::error::{CallError, FetchError};
use super::stats::CallStats;
use super::world::Identity;
use crate::entity::{EntityOp, FetchOutcome, PluginFailure, SourceEvent};

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
    pub(crate) pre: AdapterPre<super::state::CallState>,
    pub(crate) stats: CallStats,
}

/// A loaded transformer.
pub struct TransformerPlugin {
    pub(crate) info: PluginInfo,
    pub(crate) label: Arc<str>,
    pub(crate) engine: Engine,
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
        &self,
        ctx: &Arc<PluginContext>,
        key: &str,
        tenant: &str,
    ) -> Result<FetchOutcome, FetchError> {
        let started = Instant::now();
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
        let outcome = match result {
            Ok(Ok(found)) => check_found(found.into(), ctx),
            Ok(Err(failure)) => Err(match store.data_mut().egress_denied.take() {
                Some(reason) => FetchError::EgressDenied(reason),
                None => FetchError::Plugin(failure.into()),
            }),
            Err(error) => Err(FetchError::Call(error)),
        };
        let label = match &outcome {
            Ok(_) => "ok",
            Err(FetchError::Plugin(_)) => "plugin_error",
            Err(FetchError::EgressDenied(_)) => "egress_denied",
            Err(FetchError::Call(e)) => e.outcome(),
        };
        call::record(store.data(), &self.info.label, &self.stats, label, started);
        outcome
    }
}

impl AdapterPlugin {
    /// Creates a fresh instance and drops it: the fixed cost every call pays before
    /// its export runs. For benchmarks.
    #[doc(hidden)]
    pub async fn instantiate_only(&self, ctx: &Arc<PluginContext>) -> Result<(), CallError> {
        let mut store = call::new_store(&self.engine, ctx, &self.label);
        let pre = &self.pre;
        let result = call::run(ctx.limits.deadline, async {
            pre.instantiate_async(&mut store).await.map(drop)
        })
        .await;
        call::settle(result, store.data())
    }
}

/// A found record must carry a JSON body (what the API promises consumers)
/// with its sensitive fields sealed.
fn check_found(outcome: FetchOutcome, ctx: &PluginContext) -> Result<FetchOutcome, FetchError> {
    if let FetchOutcome::Found(entity) = &outcome {
        let invalid = |reason| FetchError::Call(CallError::InvalidResult { reason });
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&entity.body) {
            return Err(invalid(format!("the record body is not JSON ({e})")));
        }
        crate::sensitive::check(&entity.body, &ctx.sensitive_fields, ctx.seal_key.as_ref())
            .map_err(invalid)?;
    }
    Ok(outcome)
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

    /// Transforms a batch of events in one call; the answer has one result per event.
    pub async fn transform(
        &self,
        ctx: &Arc<PluginContext>,
        events: Vec<SourceEvent>,
    ) -> Result<Vec<EventResult>, CallError> {
        let started = Instant::now();
        let expected = events.len();
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
        let outcome = result.and_then(|results| {
            if results.len() != expected {
                return Err(CallError::InvalidResult {
                    reason: format!("{} results for a batch of {expected} events", results.len()),
                });
            }
            Ok(results
                .into_iter()
                .map(|r| match r {
                    Ok(ops) => Ok(ops.into_iter().map(Into::into).collect()),
                    Err(e) => Err(e.into()),
                })
                .collect())
        });
        let label = match &outcome {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        call::record(store.data(), &self.info.label, &self.stats, label, started);
        outcome
    }
}
