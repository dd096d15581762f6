//! Everything a running droid holds, built from a validated configuration, and
//! the changes it takes while running: configuration reloads, new plugin files,
//! rollouts and rollbacks.
//!
//! What requests read (the configuration and the record types' bindings) is
//! swapped whole, never edited in place: a request sees one configuration from
//! start to end. Changes are serialised by one lock, off the request path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

use crate::auth::Authenticator;
use crate::config::{Config, ConfigError, Share, StoreCache};
use crate::locks::lock;
use crate::metrics::CONFIG_RELOADS;
use crate::plugins::{
    ControlError, FileOutcome, Plugins, Registry, RegistryError, RolledBack, TrustError, Version,
    watch,
};
use crate::readthrough::ReadThrough;
use crate::runtime::{Runtime, RuntimeError};
use crate::store::{Cached, Embedded, Store, StoreError};
use crate::web::RequestMetrics;

/// How often the upkeep thread folds histogram samples into their buckets, runs
/// the caches' pending maintenance and judges running rollouts. Often enough
/// that neither piles up and then stalls a request thread that happens to
/// trigger it, and that a bad rollout is caught within a fraction of a second.
const UPKEEP_INTERVAL: Duration = Duration::from_millis(250);

/// How often the change log is trimmed to its retention.
const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// The service's state, shared by every request.
#[derive(Debug)]
pub struct App {
    /// The WebAssembly runtime.
    pub runtime: Arc<Runtime>,
    /// Every plugin and its versions.
    pub plugins: Arc<Plugins>,
    /// Where ingested records live.
    pub store: Arc<dyn Store>,
    /// Each ingestion source's agreed rate.
    pub rate_limits: crate::ingest::RateLimits,
    /// Each ingestion source's requests being transformed.
    pub source_slots: crate::ingest::SourceSlots,
    /// Each ingestion source's recent failures against its thresholds.
    pub source_health: crate::ingest::SourceHealth,
    live: ArcSwap<Live>,
    /// The read-through path and its caches.
    pub read_through: ReadThrough,
    /// Checks callers' tokens; `None` in `--insecure-no-auth` mode.
    authenticator: Option<Authenticator>,
    /// Request counters and latency histograms.
    pub request_metrics: RequestMetrics,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    status: Mutex<ConfigStatus>,
    /// Serialises changes (reloads, file events, rollouts).
    changing: Mutex<()>,
    watcher: Mutex<Option<watch::Watcher>>,
    background: std::sync::Once,
    last_trim: Mutex<std::time::Instant>,
    /// Set when the server shuts down: long-lived streams end.
    closing: tokio::sync::watch::Sender<bool>,
    /// The change feed's newest changes, encoded once for every
    /// subscriber, and the memory all subscribers may hold.
    pub feed: crate::feed::Shared,
}

/// The configuration in force and the bindings built from it.
#[derive(Debug)]
struct Live {
    config: Arc<Config>,
    registry: Arc<Registry>,
}

/// How the configuration file has fared since start, for the admin API.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct ReloadFailure {
    /// When, in seconds since the Unix epoch.
    pub at: u64,
    /// Why, naming the file and the field or plugin.
    pub reason: String,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, Serialize)]
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

