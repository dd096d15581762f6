//! Plugins: the versions droid holds of each plugin, which one serves which
//! tenant, and how new files in the plugin folder get there.
//!
//! A plugin is a name (`echo`); its versions are the files `echo.wasm` and
//! `echo@VERSION.wasm` in the plugin folder, each loaded off the request path
//! (trust checked on the exact bytes first, then compiled or taken from the
//! artifact cache, its world and WIT version checked, linked). A file that fails
//! never replaces anything: the failure is kept, by file, for the admin API.
//!
//! A newly arrived version replaces the current one at once or rolls out to a
//! share of tenants first ([`RolloutPolicy`]); a rollout is promoted, rolled back
//! by an operator, or rolled back automatically when the candidate fails more
//! often than the current version ([`rollout::judge`]). Record types are bound
//! to plugins by the [`Registry`].

mod deployment;
mod files;
mod plugin;
mod registry;
mod rollout;
mod saved;
mod status;
pub mod trust;
mod version;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

pub use deployment::{Deployment, bucket};
pub use plugin::{Arrival, ControlError, Plugin, Rollback, RolledBack, VersionState};
pub use registry::{Binding, Registry, RegistryError};
pub use saved::{Saved, SavedFile, SavedPlugin};
pub use status::{LoadFailure, PluginStatus, VersionStatus};
pub use trust::{Trust, TrustError};
pub use version::Version;

use crate::config::{PluginSettings, RolloutPolicy, Share};
use crate::locks::{lock, read, write};
use crate::metrics::{PLUGIN_ROLLBACKS, PLUGINS_LOADED};
use crate::runtime::Runtime;
use crate::store::Fleet;

/// Every plugin droid holds, and the failures of files that did not load.
#[derive(Debug)]
pub struct Plugins {
    runtime: Arc<Runtime>,
    dir: PathBuf,
    policy: RwLock<RolloutPolicy>,
    trust: RwLock<Arc<Trust>>,
    plugins: RwLock<BTreeMap<String, Arc<Plugin>>>,
    failures: Mutex<BTreeMap<String, LoadFailure>>,
    next_id: AtomicU64,
    /// Serialises loads, so two events for one plugin cannot race.
    loading: Mutex<()>,
    /// Rollout decisions kept across restarts.
    saved_file: SavedFile,
    saved: Mutex<Saved>,
    /// Where decisions are shared with the other nodes, when the store is
    /// shared: theirs are applied here, ours are kept there.
    fleet: RwLock<Option<Arc<dyn Fleet>>>,
}

/// What became of a changed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Not a plugin file, or of a plugin no record type uses yet.
    Ignored(String),
    /// Loaded; what became of it.
    Loaded {
        /// The plugin.
        plugin: String,
        /// The new version's label.
        version: String,
        /// What it does now.
        arrival: Arrival,
    },
    /// Refused; the running versions are untouched.
    Failed(String),
    /// The file is gone.
    Removed {
        /// The plugin.
        plugin: String,
        /// Versions that keep serving although their file is gone.
        still_serving: Vec<String>,
    },
}

impl Plugins {
    /// An empty set of plugins loading from `dir` under `settings`, with the
    /// rollout decisions saved in `settings.state_file`.
    pub fn new(
        runtime: Arc<Runtime>,
        dir: PathBuf,
        settings: &PluginSettings,
    ) -> Result<Self, TrustError> {
        let saved_file = SavedFile::new(settings.state_file.clone());
        Ok(Self {
            saved: Mutex::new(saved_file.load()),
            saved_file,
            runtime,
            dir,
            policy: RwLock::new(settings.rollout),
            trust: RwLock::new(Arc::new(Trust::load(&settings.trust)?)),
            plugins: RwLock::default(),
            failures: Mutex::default(),
            next_id: AtomicU64::new(1),
            loading: Mutex::new(()),
            fleet: RwLock::new(None),
        })
    }

