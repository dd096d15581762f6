//! One loaded version of a plugin: the compiled component plus what droid knows
//! about where it came from.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use crate::runtime::{AdapterPlugin, LoadedPlugin, StatsSnapshot, TransformerPlugin, WorldKind};

/// A loaded plugin version. Shared by `Arc`: a call holds its version until it
/// ends, so a swap never cuts a call short.
#[derive(Debug)]
pub struct Version {
    /// Unique within this process; cache entries remember the version that
    /// produced them by this id, so a rollback can drop exactly those.
    pub id: u64,
    /// The compiled, linked component.
    pub plugin: LoadedPlugin,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// What made it trusted: a pinned hash or a signing key; `None` when trust is
    /// not required and the file carried neither.
    pub trusted_by: Option<String>,
    /// Set when the version is rolled back: a fetch it was still running must
    /// not leave its result in a cache.
    pub(super) withdrawn: AtomicBool,
}

impl Version {
    /// The label it goes by (declared version plus content hash).
    pub fn label(&self) -> &str {
        &self.plugin.info().label
    }

    /// SHA-256 of the file, in hex.
    pub fn sha256(&self) -> &str {
        &self.plugin.info().sha256
    }

    /// The file it was loaded from, inside the plugin folder.
    pub fn file(&self) -> &str {
        &self.plugin.info().file
    }

    /// The version the file name or the component declares, if any.
    pub fn declared(&self) -> Option<&str> {
        self.plugin.info().declared_version.as_deref()
    }

    /// Its world.
    pub fn world(&self) -> WorldKind {
        self.plugin.world()
    }

    /// The adapter, when it is one.
    pub fn adapter(&self) -> Option<&Arc<AdapterPlugin>> {
        match &self.plugin {
            LoadedPlugin::Adapter(a) => Some(a),
            LoadedPlugin::Transformer(_) => None,
        }
    }

    /// The transformer, when it is one.
    pub fn transformer(&self) -> Option<&Arc<TransformerPlugin>> {
        match &self.plugin {
            LoadedPlugin::Transformer(t) => Some(t),
            LoadedPlugin::Adapter(_) => None,
        }
    }

    /// Whether it was rolled back (and not rolled out again since).
    pub fn is_withdrawn(&self) -> bool {
        self.withdrawn.load(Ordering::SeqCst)
    }

    pub(super) fn set_withdrawn(&self, withdrawn: bool) {
        self.withdrawn.store(withdrawn, Ordering::SeqCst);
    }

    /// Its call counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.plugin.stats().snapshot()
    }

    /// Whether `reference` names this version: its label, its declared version,
    /// or a prefix of its hash (at least 8 hex digits).
    pub fn answers_to(&self, reference: &str) -> bool {
        reference == self.label()
            || self.declared() == Some(reference)
            || (reference.len() >= 8 && self.sha256().starts_with(reference))
    }
}