/// Why the service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The runtime could not start.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Plugins failed to load.
    #[error(transparent)]
    Plugins(#[from] RegistryError),
    /// A trusted key could not be loaded.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Neither authentication nor the explicit insecure mode is configured.
    #[error(
        "{0}: no [auth] section: configure service authentication (see the README), or pass --insecure-no-auth for local play"
    )]
    NoAuth(String),
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
        let plugins = Arc::new(Plugins::new(
            runtime.clone(),
            config.plugin_dir.clone(),
            &config.plugins,
        )?);
        let authenticator = match (&config.auth, config.insecure_no_auth) {
            (_, true) => {
                tracing::warn!(
                    "--insecure-no-auth: the API is unauthenticated; anyone who can reach it may read, publish, invalidate and administer"
                );
                None
            }
            (Some(settings), false) => {
                let authenticator = Authenticator::new(settings.clone());
                authenticator.set_granted_issuers(crate::access::granted_issuers(&config));
                Some(authenticator)
            }
            (None, false) => return Err(StartError::NoAuth(config.source.display().to_string())),
        };
        let registry = Arc::new(Registry::bind(&plugins, &config, None)?);
        let embedded =
            Embedded::open_with_cache(&config.store_path, config.store_engine_cache_bytes)?;
        let store: Arc<dyn Store> = match config.store_cache {
            StoreCache {
                capacity_bytes: 0, ..
            } => Arc::new(embedded),
            StoreCache {
                capacity_bytes,
                ttl,
            } => Arc::new(Cached::new(embedded, capacity_bytes, ttl)),
        };
        Ok(Self {
            feed: crate::feed::Shared::new(&config.feed),
            read_through: ReadThrough::new(&registry),
            request_metrics: RequestMetrics::new(config.record_types.keys().map(String::as_str)),
            authenticator,
            status: Mutex::new(ConfigStatus {
                file: config.source.clone(),
                loaded_at: unix_now(),
                reloads: 0,
                last_error: None,
                restart_required: Vec::new(),
            }),
            live: ArcSwap::from_pointee(Live {
                config: Arc::new(config),
                registry,
            }),
            runtime,
            plugins,
            store,
            rate_limits: Default::default(),
            source_slots: Default::default(),
            source_health: Default::default(),
            metrics,
            changing: Mutex::new(()),
            watcher: Mutex::new(None),
            background: std::sync::Once::new(),
            last_trim: Mutex::new(std::time::Instant::now()),
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Whether the server is shutting down, now and when it starts to.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Tells long-lived streams to end: the server is shutting down.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// The change log's last sequence number, now and as it grows.
    pub fn change_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.subscribe()
    }

    /// Trims the change log to its configured retention, at most once every
    /// [`TRIM_INTERVAL`].
    fn trim_change_log(&self) {
        let mut last = lock(&self.last_trim);
        if last.elapsed() < TRIM_INTERVAL {
            return;
        }
        *last = std::time::Instant::now();
        match self.store.trim_changes(self.config().change_log_retention) {
            Ok(0) => {}
            Ok(removed) => tracing::debug!(removed, "change log trimmed"),
            Err(e) => tracing::warn!(error = %e, "the change log could not be trimmed"),
        }
    }

    /// The token checker; `None` when authentication is off (`--insecure-no-auth`).
    pub fn authenticator(&self) -> Option<&Authenticator> {
        self.authenticator.as_ref()
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.live.load().config.clone()
    }

    /// The record types' bindings in force.
    pub fn registry(&self) -> Arc<Registry> {
        self.live.load().registry.clone()
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
        let old = self.live.load_full();
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
        self.request_metrics
            .register(config.record_types.keys().map(String::as_str));
        self.read_through.rebind(&registry);
        if let Some(authenticator) = &self.authenticator {
            authenticator.set_granted_issuers(crate::access::granted_issuers(&config));
        }
        self.live.store(Arc::new(Live {
            config: Arc::new(config),
            registry,
        }));
        self.retire_unused();
        Ok(report)
    }

    /// Handles a settled change to `path`: the configuration file or a plugin
    /// file. Blocking (it may compile a plugin).
    pub fn file_changed(&self, path: &Path) {
        let config = self.config();
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
        self.read_through.drop_produced_by(done.version.id);
        Ok(done)
    }

    /// Rolls back every candidate doing worse than its current version. Takes
    /// only each plugin's own lock, never the change lock: the upkeep thread
    /// calls it and must not wait behind a plugin being compiled.
    pub fn check_rollouts(&self) -> Vec<RolledBack> {
        let done = self.plugins.check_rollouts();
        for rolled in &done {
            self.read_through.drop_produced_by(rolled.version.id);
        }
        done
    }

    /// Aborts snapshot batches past their expiry: they leave no trace.
    pub fn expire_snapshots(&self) {
        let now = crate::store::now_ms();
        let expired: Vec<_> = match self.store.snapshots() {
            Ok(all) => all.into_iter().filter(|s| s.expires_at_ms < now).collect(),
            Err(e) => {
                tracing::error!(error = %e, "cannot list snapshot batches");
                return;
            }
        };
        for snapshot in expired {
            match self.store.abort_snapshot(&snapshot.id) {
                Ok(_) => {
                    tracing::warn!(source = %snapshot.source, snapshot = %snapshot.id, staged = snapshot.staged, "snapshot batch expired uncommitted; dropped")
                }
                Err(e) => {
                    tracing::error!(error = %e, snapshot = %snapshot.id, "cannot drop an expired snapshot batch")
                }
            }
        }
    }

    fn retire_unused(&self) {
        let registry = self.registry();
        let used: BTreeSet<&str> = registry.iter().map(|(_, b)| b.plugin.name()).collect();
        self.plugins.retire_unused(&used);
    }

    /// Background work a serving app needs, on threads of its own so it never
    /// holds up a request: folding histogram samples (so memory stays flat when
    /// nobody scrapes `/metrics`), the caches' bookkeeping of reads and expiries
    /// (which would otherwise run inline in whichever read finds its buffers
    /// full), judging rollouts, and watching the plugin folder and the
    /// configuration file when `plugins.watch` is on. Stops when the app is
    /// dropped. Calls after the first do nothing.
    pub fn spawn_background(self: &Arc<Self>) {
        self.background.call_once(|| self.start_background());
    }

    fn start_background(self: &Arc<Self>) {
        let app = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("droid-upkeep".into())
            .spawn(move || {
                while let Some(app) = app.upgrade() {
                    app.metrics.run_upkeep();
                    app.read_through.run_pending_tasks();
                    app.feed.publish_gauges();
                    app.check_rollouts();
                    app.expire_snapshots();
                    app.trim_change_log();
                    drop(app);
                    std::thread::sleep(UPKEEP_INTERVAL);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the upkeep thread; maintenance will run inline");
        }
        self.start_watching();
    }

    fn start_watching(self: &Arc<Self>) {
        let config = self.config();
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
                // Files that changed between loading and watching were missed:
                // look at them once now (known contents cost a hash each).
                let _changing = lock(&self.changing);
                self.plugins.rescan();
            }
            Err(e) => {
                tracing::error!(error = %e, dirs = ?dirs, "cannot watch for changes; use POST /v1/admin/reload after changing files")
            }
        }
    }
}

impl App {
    /// Handles the watcher's settled changes, one at a time, until the
    /// watcher or the app goes away. Nothing a file makes loading do may end
    /// it: a panic is logged and the next change is handled as usual.
    fn start_loader(self: &Arc<Self>, changed: std::sync::mpsc::Receiver<PathBuf>) {
        let app = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("droid-loader".into())
            .spawn(move || {
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
    if new.store_path != running.store_path {
        changed.push("store.path".to_owned());
        new.store_path = running.store_path.clone();
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
