//! Sidecar mode (`droid sidecar`): droid's read API next to the consumers,
//! answered from memory.
//!
//! A sidecar runs the same read path as droid ([`Reader`]: caches, stale
//! windows, coalescing, in-flight limits), with the upstream droid as its
//! origin ([`upstream`]). It follows the droid's change feed ([`follow`]) so
//! what it holds stays current: an upsert refreshes a held record in place, a
//! delete turns it into a not-found answer, an invalidation drops it. Keys
//! nobody asked for are not added. Its progress ([`sync`]) decides whether
//! answers count as current; while the droid is unreachable the sidecar keeps
//! answering from what it holds, marked stale.

pub mod api;
pub mod config;
pub mod follow;
pub mod replica;
pub mod sync;
pub mod upstream;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::readthrough::Reader;
use crate::web::RequestMetrics;
use config::SidecarConfig;
use follow::Follower;
use replica::Replicas;
use sync::SyncState;
use upstream::{RecordSource, Upstream};

/// How often caches and histograms are tidied, off the request path.
const UPKEEP_INTERVAL: Duration = Duration::from_millis(250);

/// A sidecar's state.
#[derive(Debug)]
pub struct Sidecar {
    config: SidecarConfig,
    upstream: Arc<Upstream>,
    readers: Arc<HashMap<String, Arc<Reader>>>,
    sync: Arc<SyncState>,
    replicas: Arc<Replicas>,
    request_metrics: RequestMetrics,
    metrics: PrometheusHandle,
    closing: watch::Sender<bool>,
}

/// Why a sidecar cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot set up the client for the upstream droid: {0}")]
    Client(#[from] reqwest::Error),
}

impl Sidecar {
    /// A sidecar for `config`, with empty caches, not yet following.
    pub fn new(config: SidecarConfig) -> Result<Self, SidecarError> {
        // First: metric handles made before the recorder exists record nothing.
        let metrics = crate::metrics::install();
        crate::tls::install_default_provider();
        let upstream = Arc::new(Upstream::new(&config.upstream)?);
        let readers = config
            .record_types
            .iter()
            .map(|(name, rt)| {
                let origin = RecordSource {
                    record_type: Arc::from(name.as_str()),
                    upstream: upstream.clone(),
                };
                // A sidecar has no admin API: failures' details go to its log only.
                let journal = Arc::new(crate::failure::Journal::new(0));
                let reader =
                    Reader::new(name, rt.cache, rt.max_in_flight, Arc::new(origin), journal);
                (name.clone(), Arc::new(reader))
            })
            .collect::<HashMap<_, _>>();
        let request_metrics = RequestMetrics::new(readers.keys().map(String::as_str));
        let replicas = Replicas::new(
            config
                .record_types
                .iter()
                .map(|(name, rt)| (name.as_str(), rt.replicate)),
        );
        Ok(Self {
            sync: Arc::new(SyncState::new(config.feed.sync_timeout)),
            replicas: Arc::new(replicas),
            upstream,
            readers: Arc::new(readers),
            request_metrics,
            metrics,
            closing: watch::Sender::new(false),
            config,
        })
    }

    /// Its settings.
    pub fn config(&self) -> &SidecarConfig {
        &self.config
    }

    /// The base URL of the droid node it uses now.
    pub fn upstream_base(&self) -> &str {
        self.upstream.base()
    }

    /// Its progress following the droid.
    pub fn sync(&self) -> &SyncState {
        &self.sync
    }

    /// Its replicated record types' loads.
    pub fn replicas(&self) -> &Replicas {
        &self.replicas
    }

    /// The reader of `record_type`, or the error for a record type this
    /// sidecar does not serve.
    fn reader(&self, record_type: &str) -> Result<&Arc<Reader>, crate::web::ApiError> {
        self.readers.get(record_type).ok_or_else(|| {
            crate::web::ApiError::new(
                crate::web::ErrorCode::UnknownRecordType,
                format!("this sidecar serves no record type named {record_type:?}"),
            )
        })
    }

    fn publish_gauges(&self) {
        self.sync.publish_gauges();
        for reader in self.readers.values() {
            reader.publish_gauges();
        }
    }

    /// Starts following the change feed and the upkeep thread.
    fn start_background(self: &Arc<Self>) {
        let follower = Follower {
            upstream: self.upstream.clone(),
            readers: self.readers.clone(),
            sync: self.sync.clone(),
            replicas: self.replicas.clone(),
            config: self.config.feed,
        };
        tokio::spawn(follower.run(self.closing.subscribe()));
        let sidecar = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("sidecar-upkeep".into())
            .spawn(move || {
                while let Some(sidecar) = sidecar.upgrade() {
                    if *sidecar.closing.borrow() {
                        break;
                    }
                    sidecar.metrics.run_upkeep();
                    for reader in sidecar.readers.values() {
                        reader.run_pending_tasks();
                    }
                    sidecar.sync.publish_gauges();
                    drop(sidecar);
                    std::thread::sleep(UPKEEP_INTERVAL);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the upkeep thread; caches tidy themselves on use");
        }
    }
}

/// Serves `sidecar` on `listener` and follows its droid, until `shutdown`.
pub async fn run(
    sidecar: Arc<Sidecar>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    sidecar.start_background();
    let router = api::router(sidecar.clone());
    let closing = sidecar.closing.clone();
    let shutdown = async move {
        shutdown.await;
        closing.send_replace(true);
    };
    let limits = sidecar.config.connections;
    crate::server::serve(listener, router, limits, "sidecar", shutdown).await
}
