//! Everything a running droid holds, built from a validated configuration.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::access::{AccessPolicy, Unauthenticated};
use crate::api::RequestMetrics;
use crate::config::Config;
use crate::plugins::{Registry, RegistryError};
use crate::readthrough::ReadThrough;
use crate::runtime::{Runtime, RuntimeError};

/// How often the upkeep thread folds histogram samples into their buckets and
/// runs the caches' pending maintenance. Often enough that neither piles up and
/// then stalls a request thread that happens to trigger it.
const UPKEEP_INTERVAL: Duration = Duration::from_millis(250);

/// The service's state, shared by every request.
#[derive(Debug)]
pub struct App {
    /// The configuration it was built from.
    pub config: Config,
    /// The WebAssembly runtime.
    pub runtime: Arc<Runtime>,
    /// Which plugin serves which record type.
    pub registry: Arc<Registry>,
    /// The read-through path and its caches.
    pub read_through: ReadThrough,
    /// Who may do what.
    pub access: Arc<dyn AccessPolicy>,
    /// Request counters and latency histograms.
    pub request_metrics: RequestMetrics,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

/// Why the service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The runtime could not start.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Plugins failed to load.
    #[error(transparent)]
    Plugins(#[from] RegistryError),
}

impl App {
    /// Starts the runtime and loads every record type's plugin. Compiling plugins
    /// is CPU-bound: call this from a blocking context (or before serving).
    pub fn build(config: Config) -> Result<Self, StartError> {
        let metrics = crate::metrics::install();
        let runtime = Arc::new(Runtime::new(
            &config.runtime,
            Some(config.cache_dir.clone()),
        )?);
        let registry = Arc::new(Registry::load(&runtime, &config)?);
        tracing::warn!(
            "the API is unauthenticated: anyone who can reach it may read and invalidate every record type"
        );
        Ok(Self {
            read_through: ReadThrough::new(registry.clone()),
            request_metrics: RequestMetrics::new(config.record_types.keys().map(String::as_str)),
            access: Arc::new(Unauthenticated),
            config,
            runtime,
            registry,
            metrics,
        })
    }

    /// Background work a serving app needs, on its own thread so it never holds up
    /// a request: folding histogram samples (so memory stays flat when nobody
    /// scrapes `/metrics`) and the caches' bookkeeping of reads and expiries
    /// (which would otherwise run inline in whichever read finds its buffers full).
    /// Stops when the app is dropped.
    pub fn spawn_background(self: &Arc<Self>) {
        let app = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("droid-upkeep".into())
            .spawn(move || {
                while let Some(app) = app.upgrade() {
                    app.metrics.run_upkeep();
                    app.read_through.run_pending_tasks();
                    drop(app);
                    std::thread::sleep(UPKEEP_INTERVAL);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the upkeep thread; maintenance will run inline");
        }
    }
}
