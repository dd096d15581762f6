//! The plugin registry: which loaded plugin serves which record type.
//!
//! At start-up every record type's plugin file is loaded from the plugin folder
//! (each file compiled once, however many record types share it) and paired with
//! the record type's [`PluginContext`]. Loading happens before the server listens,
//! so a bad file stops start-up with a message naming it instead of failing
//! requests later. Live reload and rollout swap entries of this registry; they are
//! not part of this module yet.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::{Config, Mode, RecordTypeConfig};
use crate::metrics::{PLUGIN_LOAD_FAILURES, PLUGINS_LOADED};
use crate::runtime::{
    AdapterPlugin, LoadError, LoadedPlugin, PluginContext, Runtime, TransformerPlugin, WorldKind,
};

/// One record type with the plugin that serves it.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The record type's configuration.
    pub config: Arc<RecordTypeConfig>,
    /// What its plugin calls see.
    pub context: Arc<PluginContext>,
    /// The plugin.
    pub plugin: LoadedPlugin,
}

impl Binding {
    /// The adapter, when this is a read-through record type.
    pub fn adapter(&self) -> Option<&Arc<AdapterPlugin>> {
        match &self.plugin {
            LoadedPlugin::Adapter(a) => Some(a),
            LoadedPlugin::Transformer(_) => None,
        }
    }

    /// The transformer, when this is an ingested record type.
    pub fn transformer(&self) -> Option<&Arc<TransformerPlugin>> {
        match &self.plugin {
            LoadedPlugin::Transformer(t) => Some(t),
            LoadedPlugin::Adapter(_) => None,
        }
    }
}

/// Every record type's binding.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    bindings: HashMap<String, Binding>,
}

/// Why the registry could not be built: every plugin that failed, each with its reason.
#[derive(Debug, thiserror::Error)]
#[error("{} plugin(s) failed to load:{}", .0.len(), .0.iter().map(|e| format!("\n  {e}")).collect::<String>())]
pub struct RegistryError(pub Vec<LoadError>);

impl Registry {
    /// Loads the plugin of every record type in `config`.
    pub fn load(runtime: &Runtime, config: &Config) -> Result<Self, RegistryError> {
        let mut loaded: BTreeMap<(String, WorldKind), LoadedPlugin> = BTreeMap::new();
        let mut failures = Vec::new();
        let mut bindings = HashMap::new();
        for (name, rt) in &config.record_types {
            let world = match rt.mode {
                Mode::ReadThrough(_) => WorldKind::Adapter,
                Mode::Ingested(_) => WorldKind::Transformer,
            };
            let file = rt.plugin_file().to_owned();
            let plugin = match loaded.get(&(file.clone(), world)) {
                Some(p) => p.clone(),
                None => match runtime.load(&config.plugin_dir.join(&file), world, name) {
                    Ok(p) => {
                        let info = p.info();
                        tracing::info!(
                            plugin = %info.file,
                            version = info.version_label(),
                            world = %world,
                            source = ?info.provenance,
                            load_ms = info.load_time.as_millis() as u64,
                            "plugin loaded"
                        );
                        metrics::gauge!(PLUGINS_LOADED, "plugin" => info.file.clone(), "version" => info.version_label().to_owned(), "world" => world.to_string()).set(1.0);
                        loaded.insert((file, world), p.clone());
                        p
                    }
                    Err(e) => {
                        metrics::counter!(PLUGIN_LOAD_FAILURES, "file" => file).increment(1);
                        failures.push(e);
                        continue;
                    }
                },
            };
            let context = match PluginContext::new(rt) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    failures.push(LoadError::Link {
                        path: config.plugin_dir.join(rt.plugin_file()),
                        reason: format!(
                            "cannot set up outbound HTTP for record type {name:?}: {e}"
                        ),
                    });
                    continue;
                }
            };
            bindings.insert(
                name.clone(),
                Binding {
                    config: rt.clone(),
                    context,
                    plugin,
                },
            );
        }
        if failures.is_empty() {
            Ok(Self { bindings })
        } else {
            Err(RegistryError(failures))
        }
    }

    /// The binding of record type `name`.
    pub fn get(&self, name: &str) -> Option<&Binding> {
        self.bindings.get(name)
    }

    /// Every binding, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Binding)> {
        self.bindings.iter()
    }
}
