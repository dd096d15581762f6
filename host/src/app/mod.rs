//! Everything a running droid holds, built from a validated configuration,
//! split by job: [`Service`] is what requests need; [`Control`] takes the
//! changes a running droid accepts (reloads, plugin files, rollouts), one at
//! a time; [`upkeep`] is the background loop. The router's state is the
//! [`App`], which holds the two.

mod control;
mod fleet;
mod invalidation;
mod peers;
mod service;
mod streams;
mod upkeep;

use std::sync::Arc;

pub use control::{ConfigStatus, Control, ReloadError, ReloadFailure, ReloadReport};
pub use fleet::{NodePlugin, NodeStatus, NodeVersion, PushError, Pushed};
pub use invalidation::InvalidationError;
pub use service::Service;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::plugins::{Plugins, Registry, RegistryError, TrustError};
use crate::runtime::{Runtime, RuntimeError};
use crate::store::StoreError;
use crate::tenancy::Realms;

/// A running droid: what requests need, and its control plane.
#[derive(Debug)]
pub struct App {
    /// What requests need.
    pub service: Arc<Service>,
    /// The changes it takes while running.
    pub control: Arc<Control>,
    /// Its name in the fleet's reports (and as a migration's worker).
    node_name: String,
    background: std::sync::Once,
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
    /// A source's JetStream stream cannot be consumed.
    #[error(transparent)]
    Stream(#[from] streams::StreamError),
    /// Backups are configured and cannot be taken (the master key file, the target).
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
}

impl App {
    /// Starts the runtime, loads every record type's plugin and opens the
    /// store. Compiling plugins is CPU-bound: call this from a blocking
    /// context (or before serving).
    pub fn build(config: Config) -> Result<Self, StartError> {
        let metrics = crate::metrics::install();
        let (plugins, registry) = Self::load_plugins(&config)?;
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
        // Each realm's log end is noted as it opens: other nodes' changes
        // count from there, so what this node caches hears of every later one.
        let realms = Realms::open(&config)?;
        let backups = match &config.backup {
            Some(settings) => Some(Arc::new(crate::backup::Backups::open(settings, &realms)?)),
            None => None,
        };
        let service = Arc::new(Service::new(
            config,
            registry,
            realms,
            backups,
            authenticator,
            metrics,
        ));
        let _ = service.recovery.set(Arc::new(recovery_engine(&service)));
        let control = Arc::new(Control::new(service.clone(), plugins));
        Ok(Self {
            node_name: fleet::node_name(&service),
            service,
            control,
            background: std::sync::Once::new(),
        })
    }

    /// Starts the runtime and loads and binds every record type's plugin, as
    /// [`App::build`] does (and `droid check-config`, which stops there).
    pub fn load_plugins(config: &Config) -> Result<(Arc<Plugins>, Arc<Registry>), StartError> {
        let runtime = Arc::new(Runtime::new(
            &config.runtime,
            Some(config.cache_dir.clone()),
        )?);
        let plugins = Arc::new(Plugins::new(
            runtime,
            config.plugin_dir.clone(),
            &config.plugins,
        )?);
        let registry = Arc::new(Registry::bind(&plugins, config, None)?);
        Ok((plugins, registry))
    }

    /// Connects every source that pulls from NATS JetStream and starts
    /// consuming (on the current tokio runtime). Fails, naming the source's
    /// `stream` field and why, when a server cannot be reached or a stream
    /// does not exist: call it before serving.
    pub async fn start_streams(&self) -> Result<(), StartError> {
        let consumers = streams::connect(&self.service.config()).await?;
        streams::start(&self.service, consumers);
        Ok(())
    }

    /// This node's name in the fleet's reports.
    pub fn node_name(&self) -> String {
        self.node_name.clone()
    }

