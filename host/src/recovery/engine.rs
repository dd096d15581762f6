//! What runs recovery operations on a node: the realms and backups they
//! work on, this process's worker id, and how operations are kept (JSON at
//! a revision, in the store every node shares, so two nodes never move one
//! on from the same state).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::RecoveryError;
use crate::backup::Backups;
use crate::tenancy::Realms;

/// Runs restores and erasures on this node.
pub struct Engine {
    /// The realms and the directory.
    pub realms: Arc<Realms>,
    /// The backups, if taken.
    pub backups: Option<Arc<Backups>>,
    /// This node process, as a worker.
    pub worker: String,
    /// How often nodes read the directory again.
    pub refresh: Duration,
    /// Records a restore writes per transaction.
    pub batch: usize,
    /// How long an erasure proposal waits for its approval.
    pub erase_approval_window: Duration,
    /// The record types configured now.
    pub record_types: Box<dyn Fn() -> Vec<String> + Send + Sync>,
    /// Drops everything this node's read-through caches hold of a tenant.
    pub drop_cached: Box<dyn Fn(&str) + Send + Sync>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("worker", &self.worker)
            .finish()
    }
}

/// What every recorded operation says first.
#[derive(serde::Deserialize)]
struct Kind {
    kind: String,
}

impl Engine {
    /// Every operation of `kind` recorded, with its revision.
    pub(super) fn operations<T: DeserializeOwned>(
        &self,
        kind: &str,
    ) -> Result<Vec<(T, u64)>, RecoveryError> {
        let recovery = self.realms.directory.recovery();
        Ok(recovery
            .operations()?
            .into_iter()
            .filter(|op| serde_json::from_str::<Kind>(&op.body).is_ok_and(|k| k.kind == kind))
            .filter_map(|op| match serde_json::from_str::<T>(&op.body) {
                Ok(found) => Some((found, op.revision)),
                Err(e) => {
                    tracing::error!(operation = %op.id, error = %e, "a recorded operation does not decode; it is left alone");
                    None
                }
            })
            .collect())
    }

    /// Records operation `id` as `body` at revision `expected`, and takes
    /// it into this node's directory at once; its new revision. Another
    /// node moving it on meanwhile (it took over a silent worker) stops
    /// this one.
    pub(super) fn save_operation<T: Serialize>(
        &self,
        id: &str,
        body: &T,
        expected: u64,
    ) -> Result<u64, RecoveryError> {
        let body = serde_json::to_string(body).expect("an operation encodes");
        let directory = &self.realms.directory;
        let written = directory.recovery().put_operation(id, &body, expected)?;
        match written {
            // What this node refuses changes at once; other nodes read it
            // within a refresh.
            Some(_) => directory.hold_operation(id, &body),
            None => directory.reload()?,
        }
        written.ok_or_else(|| {
            RecoveryError::State(format!(
                "{id} was moved on by another node meanwhile; this one stops"
            ))
        })
    }

    /// Refuses `tenant` when a migration or another operation holds its
    /// writes off (as the directory last read says).
    pub(super) fn not_held(&self, tenant: &str) -> Result<(), RecoveryError> {
        match self.realms.directory.held_by(tenant) {
            None => Ok(()),
            Some(held) if held.kind == crate::tenancy::Held::MIGRATION => {
                Err(RecoveryError::Migrating {
                    tenant: tenant.to_owned(),
                    migration: held.id,
                })
            }
            Some(held) => Err(RecoveryError::Held {
                tenant: tenant.to_owned(),
                kind: held.kind,
                id: held.id,
            }),
        }
    }

    /// Waits until every node has read the directory since an operation
    /// started holding its tenants off: two refresh intervals.
    pub(super) fn wait_for_the_hold(&self) {
        std::thread::sleep(self.refresh * 2);
    }
}