    /// Shares rollout decisions through `fleet` from now on: the fleet's
    /// decisions replace this node's, and plugins the fleet has none about
    /// get this node's. Returns the versions taken out of service here.
    pub fn share_decisions(&self, fleet: Arc<dyn Fleet>) -> Vec<Arc<Version>> {
        *write(&self.fleet) = Some(fleet.clone());
        let theirs = match fleet.decisions() {
            Ok((_, theirs)) => theirs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the fleet's rollout decisions; this node's stand until they can be read");
                return Vec::new();
            }
        };
        let taken = self.apply_decisions(&theirs);
        let plugins: Vec<_> = read(&self.plugins).values().cloned().collect();
        for plugin in plugins.iter().filter(|p| !theirs.contains_key(p.name())) {
            self.save(plugin);
        }
        taken
    }

    /// Applies decisions other nodes made (plugin name → decisions as JSON)
    /// to the plugins held here, as far as the versions they name are
    /// loaded; returns the versions that served before and no longer do.
    pub fn apply_decisions(&self, decisions: &BTreeMap<String, String>) -> Vec<Arc<Version>> {
        let mut taken = Vec::new();
        for (name, text) in decisions {
            let Some(plugin) = self.get(name) else {
                continue;
            };
            let theirs: SavedPlugin = match serde_json::from_str(text) {
                Ok(theirs) => theirs,
                Err(e) => {
                    tracing::warn!(plugin = %name, error = %e, "the fleet's rollout decisions do not parse; ignored");
                    continue;
                }
            };
            if plugin.saved() == theirs {
                continue;
            }
            let before = plugin.deployment();
            plugin.restore(&theirs);
            let after = plugin.deployment();
            let serves = |v: &Arc<Version>| {
                Arc::ptr_eq(v, &after.current)
                    || after
                        .candidate
                        .as_ref()
                        .is_some_and(|c| Arc::ptr_eq(v, &c.version))
            };
            let serving_before = std::iter::once(&before.current)
                .chain(before.candidate.as_ref().map(|c| &c.version));
            taken.extend(serving_before.filter(|v| !serves(v)).cloned());
            tracing::info!(plugin = %name, current = after.current.label(), "rollout decisions from the fleet applied");
            lock(&self.saved)
                .plugins
                .insert(name.clone(), plugin.saved());
            self.publish_loaded(&plugin);
        }
        taken
    }

    /// Applies new rollout and trust settings (a configuration reload). Versions
    /// already loaded stay; the trust rule applies to files loaded from now on.
    pub fn apply_settings(&self, settings: &PluginSettings) -> Result<(), TrustError> {
        let trust = Trust::load(&settings.trust)?;
        *write(&self.trust) = Arc::new(trust);
        *write(&self.policy) = settings.rollout;
        Ok(())
    }

    /// The plugin folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The plugin called `name`, if held.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        read(&self.plugins).get(name).cloned()
    }

    /// Lets go of plugins no record type in `used` names and whose files are all
    /// gone. Plugins whose files remain stay loaded, ready for a configuration
    /// that names them again.
    pub fn retire_unused(&self, used: &BTreeSet<&str>) -> Vec<String> {
        let mut plugins = write(&self.plugins);
        let retired: Vec<String> = plugins
            .iter()
            .filter(|(name, p)| !used.contains(name.as_str()) && !p.has_files())
            .map(|(name, _)| name.clone())
            .collect();
        for name in &retired {
            plugins.remove(name);
            tracing::info!(plugin = %name, "plugin retired: no record type uses it and its files are gone");
        }
        retired
    }

    /// Rolls `reference` out to `share` of plugin `name`'s tenants.
    pub fn rollout(
        &self,
        name: &str,
        reference: &str,
        share: Share,
    ) -> Result<Arc<Version>, ControlError> {
        let plugin = self.plugin(name)?;
        let version = plugin.rollout(reference, share)?;
        tracing::info!(plugin = name, version = version.label(), share = %share, "rollout started by an operator");
        self.publish_loaded(&plugin);
        self.save(&plugin);
        Ok(version)
    }

    /// Promotes plugin `name`'s candidate to every tenant.
    pub fn promote(&self, name: &str) -> Result<Arc<Version>, ControlError> {
        let plugin = self.plugin(name)?;
        let version = plugin.promote()?;
        tracing::info!(
            plugin = name,
            version = version.label(),
            "promoted to every tenant"
        );
        self.publish_loaded(&plugin);
        Ok(version)
    }

    /// Rolls back plugin `name` on an operator's word.
    pub fn rollback(&self, name: &str, reason: Option<&str>) -> Result<RolledBack, ControlError> {
        let plugin = self.plugin(name)?;
        let done = plugin.rollback(reason.unwrap_or("rolled back by an operator"), false)?;
        self.rolled_back(&plugin, &done);
        Ok(done)
    }

    /// Judges every running rollout and rolls back the candidates doing worse
    /// than their current version.
    pub fn check_rollouts(&self) -> Vec<RolledBack> {
        let policy = *read(&self.policy);
        let plugins: Vec<_> = read(&self.plugins).values().cloned().collect();
        let mut done = Vec::new();
        for plugin in plugins {
            let deployment = plugin.deployment();
            let Some(candidate) = &deployment.candidate else {
                continue;
            };
            let Some(verdict) = rollout::judge(&policy, &deployment.current, candidate) else {
                continue;
            };
            if let Ok(rolled) = plugin.rollback(&verdict.to_string(), true) {
                self.rolled_back(&plugin, &rolled);
                done.push(rolled);
            }
        }
        done
    }

    /// Every plugin's versions, states and counters, and every file that failed.
    pub fn status(&self) -> (Vec<PluginStatus>, Vec<LoadFailure>) {
        let plugins: Vec<_> = read(&self.plugins).values().cloned().collect();
        let statuses = plugins.iter().map(|p| PluginStatus::of(p)).collect();
        let failures = lock(&self.failures).values().cloned().collect();
        (statuses, failures)
    }

    fn plugin(&self, name: &str) -> Result<Arc<Plugin>, ControlError> {
        self.get(name)
            .ok_or_else(|| ControlError::UnknownPlugin(name.to_owned()))
    }

    fn rolled_back(&self, plugin: &Plugin, done: &RolledBack) {
        let how = if done.record.automatic {
            "automatic"
        } else {
            "manual"
        };
        tracing::warn!(plugin = plugin.name(), version = %done.record.version, serving = %done.record.serving, reason = %done.record.reason, how, "plugin version rolled back");
        ::metrics::counter!(PLUGIN_ROLLBACKS, "plugin" => plugin.name().to_owned(), "how" => how)
            .increment(1);
        self.publish_loaded(plugin);
        self.save(plugin);
    }

    /// Keeps `plugin`'s decisions for the next start, and for the other
    /// nodes when decisions are shared. A version the fleet took out of
    /// service is never brought back by this node: then the fleet's
    /// decisions are applied here instead.
    fn save(&self, plugin: &Plugin) {
        let mut decisions = plugin.saved();
        let fleet = read(&self.fleet).clone();
        if let Some(fleet) = fleet {
            let theirs = fleet.decisions().map(|(_, all)| {
                all.get(plugin.name())
                    .and_then(|text| serde_json::from_str::<SavedPlugin>(text).ok())
            });
            match theirs {
                Ok(Some(theirs)) => {
                    let revived = |sha: &Option<String>| {
                        sha.as_ref().is_some_and(|sha| {
                            theirs.rolled_back.contains_key(sha)
                                && !decisions.rolled_back.contains_key(sha)
                        })
                    };
                    let candidate = decisions.candidate.as_ref().map(|(sha, _)| sha.clone());
                    if revived(&decisions.current) || revived(&candidate) {
                        plugin.restore(&theirs);
                        decisions = plugin.saved();
                    } else {
                        decisions.rolled_back.extend(theirs.rolled_back);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(plugin = plugin.name(), error = %e, "cannot read the fleet's rollout decisions; this node's are kept locally");
                }
            }
            match serde_json::to_string(&decisions) {
                Ok(text) => {
                    if let Err(e) = fleet.put_decisions(plugin.name(), &text) {
                        tracing::warn!(plugin = plugin.name(), error = %e, "cannot share a rollout decision with the fleet; other nodes keep theirs");
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot encode rollout decisions"),
            }
        }
        let mut saved = lock(&self.saved);
        if saved.plugins.get(plugin.name()) != Some(&decisions) {
            saved.plugins.insert(plugin.name().to_owned(), decisions);
            self.saved_file.store(&saved);
        }
    }

    fn publish_loaded(&self, plugin: &Plugin) {
        for (version, state) in plugin.versions() {
            let share = match state {
                VersionState::Current => {
                    let d = plugin.deployment();
                    1.0 - d.candidate.as_ref().map_or(0.0, |c| c.share.fraction())
                }
                VersionState::Candidate(share) => share.fraction(),
                _ => 0.0,
            };
            ::metrics::gauge!(PLUGINS_LOADED, "plugin" => plugin.name().to_owned(), "version" => version.label().to_owned(), "world" => version.world().to_string()).set(share);
        }
    }
}
