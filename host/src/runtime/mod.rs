//! The WebAssembly runtime: one wasmtime engine, the host side of the plugin
//! contract in `wit/`, and loading and calling plugin components under limits.
//!
//! Loading a file compiles it once (or takes it from the on-disk artifact cache),
//! checks that it implements a droid world at a version this host speaks and
//! imports nothing droid does not provide, and links it (`InstancePre`), then
//! instantiates it once as a trial under the start-up deadline. Calling it
//! instantiates it into a fresh store from the pooling allocator, with the record
//! type's memory cap and deadline, on the plugin executor's threads (never the
//! HTTP server's). A trap, panic, timeout, memory exhaustion or a limit gone
//! past fails that one call with a typed [`CallError`].
//!
//! This module knows nothing about HTTP routes, caches or which record types
//! exist: callers hand it a file and a [`PluginContext`].

mod artifacts;
mod bindings;
mod call;
mod context;
mod error;
mod executor;
mod inspect;
mod logs;
pub mod naming;
mod outbound;
mod plugin;
mod state;
mod stats;
mod world;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker};

pub use crate::failure::{CallError, FetchError, Outcome};
pub use artifacts::Provenance;
pub use context::PluginContext;
pub use error::LoadError;
pub use inspect::{Inspection, ItemSignature};
pub use plugin::{AdapterPlugin, EventResult, PluginInfo, TransformerPlugin};
pub use stats::{CallStats, StatsSnapshot};
pub use world::{ACCEPTED, Identity, PACKAGE_VERSION, WorldKind};

use artifacts::ArtifactCache;
use bindings::{Adapter, AdapterPre, Transformer, TransformerPre};
use engine::EpochTicker;
use executor::Executor;
use state::CallState;

mod engine;

/// A plugin of either world.
#[derive(Debug, Clone)]
pub enum LoadedPlugin {
    /// An adapter.
    Adapter(Arc<AdapterPlugin>),
    /// A transformer.
    Transformer(Arc<TransformerPlugin>),
}

impl LoadedPlugin {
    /// What is known about the file.
    pub fn info(&self) -> &PluginInfo {
        match self {
            LoadedPlugin::Adapter(p) => &p.info,
            LoadedPlugin::Transformer(p) => &p.info,
        }
    }

    /// The version's call counters.
    pub fn stats(&self) -> &CallStats {
        match self {
            LoadedPlugin::Adapter(p) => &p.stats,
            LoadedPlugin::Transformer(p) => &p.stats,
        }
    }

    /// The world it implements.
    pub fn world(&self) -> WorldKind {
        match self {
            LoadedPlugin::Adapter(_) => WorldKind::Adapter,
            LoadedPlugin::Transformer(_) => WorldKind::Transformer,
        }
    }
}

/// The engine, its linkers and its artifact cache. Cheap to share behind an `Arc`.
pub struct Runtime {
    engine: Engine,
    /// Where every plugin call runs.
    executor: Arc<Executor>,
    /// The trial instance of every load runs under this memory cap.
    max_memory_bytes: u64,
    /// ... and this deadline.
    startup_deadline: std::time::Duration,
    adapter_linker: Linker<CallState>,
    transformer_linker: Linker<CallState>,
    artifacts: ArtifactCache,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("artifacts", &self.artifacts)
            .finish_non_exhaustive()
    }
}

/// Why the runtime itself could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime refused the engine settings.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// The host's own imports could not be linked (a bug).
    #[error("cannot link the host interfaces: {0}")]
    Link(String),
    /// The epoch thread could not start.
    #[error("cannot start the deadline clock: {0}")]
    Ticker(#[from] std::io::Error),
    /// The plugin threads could not start.
    #[error("cannot start the plugin threads: {0}")]
    Executor(std::io::Error),
}

impl Runtime {
    /// Starts a runtime sized by `settings`, caching compiled plugins in `cache_dir`
    /// (`None`: compile every time).
    pub fn new(
        settings: &crate::config::RuntimeSettings,
        cache_dir: Option<PathBuf>,
    ) -> Result<Self, RuntimeError> {
        let engine = engine::build(settings).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let link = |e: wasmtime::Error| RuntimeError::Link(format!("{e:#}"));

        let mut adapter_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut adapter_linker).map_err(link)?;
        Adapter::add_to_linker::<CallState, HasSelf<CallState>>(&mut adapter_linker, |s| s)
            .map_err(link)?;

