//! `GET /v1/entity/{record_type}/{key}`: one record, read through its adapter.
//!
//! A found record is answered with its JSON body as the provider's store returned
//! it; everything else is an [`ApiError`] with a stable code. `HEAD` is answered by
//! the same handler (axum drops the body).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ErrorCode};
use crate::app::App;
use crate::entity::{FetchOutcome, PluginFailure};
use crate::key::{EntityKey, TenantId};
use crate::metrics::{HTTP_REQUEST_DURATION, HTTP_REQUESTS};
use crate::readthrough::ReadError;
use crate::runtime::{CallError, FetchError};

#[derive(Debug, Deserialize)]
pub(super) struct ReadQuery {
    tenant: Option<String>,
}

pub(super) async fn get_entity(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Response {
    let started = Instant::now();
    let (record_type, result) = match parse(path, query) {
        Ok((record_type, key, tenant)) => {
            let result = read(&app, &record_type, &key, &tenant).await;
            (record_type, result)
        }
        Err((record_type, e)) => (record_type, Err(e)),
    };
    // Unknown names are folded into one label so a scan of random names cannot
    // blow up the metric's cardinality.
    let label = if app.registry.get(&record_type).is_some() {
        record_type
    } else {
        "(unknown)".to_owned()
    };
    let outcome = match &result {
        Ok(_) => "found",
        Err(e) if e.code == ErrorCode::NotFound => "not_found",
        Err(e) => e.code.as_str(),
    };
    let labels = [("record_type", label), ("outcome", outcome.to_owned())];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION, &labels).record(started.elapsed().as_secs_f64());
    match result {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// A key with a raw `/` in it never reaches the one-segment route; say so instead
/// of answering "no route".
pub(super) async fn key_with_slash() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidKey,
        "key contains '/', which is not allowed",
    )
}

type Parsed = (String, EntityKey, TenantId);

fn parse(
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<Parsed, (String, ApiError)> {
    let Path((record_type, key)) = path.map_err(|_| {
        (
            String::new(),
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidKey,
                "the path is not valid UTF-8 once percent-decoded",
            ),
        )
    })?;
    let key = EntityKey::parse(&key).map_err(|e| {
        (
            record_type.clone(),
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidKey,
                format!("key {e}"),
            ),
        )
    })?;
    let tenant_error = |message: String| {
        (
            record_type.clone(),
            ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidTenant, message),
        )
    };
    let Query(query) = query.map_err(|e| tenant_error(format!("invalid query string: {e}")))?;
    let tenant = match query.tenant {
        Some(t) => TenantId::parse(&t).map_err(|e| tenant_error(format!("tenant {e}")))?,
        None => TenantId::default_tenant(),
    };
    Ok((record_type, key, tenant))
}

async fn read(
    app: &App,
    record_type: &str,
    key: &EntityKey,
    tenant: &TenantId,
) -> Result<Response, ApiError> {
    match app.read_through.get(record_type, key, tenant).await {
        Ok(FetchOutcome::Found(entity)) => {
            Ok(([(header::CONTENT_TYPE, "application/json")], entity.body).into_response())
        }
        Ok(FetchOutcome::NotFound) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no {record_type} record with key {:?}", key.as_str()),
        )),
        Err(e) => Err(read_error(record_type, e)),
    }
}

/// Maps every way a read can fail to its status and code.
fn read_error(record_type: &str, e: ReadError) -> ApiError {
    use StatusCode as S;
    let message = e.to_string();
    let (status, code) = match &e {
        ReadError::UnknownRecordType(_) => (S::NOT_FOUND, ErrorCode::UnknownRecordType),
        ReadError::NotReadThrough(_) => (S::NOT_FOUND, ErrorCode::NotReadThrough),
        ReadError::Fetch(FetchError::EgressDenied(_)) => (S::BAD_GATEWAY, ErrorCode::EgressDenied),
        ReadError::Fetch(FetchError::Plugin(failure)) => match failure {
            PluginFailure::InvalidInput(_) => (S::BAD_REQUEST, ErrorCode::InvalidKey),
            PluginFailure::UpstreamStatus { .. } => (S::BAD_GATEWAY, ErrorCode::BackingStoreError),
            PluginFailure::UpstreamUnavailable(_) => {
                (S::BAD_GATEWAY, ErrorCode::BackingStoreUnavailable)
            }
            PluginFailure::UpstreamTimeout(_) => {
                (S::GATEWAY_TIMEOUT, ErrorCode::BackingStoreTimeout)
            }
            PluginFailure::Internal(_) => (S::BAD_GATEWAY, ErrorCode::PluginError),
        },
        ReadError::Fetch(FetchError::Call(call)) => match call {
            CallError::Timeout { .. } => (S::GATEWAY_TIMEOUT, ErrorCode::PluginTimeout),
            CallError::MemoryExhausted { .. } => (S::BAD_GATEWAY, ErrorCode::PluginMemoryExhausted),
            CallError::Panic { .. } | CallError::Trap { .. } => {
                (S::BAD_GATEWAY, ErrorCode::PluginCrashed)
            }
            CallError::InvalidResult { .. } => (S::BAD_GATEWAY, ErrorCode::PluginInvalidResult),
            CallError::Capacity => {
                return ApiError::new(S::SERVICE_UNAVAILABLE, ErrorCode::PluginCapacity, message)
                    .retry_after(1);
            }
        },
    };
    let message = match &e {
        ReadError::Fetch(_) => format!("record type {record_type}: {message}"),
        _ => message,
    };
    ApiError::new(status, code, message)
}