    /// Starts what a serving app needs in the background: the upkeep loop,
    /// following other nodes' changes when the store is shared (on the
    /// current tokio runtime) and their plugin files and decisions, and
    /// watching the plugin folder and the
    /// configuration file when `plugins.watch` is on. Calls after the first
    /// do nothing.
    pub fn spawn_background(&self) {
        self.background.call_once(|| {
            upkeep::start(&self.service, &self.control);
            // A shared store has other writers, and a fleet to keep up with.
            if let Some(fleet) = &self.service.realms.base.fleet {
                for realm in self.service.realms.served() {
                    peers::start(&self.service, realm.clone());
                }
                fleet::start(&self.service, &self.control, fleet.clone(), &self.node_name);
            }
            if let Some(backups) = &self.service.backups
                && let Err(e) = backups.start(&self.service.realms, self.service.closing())
            {
                tracing::error!(error = %e, "the backup thread cannot start; no backups are taken");
            }
            if let Err(e) = resume_restores(&self.service) {
                tracing::error!(error = %e, "the recovery thread cannot start; silent restores are not resumed");
            }
            let waker = crate::tenancy::worker::start(
                &self.service.realms,
                tenancy_settings(&self.service, &self.node_name),
            );
            let _ = self.service.tenancy_waker.set(waker);
            self.control.start_watching();
        });
    }
}

/// The record types configured, read afresh at every call (reloads change
/// them); none once the service is gone.
fn record_types(service: &Arc<Service>) -> impl Fn() -> Vec<String> + Send + Sync + 'static {
    let weak = Arc::downgrade(service);
    move || {
        weak.upgrade()
            .map(|s| s.config().record_types.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// A worker id unique to this process: two nodes given one name (or a node
/// and its restarted self) must not both take one piece of work; a stopped
/// one's lease runs out instead.
fn worker_id(node: &str) -> String {
    let mut instance = [0u8; 4];
    let _ = getrandom::fill(&mut instance);
    let instance: String = instance.iter().map(|b| format!("{b:02x}")).collect();
    format!("{node}#{}-{instance}", std::process::id())
}

/// The recovery engine of `service`: its realms and backups, and the record
/// types configured (read afresh, as reloads change them).
fn recovery_engine(service: &Arc<Service>) -> crate::recovery::Engine {
    let config = service.config();
    let cached = Arc::downgrade(service);
    crate::recovery::Engine {
        realms: service.realms.clone(),
        backups: service.backups.clone(),
        worker: worker_id(&fleet::node_name(service)),
        refresh: config.tenancy.refresh,
        batch: config.tenancy.restore_batch_records,
        erase_approval_window: config.tenancy.erase_approval_window,
        record_types: Box::new(record_types(service)),
        drop_cached: Box::new(move |tenant| {
            if let Some(service) = cached.upgrade() {
                service.read_through.drop_tenant(tenant);
            }
        }),
    }
}

/// How often the recovery thread looks for restores whose worker went silent.
const RESUME_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Starts the thread that resumes restores another process left (a crash):
/// it ends when the service closes.
fn resume_restores(service: &Arc<Service>) -> std::io::Result<()> {
    let weak = Arc::downgrade(service);
    let mut closing = service.closing();
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("droid-recovery".to_owned())
        .spawn(move || {
            let _context = runtime.enter();
            let mut waited = std::time::Duration::ZERO;
            loop {
                if *closing.borrow_and_update() {
                    return;
                }
                if waited >= RESUME_INTERVAL {
                    waited = std::time::Duration::ZERO;
                    let Some(engine) = weak.upgrade().and_then(|s| s.recovery.get().cloned())
                    else {
                        return;
                    };
                    engine.resume_stale();
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
                waited += std::time::Duration::from_millis(100);
            }
        })
        .map(drop)
}

/// What the tenancy thread needs from the service: this node's name, the
/// record types (read afresh, as reloads change them), the page size and
/// the directory's refresh interval.
fn tenancy_settings(service: &Arc<Service>, node: &str) -> crate::tenancy::worker::Settings {
    let config = service.config();
    crate::tenancy::worker::Settings {
        node: worker_id(node),
        record_types: Box::new(record_types(service)),
        page: config.tenancy.copy_page_records,
        refresh: config.tenancy.refresh,
        closing: service.closing(),
    }
}