        let mut transformer_linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut transformer_linker).map_err(link)?;
        Transformer::add_to_linker::<CallState, HasSelf<CallState>>(&mut transformer_linker, |s| s)
            .map_err(link)?;

        let ticker = EpochTicker::start(&engine)?;
        let executor = Executor::start(settings.plugin_threads, settings.plugin_nice)
            .map_err(RuntimeError::Executor)?;
        let artifacts = ArtifactCache::new(&engine, cache_dir);
        Ok(Self {
            engine,
            executor: Arc::new(executor),
            max_memory_bytes: settings.max_memory_bytes,
            startup_deadline: settings.startup_deadline,
            adapter_linker,
            transformer_linker,
            artifacts,
            _ticker: ticker,
        })
    }

    /// Loads the plugin at `path`, which must implement `expected` (`record_type`
    /// names who asked, for the error message). Compiling can take a while: call
    /// this off the request path.
    pub fn load(
        &self,
        path: &Path,
        expected: WorldKind,
        record_type: &str,
    ) -> Result<LoadedPlugin, LoadError> {
        let bytes = read(path)?;
        self.load_bytes(path, &bytes, Some((expected, record_type)))
    }

    /// Loads a plugin from `bytes`, read from `path`, whichever world it
    /// implements unless `expected` names one (and the record type that needs it).
    /// The caller reads the file itself so it can judge the exact bytes (their
    /// hash, a signature) before anything is compiled.
    pub fn load_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
        expected: Option<(WorldKind, &str)>,
    ) -> Result<LoadedPlugin, LoadError> {
        let started = Instant::now();
        let compiled = self.compile_bytes(path, bytes)?;
        let identity = world::identify(&self.engine, &compiled.component, path)?;
        let (expected, record_type) = expected.unwrap_or((identity.world, "(any)"));
        let plugin = self.link(path, compiled, identity, expected, record_type, started)?;
        self.trial(path, &plugin)?;
        Ok(plugin)
    }

    /// Instantiates a freshly linked plugin once and drops it, so a component
    /// whose start-up traps, waits past the start-up deadline or whose memory
    /// does not fit is refused at load rather than failing every call. It runs
    /// like a call (on the executor, under a deadline both inside wasm and
    /// around host calls), so nothing a component does at start-up can hold
    /// up or break whoever loads it. Blocking: call it off the async workers.
    fn trial(&self, path: &Path, plugin: &LoadedPlugin) -> Result<(), LoadError> {
        let ctx = Arc::new(PluginContext::trial(
            self.max_memory_bytes,
            self.startup_deadline,
        ));
        let (engine, plugin) = (self.engine.clone(), plugin.clone());
        let work = async move {
            let label: Arc<str> = Arc::from("(load check)");
            let mut store = call::new_store(&engine, &ctx, &label);
            let result = call::run(ctx.limits.deadline, async {
                match &plugin {
                    LoadedPlugin::Adapter(p) => p.pre.instantiate_async(&mut store).await.map(drop),
                    LoadedPlugin::Transformer(p) => {
                        p.pre.instantiate_async(&mut store).await.map(drop)
                    }
                }
            })
            .await;
            call::settle(result, store.data())
        };
        let failed = |e: CallError| LoadError::Instantiate {
            path: path.to_path_buf(),
            reason: match e {
                CallError::Timeout { deadline } => format!(
                    "its start-up took longer than runtime.startup_deadline_ms ({} ms)",
                    deadline.as_millis()
                ),
                other => other.to_string(),
            },
        };
        self.executor
            .block_on(work)
            .map_err(failed)?
            .map_err(failed)
    }

    /// Checks a compiled component's world against `expected` and links it.
    fn link(
        &self,
        path: &Path,
        compiled: Compiled,
        identity: Identity,
        expected: WorldKind,
        record_type: &str,
        started: Instant,
    ) -> Result<LoadedPlugin, LoadError> {
        if identity.world != expected {
            return Err(LoadError::WrongWorld {
                path: path.to_path_buf(),
                record_type: record_type.to_owned(),
                expected,
                found: identity.world,
            });
        }
        let link_error = |e: wasmtime::Error| LoadError::Link {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        };
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let named = naming::parse_file_name(&file);
        let declared_version = named
            .as_ref()
            .and_then(|n| n.version.clone())
            .or(compiled.embedded_version);
        let info = PluginInfo {
            name: named.map_or_else(|| file.clone(), |n| n.plugin),
            label: naming::label(declared_version.as_deref(), &compiled.sha256),
            declared_version,
            file: file.clone(),
            path: path.to_path_buf(),
            sha256: compiled.sha256,
            size: compiled.size,
            identity,
            provenance: compiled.provenance,
            load_time: started.elapsed(),
        };
        let label: Arc<str> = Arc::from(info.name.as_str());
        Ok(match expected {
            WorldKind::Adapter => {
                let pre = self
                    .adapter_linker
                    .instantiate_pre(&compiled.component)
                    .map_err(link_error)?;
                let pre = AdapterPre::new(pre).map_err(link_error)?;
                LoadedPlugin::Adapter(Arc::new(AdapterPlugin {
                    info,
                    label,
                    engine: self.engine.clone(),
                    executor: self.executor.clone(),
                    pre,
                    stats: CallStats::default(),
                }))
            }
            WorldKind::Transformer => {
                let pre = self
                    .transformer_linker
                    .instantiate_pre(&compiled.component)
                    .map_err(link_error)?;
                let pre = TransformerPre::new(pre).map_err(link_error)?;
                LoadedPlugin::Transformer(Arc::new(TransformerPlugin {
                    info,
                    label,
                    engine: self.engine.clone(),
                    executor: self.executor.clone(),
                    pre,
                    stats: CallStats::default(),
                }))
            }
        })
    }

    /// Everything `droid plugin inspect` shows about a file, including why this host
    /// would refuse it.
    pub fn inspect(&self, path: &Path) -> Result<Inspection, LoadError> {
        let started = Instant::now();
        let compiled = self.compile_bytes(path, &read(path)?)?;
        let mut inspection = inspect::describe(
            &self.engine,
            path,
            &compiled.component,
            compiled.size,
            &compiled.sha256,
        );
        inspection.verdict =
            world::identify(&self.engine, &compiled.component, path).and_then(|identity| {
                inspection.identity = Some(identity.clone());
                let world = identity.world;
                self.link(path, compiled, identity, world, "(inspect)", started)
                    .map(|_| ())
            });
        Ok(inspection)
    }

    /// Compiles a file's bytes without judging what they implement.
    fn compile_bytes(&self, path: &Path, bytes: &[u8]) -> Result<Compiled, LoadError> {
        check_is_component(bytes).map_err(|reason| LoadError::NotAComponent {
            path: path.to_path_buf(),
            reason,
        })?;
        let sha256 = sha256_hex(bytes);
        let (component, provenance) =
            self.artifacts
                .load(&self.engine, &sha256, bytes)
                .map_err(|e| LoadError::Compile {
                    path: path.to_path_buf(),
                    reason: format!("{e:#}"),
                })?;
        Ok(Compiled {
            component,
            sha256,
            size: bytes.len() as u64,
            provenance,
            embedded_version: naming::embedded_version(bytes),
        })
    }
}

struct Compiled {
    component: Component,
    sha256: String,
    size: u64,
    provenance: Provenance,
    embedded_version: Option<String>,
}

/// Reads a plugin file.
fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|e| LoadError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The SHA-256 of `bytes` in lowercase hex: a plugin version's content identity.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A component starts with the wasm magic and layer 1; a core module has layer 0.
fn check_is_component(bytes: &[u8]) -> Result<(), String> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err("the file does not start with the WebAssembly magic number".to_owned());
    }
    match bytes[6..8] {
        [1, 0] => Ok(()),
        [0, 0] => Err(
            "it is a core WebAssembly module, not a component; build plugins with `cargo build --target wasm32-wasip2`"
                .to_owned(),
        ),
        _ => Err("unknown WebAssembly binary layer".to_owned()),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
