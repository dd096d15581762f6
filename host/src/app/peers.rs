//! What other nodes sharing the store commit, reaching this node's caches:
//! a task follows the change log from where it stood when the store was
//! opened (before anything could be cached), and hands
//! every change to the read cache of ingested records (which forgets what
//! they changed) and every invalidation to the read-through caches, as if it
//! had been posted here. Only a shared store needs it (the embedded store has
//! one writer: this node, which tells its caches itself).
//!
//! A node hears of another's commit as soon as its store does (a
//! notification, else the poll interval); until then it may serve what it
//! cached before. Changes this node committed come round too: applying them
//! again changes nothing but, for an invalidation without a version, one
//! more fetch.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::Service;
use crate::key::{EntityKey, TenantId};
use crate::readthrough::Invalidation;
use crate::store::{self, Change, ChangeKind};
use crate::tenancy::Realm;

/// Changes read from the log at a time.
const PAGE: usize = 1_000;

/// How long to wait after the log could not be read.
const RETRY: Duration = Duration::from_secs(1);

/// Starts following `realm`'s log from where it stood when opened, for
/// `service`'s caches, on the current tokio runtime; the task ends when the
/// server shuts down or the service goes.
pub(super) fn start(service: &Arc<Service>, realm: Arc<Realm>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!("no async runtime: other nodes' changes will not reach this node's caches");
        return;
    };
    runtime.spawn(follow(Arc::downgrade(service), realm));
}

async fn follow(service: Weak<Service>, realm: Arc<Realm>) {
    let records = realm.stores.records.clone();
    let mut grown = records.subscribe();
    let Some(mut closing) = service.upgrade().map(|s| s.closing()) else {
        return;
    };
    let mut position = realm.log_at_open;
    loop {
        if *closing.borrow() {
            return;
        }
        let reader = records.clone();
        let page = store::blocking(move || reader.changes(position, PAGE)).await;
        let changes = match page {
            Ok(changes) => changes,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the change log to follow other nodes; retrying");
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let Some(service) = service.upgrade() else {
            return;
        };
        if let Some(first) = changes.first()
            && first.seq > position + 1
        {
            tracing::warn!(
                from = position + 1,
                to = first.seq - 1,
                "the change log was trimmed past this node's position; changes other nodes made there may be served stale until their entries expire"
            );
        }
        let Some(last) = changes.last().map(|c| c.seq) else {
            drop(service);
            tokio::select! {
                changed = grown.changed() => if changed.is_err() { return },
                _ = closing.changed() => {}
            }
            continue;
        };
        records.heard(&changes);
        for change in &changes {
            match change.kind {
                ChangeKind::Invalidate => invalidate(&service, change),
                ChangeKind::Erase => service.read_through.drop_tenant(&change.tenant),
                ChangeKind::Upsert { .. } | ChangeKind::Delete => {}
            }
        }
        position = last;
    }
}

/// Applies an invalidation from the log to the read-through caches.
fn invalidate(service: &Service, change: &Change) {
    let (Ok(key), Ok(tenant)) = (
        EntityKey::parse(&change.key),
        TenantId::parse(&change.tenant),
    ) else {
        return;
    };
    let event = Invalidation {
        record_type: change.record_type.clone(),
        key: change.key.clone(),
        tenant: Some(change.tenant.clone()),
        // The log keeps 0 for an invalidation that named no version.
        version: (change.version > 0).then_some(change.version),
        timestamp: Some(change.occurred_at_ms),
    };
    if let Err(e) = service.read_through.invalidate(&event, &key, &tenant) {
        tracing::debug!(error = %e, record_type = %change.record_type, "an invalidation from the log does not apply here");
    }
}
