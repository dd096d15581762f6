//! Everything a running droid holds, built from a validated configuration.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::plugins::{Registry, RegistryError};
use crate::readthrough::ReadThrough;
use crate::runtime::{Runtime, RuntimeError};

/// The service's state, shared by every request.
#[derive(Debug)]
pub struct App {
    /// The configuration it was built from.
    pub config: Config,
    /// The WebAssembly runtime.
    pub runtime: Arc<Runtime>,
    /// Which plugin serves which record type.
    pub registry: Arc<Registry>,
    /// The read-through path.
    pub read_through: ReadThrough,
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
        Ok(Self {
            read_through: ReadThrough::new(registry.clone()),
            config,
            runtime,
            registry,
            metrics,
        })
    }
}
