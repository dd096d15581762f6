//! The read-through path: a consumer's read of one key, answered by the record
//! type's adapter.
//!
//! This is the seam the caches go into: [`ReadThrough::get`] is the only way the
//! API reads a read-through record, so caching, coalescing and flow control wrap
//! this one call without the API noticing.

use std::sync::Arc;

use crate::entity::FetchOutcome;
use crate::key::{EntityKey, TenantId};
use crate::plugins::Registry;
use crate::runtime::FetchError;

/// Why a read produced no record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// No record type of that name is configured.
    #[error("no record type named {0:?}")]
    UnknownRecordType(String),
    /// The record type is ingested, not read-through.
    #[error("record type {0:?} is not a read-through record type")]
    NotReadThrough(String),
    /// The adapter could not produce an answer.
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

/// Reads read-through records.
#[derive(Debug, Clone)]
pub struct ReadThrough {
    registry: Arc<Registry>,
}

impl ReadThrough {
    /// Reads through the adapters in `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }

    /// Reads `key` of `tenant` from record type `record_type`.
    pub async fn get(
        &self,
        record_type: &str,
        key: &EntityKey,
        tenant: &TenantId,
    ) -> Result<FetchOutcome, ReadError> {
        let binding = self
            .registry
            .get(record_type)
            .ok_or_else(|| ReadError::UnknownRecordType(record_type.to_owned()))?;
        let adapter = binding
            .adapter()
            .ok_or_else(|| ReadError::NotReadThrough(record_type.to_owned()))?;
        Ok(adapter
            .fetch(&binding.context, key.as_str(), tenant.as_str())
            .await?)
    }
}
