//! Where a reader fetches what its caches miss: the record type's adapter
//! plugin on a droid host, the upstream droid in a sidecar. The read path
//! (caches, stale windows, coalescing, limits, invalidation) is the same for
//! both; only this differs.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::cache::Producer;
use crate::entity::FetchOutcome;
use crate::failure::{CallError, FetchError};
use crate::key::{EntityKey, TenantId};
use crate::plugins::Plugin;
use crate::runtime::PluginContext;

/// What one fetch produced.
pub struct Fetched {
    /// The record, its absence, or the failure.
    pub result: Result<FetchOutcome, FetchError>,
    /// Who produced it (the plugin version), for `Droid-Plugin-Version` and
    /// for dropping a rolled-back version's entries.
    pub producer: Producer,
    /// How long the answer may be considered fresh, when the origin says so
    /// (an upstream droid's `max-age`); the cache's TTL caps it.
    pub fresh_for: Option<Duration>,
    /// Whether the answer may still be cached when it arrives: false once the
    /// plugin version that produced it has been rolled back.
    pub still_current: Box<dyn Fn() -> bool + Send>,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("result", &self.result)
            .field("producer", &self.producer)
            .field("fresh_for", &self.fresh_for)
            .finish_non_exhaustive()
    }
}

/// A source of records for a reader's misses.
pub trait Origin: Send + Sync + 'static {
    /// Fetches `key` of `tenant`. Runs as its own task, so it must own what it
    /// needs.
    fn fetch(&self, key: EntityKey, tenant: TenantId) -> BoxFuture<'static, Fetched>;
}

/// A record type's adapter plugin: the host's origin.
pub(super) struct PluginOrigin {
    pub plugin: Arc<Plugin>,
    pub context: Arc<PluginContext>,
    /// The realm of a tenant, when the record type has base URLs per realm.
    pub realm_of: Option<super::RealmOf>,
}

impl Origin for PluginOrigin {
    fn fetch(&self, key: EntityKey, tenant: TenantId) -> BoxFuture<'static, Fetched> {
        let plugin = self.plugin.clone();
        // A tenant's miss reaches its provider in the tenant's realm.
        let realm = self.realm_of.as_ref().and_then(|of| of(tenant.as_str()));
        let context = PluginContext::in_realm(&self.context, realm.as_deref());
        async move {
            // The version is chosen now and kept for the whole call: a swap
            // meanwhile affects later calls only.
            let version = plugin.select(tenant.as_str());
            let result = match version.adapter() {
                Some(adapter) => adapter.fetch(&context, key.as_str(), tenant.as_str()).await,
                None => Err(FetchError::Call(CallError::InvalidResult {
                    reason: format!("plugin version {} is not an adapter", version.label()),
                })),
            };
            let producer = Producer::new(version.id, version.label());
            Fetched {
                result,
                producer,
                fresh_for: None,
                still_current: Box::new(move || !version.is_withdrawn()),
            }
        }
        .boxed()
    }
}
