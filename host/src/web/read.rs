//! What a read names, checked the same way on droid and on a sidecar: the
//! tenant of its query, its key, a key with a `/` in it.

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use serde::Deserialize;

use super::error::{ApiError, ErrorCode};
use crate::key::TenantId;

/// The query of a read: the tenant, if not the default one.
#[derive(Debug, Deserialize)]
pub struct ReadQuery {
    tenant: Option<String>,
}

/// A key with a raw `/` in it never reaches the one-segment route; say so instead
/// of answering "no route".
pub async fn key_with_slash() -> ApiError {
    invalid_key("key contains '/', which is not allowed".to_owned())
}

/// A `400 invalid_key` saying why.
pub fn invalid_key(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidKey, message)
}

/// The tenant a request names, or the default tenant.
pub fn tenant(query: Result<Query<ReadQuery>, QueryRejection>) -> Result<TenantId, ApiError> {
    let invalid = |message: String| ApiError::new(ErrorCode::InvalidTenant, message);
    let Query(query) = query.map_err(|e| invalid(format!("invalid query string: {e}")))?;
    parse_tenant(query.tenant.as_deref()).map_err(invalid)
}

/// Checks an optional tenant id; absent means the default tenant.
pub fn parse_tenant(tenant: Option<&str>) -> Result<TenantId, String> {
    match tenant {
        Some(t) => TenantId::parse(t).map_err(|e| format!("tenant {e}")),
        None => Ok(TenantId::default_tenant()),
    }
}
