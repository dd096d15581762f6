//! The control plane: changes a running droid takes, one at a time under one
//! lock, off the request path: configuration reloads, plugin files the
//! watcher reports (compiled on a loader thread of their own), rollouts,
//! promotions and rollbacks. What it changes is swapped into the
//! [`Service`](super::Service) whole.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::Service;
use crate::config::{Config, ConfigError, Share};
use crate::locks::lock;
use crate::metrics::CONFIG_RELOADS;
use crate::plugins::{
    ControlError, FileOutcome, Plugins, Registry, RegistryError, RolledBack, TrustError, Version,
    watch,
};

/// How the configuration file has fared since start, for the admin API.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigStatus {
    /// The configuration file.
    pub file: PathBuf,
    /// When the configuration in force was loaded, in seconds since the Unix epoch.
    pub loaded_at: u64,
    /// Reloads applied since start.
    pub reloads: u64,
    /// The last refused reload, if it was refused after the last applied one.
    pub last_error: Option<ReloadFailure>,
    /// Settings changed in the file that only take effect on restart.
    pub restart_required: Vec<String>,
}

/// A refused reload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadFailure {
    /// When, in seconds since the Unix epoch.
    pub at: u64,
    /// Why, naming the file and the field or plugin.
    pub reason: String,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Record types that appeared.
    pub added: Vec<String>,
    /// Record types whose configuration changed (their caches start empty).
    pub changed: Vec<String>,
    /// Record types that went away.
    pub removed: Vec<String>,
    /// Settings that only take effect on restart.
    pub restart_required: Vec<String>,
}

