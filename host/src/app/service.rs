//! What requests need from a running droid: the configuration and bindings
//! in force (swapped whole by the control plane, never edited in place, so a
//! request sees one configuration from start to end), the read path, the
//! store, ingestion's per-source state, token checking, request metrics and
//! the change feed's shared state.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::ingest::{RateLimits, SourceHealth, SourceSlots};
use crate::locks::lock;
use crate::plugins::Registry;
use crate::readthrough::ReadThrough;
use crate::store::Stores;
use crate::tenancy::Realms;
use crate::web::RequestMetrics;

/// How often the change log is trimmed to its retention.
const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// The state every request shares.
#[derive(Debug)]
pub struct Service {
    pub(super) live: ArcSwap<Live>,
    /// The realms, their stores (where ingested records live) and the
    /// tenant directory.
    pub realms: Arc<Realms>,
    /// Continuous backups of the realms served, when `[backup]` says so.
    pub backups: Option<Arc<crate::backup::Backups>>,
    /// Runs point-in-time restores (set once the service is built).
    pub recovery: std::sync::OnceLock<Arc<crate::recovery::Engine>>,
    /// Wakes the tenancy thread when a migration step was asked for.
    pub(super) tenancy_waker: std::sync::OnceLock<crate::tenancy::worker::Waker>,
    /// The read-through path and its caches.
    pub read_through: ReadThrough,
    /// Each ingestion source's agreed rate.
    pub rate_limits: RateLimits,
    /// Each ingestion source's requests being transformed.
    pub source_slots: SourceSlots,
    /// Each ingestion source's recent failures against its thresholds.
    pub source_health: SourceHealth,
    /// Checks callers' tokens; `None` in `--insecure-no-auth` mode.
    pub(super) authenticator: Option<Authenticator>,
    /// Request counters and latency histograms.
    pub request_metrics: RequestMetrics,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// The change feed's newest changes, encoded once for every
    /// subscriber, and the memory all subscribers may hold.
    pub feed: crate::feed::Shared,
    /// Set when the server shuts down: long-lived streams end.
    closing: tokio::sync::watch::Sender<bool>,
    last_trim: Mutex<Instant>,
}

/// The configuration in force and the bindings built from it.
#[derive(Debug)]
pub(super) struct Live {
    pub(super) config: Arc<Config>,
    pub(super) registry: Arc<Registry>,
}

impl Service {
    /// The service for `config` and its `registry`.
    pub(super) fn new(
        config: Config,
        registry: Arc<Registry>,
        realms: Realms,
        backups: Option<Arc<crate::backup::Backups>>,
        authenticator: Option<Authenticator>,
        metrics: PrometheusHandle,
    ) -> Self {
        let realms = Arc::new(realms);
        let directory = Arc::downgrade(&realms);
        let realm_of: crate::readthrough::RealmOf = Arc::new(move |tenant: &str| {
            let realms = directory.upgrade()?;
            realms
                .directory
                .declared()
                .then(|| realms.directory.realm_of(tenant))
        });
        Self {
            feed: crate::feed::Shared::new(&config.feed),
            read_through: ReadThrough::new(
                &registry,
                Arc::new(crate::failure::Journal::new(config.error_journal_bytes)),
                realm_of,
            ),
            request_metrics: RequestMetrics::new(config.record_types.keys().map(String::as_str)),
            authenticator,
            live: ArcSwap::from_pointee(Live {
                config: Arc::new(config),
                registry,
            }),
            realms,
            backups,
            recovery: std::sync::OnceLock::new(),
            tenancy_waker: std::sync::OnceLock::new(),
            rate_limits: RateLimits::default(),
            source_slots: SourceSlots::default(),
            source_health: SourceHealth::default(),
            metrics,
            closing: tokio::sync::watch::Sender::new(false),
            last_trim: Mutex::new(Instant::now()),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.live.load().config.clone()
    }

    /// The record types' bindings in force.
    pub fn registry(&self) -> Arc<Registry> {
        self.live.load().registry.clone()
    }

    /// The token checker; `None` when authentication is off (`--insecure-no-auth`).
    pub fn authenticator(&self) -> Option<&Authenticator> {
        self.authenticator.as_ref()
    }

    /// Whether the server is shutting down, now and when it starts to.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Tells long-lived streams to end: the server is shutting down.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// The store of this node's home realm: where what belongs to no one
    /// tenant goes (see [`Realms::home`]).
    pub fn home_store(&self) -> &Stores {
        self.realms.home_store()
    }

    /// Tells the tenancy thread a migration step was asked for.
    pub fn wake_tenancy(&self) {
        if let Some(waker) = self.tenancy_waker.get() {
            waker.wake();
        }
    }

    /// Trims every realm's change log to its configured retention, at most
    /// once every [`TRIM_INTERVAL`].
    pub(super) fn trim_change_log(&self) {
        let mut last = lock(&self.last_trim);
        if last.elapsed() < TRIM_INTERVAL {
            return;
        }
        *last = Instant::now();
        for realm in self.realms.served() {
            let mut keep = self.config().change_log_retention;
            // Changes not yet backed up stay, whatever the retention.
            if let Some(shipped) = self.backups.as_ref().and_then(|b| b.shipped(&realm.name)) {
                match realm.stores.records.last_seq() {
                    Ok(last) => keep = keep.max(last.saturating_sub(shipped)),
                    Err(_) => continue,
                }
            }
            match realm.stores.records.trim_changes(keep) {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, realm = %realm.name, "change log trimmed"),
                Err(e) => {
                    tracing::warn!(error = %e, realm = %realm.name, "the change log could not be trimmed")
                }
            }
        }
    }

    /// Aborts snapshot batches past their expiry, in every realm served:
    /// they leave no trace.
    pub(super) fn expire_snapshots(&self) {
        for realm in self.realms.served() {
            expire_snapshots(&realm.stores);
        }
    }
}

/// Aborts `store`'s snapshot batches past their expiry.
fn expire_snapshots(store: &Stores) {
    let now = crate::store::now_ms();
    let expired: Vec<_> = match store.snapshots.snapshots() {
        Ok(all) => all.into_iter().filter(|s| s.expires_at_ms < now).collect(),
        Err(e) => {
            tracing::error!(error = %e, "cannot list snapshot batches");
            return;
        }
    };
    for snapshot in expired {
        match store.snapshots.abort_snapshot(&snapshot.id) {
            Ok(_) => {
                tracing::warn!(source = %snapshot.source, snapshot = %snapshot.id, staged = snapshot.staged, "snapshot batch expired uncommitted; dropped")
            }
            Err(e) => {
                tracing::error!(error = %e, snapshot = %snapshot.id, "cannot drop an expired snapshot batch")
            }
        }
    }
}
