//! Which plugin serves which record type.
//!
//! A registry is built from a configuration: every record type is paired with
//! its plugin (loaded if not held yet) and its [`PluginContext`]. A registry is
//! immutable; a configuration reload builds a new one, reusing the bindings of
//! record types whose configuration did not change, and swaps it in whole.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Plugin, Plugins, Version};
use crate::config::{Config, Mode, RecordTypeConfig};
use crate::runtime::{LoadError, PluginContext, WorldKind};

/// One record type with the plugin that serves it.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The record type's configuration.
    pub config: Arc<RecordTypeConfig>,
    /// What its plugin calls see.
    pub context: Arc<PluginContext>,
    /// The plugin; which version serves a call depends on the tenant.
    pub plugin: Arc<Plugin>,
}

impl Binding {
    /// The version serving `tenant` now.
    pub fn select(&self, tenant: &str) -> Arc<Version> {
        self.plugin.select(tenant)
    }
}

/// Every record type's binding.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    bindings: HashMap<String, Binding>,
}

/// Why a registry could not be built: every plugin that failed, each with its reason.
#[derive(Debug, thiserror::Error)]
#[error("{} plugin(s) failed to load:{}", .0.len(), .0.iter().map(|e| format!("\n  {e}")).collect::<String>())]
pub struct RegistryError(pub Vec<LoadError>);

impl Registry {
    /// Binds every record type in `config`, reusing `previous`'s bindings of
    /// record types whose configuration is unchanged.
    pub fn bind(
        plugins: &Plugins,
        config: &Config,
        previous: Option<&Registry>,
    ) -> Result<Self, RegistryError> {
        let mut failures = Vec::new();
        let mut bindings = HashMap::new();
        for (name, rt) in &config.record_types {
            if let Some(old) = previous.and_then(|p| p.bindings.get(name))
                && *old.config == **rt
            {
                bindings.insert(name.clone(), old.clone());
                continue;
            }
            let path = config.plugin_dir.join(rt.plugin_file());
            let plugin = match plugins.ensure(rt.plugin_name()) {
                Ok(p) => p,
                Err(errors) => {
                    failures.extend(errors);
                    continue;
                }
            };
            let expected = match rt.mode {
                Mode::ReadThrough(_) => WorldKind::Adapter,
                Mode::Ingested(_) => WorldKind::Transformer,
            };
            if plugin.world() != expected {
                failures.push(LoadError::WrongWorld {
                    path,
                    record_type: name.clone(),
                    expected,
                    found: plugin.world(),
                });
                continue;
            }
            // A changed record type keeps its call slots and log budget, so
            // calls still running under the old binding count against them.
            let previous_context = previous
                .and_then(|p| p.bindings.get(name))
                .map(|b| &*b.context);
            let context = match PluginContext::new(rt, previous_context) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    failures.push(LoadError::Link {
                        path,
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

    /// How many record types are bound.
    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    /// Whether no record type is bound.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}