/// Why a reload was refused; the running configuration stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A plugin it names does not load.
    #[error(transparent)]
    Plugins(#[from] RegistryError),
    /// A trusted key does not load.
    #[error(transparent)]
    Trust(#[from] TrustError),
}

/// The control plane of a running droid.
#[derive(Debug)]
pub struct Control {
    pub(super) service: Arc<Service>,
    /// Every plugin and its versions.
    pub plugins: Arc<Plugins>,
    status: Mutex<ConfigStatus>,
    /// Serialises changes (reloads, file events, rollouts asked for by operators).
    pub(super) changing: Mutex<()>,
    watcher: Mutex<Option<watch::Watcher>>,
}

impl Control {
    /// The control plane of `service`, whose plugins are `plugins`.
    pub(super) fn new(service: Arc<Service>, plugins: Arc<Plugins>) -> Self {
        let file = service.config().source.clone();
        Self {
            service,
            plugins,
            status: Mutex::new(ConfigStatus {
                file,
                loaded_at: unix_now(),
                reloads: 0,
                last_error: None,
                restart_required: Vec::new(),
            }),
            changing: Mutex::new(()),
            watcher: Mutex::new(None),
        }
    }

    /// How the configuration file has fared.
    pub fn config_status(&self) -> ConfigStatus {
        lock(&self.status).clone()
    }

    /// Reads the configuration file again and applies it: record types added,
    /// changed and removed live. A file that does not validate, or names a
    /// plugin that does not load, is refused with the reason and the running
    /// configuration stays. Blocking (it may compile plugins).
    pub fn reload_config(&self) -> Result<ReloadReport, ReloadError> {
        let _changing = lock(&self.changing);
        let result = self.apply_config_file();
        let mut status = lock(&self.status);
        match &result {
            Ok(report) => {
                status.loaded_at = unix_now();
                status.reloads += 1;
                status.last_error = None;
                status.restart_required = report.restart_required.clone();
                ::metrics::counter!(CONFIG_RELOADS, "result" => "applied").increment(1);
                tracing::info!(added = ?report.added, changed = ?report.changed, removed = ?report.removed, "configuration reloaded");
                for setting in &report.restart_required {
                    tracing::warn!(%setting, "changed in the configuration file; takes effect on restart");
                }
            }
            Err(e) => {
                status.last_error = Some(ReloadFailure {
                    at: unix_now(),
                    reason: e.to_string(),
                });
                ::metrics::counter!(CONFIG_RELOADS, "result" => "refused").increment(1);
                tracing::error!(error = %e, "configuration reload refused; the running configuration stays");
            }
        }
        result
    }

    fn apply_config_file(&self) -> Result<ReloadReport, ReloadError> {
        let old = self.service.live.load_full();
        let mut config = Config::load(&old.config.source)?;
        let restart_required = keep_restart_settings(&mut config, &old.config);
        self.plugins.apply_settings(&config.plugins)?;
        let registry = Arc::new(Registry::bind(&self.plugins, &config, Some(&old.registry))?);
        let names = |c: &Config| c.record_types.keys().cloned().collect::<BTreeSet<_>>();
        let (before, after) = (names(&old.config), names(&config));
        let report = ReloadReport {
            added: after.difference(&before).cloned().collect(),
            removed: before.difference(&after).cloned().collect(),
            changed: after
                .intersection(&before)
                .filter(|n| old.config.record_types[*n] != config.record_types[*n])
                .cloned()
                .collect(),
            restart_required,
        };
        self.service
            .request_metrics
            .register(config.record_types.keys().map(String::as_str));
        self.service.read_through.rebind(&registry);
        if let Some(authenticator) = &self.service.authenticator {
            authenticator.set_granted_issuers(crate::access::granted_issuers(&config));
        }
        self.service.live.store(Arc::new(super::service::Live {
            config: Arc::new(config),
            registry,
        }));
        self.retire_unused();
        Ok(report)
    }

    /// Handles a settled change to `path`: the configuration file or a plugin
    /// file. Blocking (it may compile a plugin).
    pub fn file_changed(&self, path: &Path) {
        let config = self.service.config();
        if same_file(path, &config.source) {
            // Refusals are logged and kept for the admin API by the reload.
            let _ = self.reload_config();
            return;
        }
        if path
            .parent()
            .is_none_or(|dir| !same_file(dir, &config.plugin_dir))
        {
            return;
        }
        let _changing = lock(&self.changing);
        let outcome = self.plugins.file_changed(path);
        if let FileOutcome::Removed { .. } = outcome {
            self.retire_unused();
        }
        if let FileOutcome::Ignored(why) = &outcome {
            tracing::debug!(path = %path.display(), why, "file change ignored");
        }
    }

    /// Loads every file of the plugins in use again, then the configuration: for
    /// operators on file systems that do not report changes.
    pub fn rescan(&self) -> (Vec<FileOutcome>, Result<ReloadReport, ReloadError>) {
        let outcomes = {
            let _changing = lock(&self.changing);
            self.plugins.rescan()
        };
        (outcomes, self.reload_config())
    }

    /// Rolls version `reference` of plugin `name` out to `share` of tenants.
    pub fn rollout(
        &self,
        name: &str,
        reference: &str,
        share: Share,
    ) -> Result<Arc<Version>, ControlError> {
        let _changing = lock(&self.changing);
        self.plugins.rollout(name, reference, share)
    }

    /// Promotes plugin `name`'s candidate to every tenant.
    pub fn promote(&self, name: &str) -> Result<Arc<Version>, ControlError> {
        let _changing = lock(&self.changing);
        self.plugins.promote(name)
    }

    /// Rolls plugin `name` back and drops the cache entries the version taken
    /// back produced.
    pub fn rollback(&self, name: &str, reason: Option<&str>) -> Result<RolledBack, ControlError> {
        let _changing = lock(&self.changing);
        let done = self.plugins.rollback(name, reason)?;
        self.service.read_through.drop_produced_by(done.version.id);
        Ok(done)
    }

    /// Rolls back every candidate doing worse than its current version. Takes
    /// only each plugin's own lock, never the change lock: the upkeep thread
    /// calls it and must not wait behind a plugin being compiled.
    pub fn check_rollouts(&self) -> Vec<RolledBack> {
        let done = self.plugins.check_rollouts();
        for rolled in &done {
            self.service
                .read_through
                .drop_produced_by(rolled.version.id);
        }
        done
    }

    fn retire_unused(&self) {
        let registry = self.service.registry();
        let used: BTreeSet<&str> = registry.iter().map(|(_, b)| b.plugin.name()).collect();
        self.plugins.retire_unused(&used);
    }

    pub(super) fn start_watching(self: &Arc<Self>) {
        let config = self.service.config();
        if !config.plugins.watch {
            return;
        }
        let mut dirs = vec![config.plugin_dir.clone()];
        let config_dir = config
            .source
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        if !same_file(&config_dir, &config.plugin_dir) {
            dirs.push(config_dir);
        }
        // The watcher only reports; a loader thread of its own compiles, so
        // a slow compile never holds up noticing the next change.
        let (changes, changed) = std::sync::mpsc::channel::<PathBuf>();
        let started = watch::start(&dirs, config.plugins.settle, move |path| {
            let _ = changes.send(path);
        });
        if started.is_ok() {
            self.start_loader(changed);
        }
        match started {
            Ok(watcher) => {
                tracing::info!(dirs = ?dirs, "watching for plugin and configuration changes");
                *lock(&self.watcher) = Some(watcher);
            }
            Err(e) => {
                tracing::error!(error = %e, dirs = ?dirs, "cannot watch for changes; use POST /v1/admin/reload after changing files")
            }
        }
    }

    /// Handles the watcher's settled changes, one at a time, until the
    /// watcher or the app goes away. Nothing a file makes loading do may end
    /// it: a panic is logged and the next change is handled as usual.
    fn start_loader(self: &Arc<Self>, changed: std::sync::mpsc::Receiver<PathBuf>) {
        let app = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("droid-loader".into())
            .spawn(move || {
                // Files that changed between loading and watching were
                // missed: look at them once first (known contents cost a
                // hash each). Here, not on the caller's thread: it may be an
                // async worker, and loading compiles and saves decisions.
                if let Some(app) = app.upgrade() {
                    let _changing = lock(&app.changing);
                    app.plugins.rescan();
                }
                for path in changed {
                    let Some(app) = app.upgrade() else {
                        break;
                    };
                    let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        app.file_changed(&path)
                    }));
                    if handled.is_err() {
                        tracing::error!(path = %path.display(), "handling a file change failed; watching goes on");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the plugin loader; use POST /v1/admin/reload after changing files");
        }
    }
}

/// Puts back the settings that cannot change while running, and names them.
fn keep_restart_settings(new: &mut Config, running: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    if new.listen != running.listen {
        changed.push("server.listen".to_owned());
        new.listen = running.listen;
    }
    if new.plugin_dir != running.plugin_dir {
        changed.push("plugins.dir".to_owned());
        new.plugin_dir = running.plugin_dir.clone();
    }
    if new.cache_dir != running.cache_dir {
        changed.push("plugins.cache_dir".to_owned());
        new.cache_dir = running.cache_dir.clone();
    }
    if new.store_backend != running.store_backend {
        changed.push("store.backend/url/schema".to_owned());
        new.store_backend = running.store_backend.clone();
    }
    if new.store_path != running.store_path {
        changed.push("store.path".to_owned());
        new.store_path = running.store_path.clone();
    }
    // The realms' stores are open and the directory's rules in force: a
    // tenant's placement never changes under it while running.
    if new.tenancy != running.tenancy {
        changed.push("realms and tenancy".to_owned());
        new.tenancy = running.tenancy.clone();
    }
    new.insecure_no_auth = running.insecure_no_auth;
    if new.auth != running.auth {
        changed.push("auth".to_owned());
        new.auth = running.auth.clone();
    }
    if new.store_engine_cache_bytes != running.store_engine_cache_bytes {
        changed.push("store.engine_cache_bytes".to_owned());
        new.store_engine_cache_bytes = running.store_engine_cache_bytes;
    }
    if new.connections != running.connections {
        changed.push("server (connection limits)".to_owned());
        new.connections = running.connections;
    }
    if (new.feed.tail_bytes, new.feed.buffer_bytes)
        != (running.feed.tail_bytes, running.feed.buffer_bytes)
    {
        changed.push("server.feed_tail_bytes/feed_buffer_bytes".to_owned());
        new.feed.tail_bytes = running.feed.tail_bytes;
        new.feed.buffer_bytes = running.feed.buffer_bytes;
    }
    if new.store_cache != running.store_cache {
        changed.push("store.cache".to_owned());
        new.store_cache = running.store_cache;
    }
    if new.runtime != running.runtime {
        changed.push("runtime".to_owned());
        new.runtime = running.runtime.clone();
    }
    if new.plugins.watch != running.plugins.watch || new.plugins.settle != running.plugins.settle {
        changed.push("plugins.watch/settle_ms".to_owned());
        new.plugins.watch = running.plugins.watch;
        new.plugins.settle = running.plugins.settle;
    }
    changed
}

/// Whether two paths name the same file or folder (after resolving links and
/// relative parts, when they exist).
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
