//! Applying one invalidation event (`POST /v1/invalidate`, or a message on
//! the invalidation stream): checked, applied to the record type's caches,
//! and, when it invalidated something, the key to append to the change log
//! (so sidecars and the other nodes drop it too).

use super::Service;
use crate::key::{EntityKey, TenantId};
use crate::readthrough::{Applied, Invalidation, ReadError};
use crate::store::{InvalidatedKey, RecordId};

/// Why an invalidation event does not apply.
#[derive(Debug, thiserror::Error)]
pub enum InvalidationError {
    /// The key breaks the key rules.
    #[error("key {0}")]
    Key(String),
    /// The tenant breaks the tenant rules.
    #[error("{0}")]
    Tenant(String),
    /// The record type is unknown, or not read-through.
    #[error(transparent)]
    RecordType(#[from] ReadError),
}

impl Service {
    /// Applies `event` to the read-through caches; returns what it did and,
    /// when it invalidated, the key for the change log.
    pub fn invalidate(
        &self,
        event: &Invalidation,
    ) -> Result<(Applied, Option<InvalidatedKey>), InvalidationError> {
        let key =
            EntityKey::parse(&event.key).map_err(|e| InvalidationError::Key(e.to_string()))?;
        let tenant = match event.tenant.as_deref() {
            Some(t) => {
                TenantId::parse(t).map_err(|e| InvalidationError::Tenant(format!("tenant {e}")))?
            }
            None => TenantId::default_tenant(),
        };
        self.read_through.check(&event.record_type)?;
        let applied = self.read_through.invalidate(event, &key, &tenant)?;
        let logged = matches!(applied, Applied::Invalidated { .. }).then(|| InvalidatedKey {
            id: RecordId {
                record_type: event.record_type.clone(),
                tenant: tenant.as_str().to_owned(),
                key: event.key.clone(),
            },
            version: event.version,
            occurred_at_ms: event.timestamp,
        });
        Ok((applied, logged))
    }
}
