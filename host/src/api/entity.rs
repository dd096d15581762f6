//! `GET /v1/entity/{record_type}/{key}`: one record, from the cache or read
//! through its adapter. `HEAD` is answered by the same handler (axum drops the
//! body).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ErrorCode};
use super::request_metrics::RequestOutcome;
use super::respond;
use crate::access::Caller;
use crate::app::App;
use crate::key::{EntityKey, TenantId};
use crate::readthrough::WhenBusy;

#[derive(Debug, Deserialize)]
pub(super) struct ReadQuery {
    tenant: Option<String>,
}

pub(super) async fn get_entity(
    State(app): State<Arc<App>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ReadQuery>, QueryRejection>,
    request: Request,
) -> Response {
    let headers = request.headers();
    let started = Instant::now();
    let (record_type, key) = match path {
        Ok(Path(parts)) => parts,
        Err(_) => {
            let e = invalid_key("the path is not valid UTF-8 once percent-decoded".to_owned());
            return finish(&app, "", e, started);
        }
    };
    read(&app, &record_type, key, query, headers, started).await
}

/// `GET /v1/entity/{record_type}/batch` reads the key named `batch`; the path is
/// shared with the batch endpoint, which only takes `POST`.
pub(super) async fn get_key_named_batch(
    State(app): State<Arc<App>>,
    Path(record_type): Path<String>,
    query: Result<Query<ReadQuery>, QueryRejection>,
    request: Request,
) -> Response {
    read(
        &app,
        &record_type,
        "batch".to_owned(),
        query,
        request.headers(),
        Instant::now(),
    )
    .await
}

/// A key with a raw `/` in it never reaches the one-segment route; say so instead
/// of answering "no route".
pub(super) async fn key_with_slash() -> ApiError {
    invalid_key("key contains '/', which is not allowed".to_owned())
}

async fn read(
    app: &App,
    record_type: &str,
    key: String,
    query: Result<Query<ReadQuery>, QueryRejection>,
    headers: &HeaderMap,
    started: Instant,
) -> Response {
    let parsed = EntityKey::from_string(key)
        .map_err(|e| invalid_key(format!("key {e}")))
        .and_then(|key| Ok((key, tenant(query)?)));
    let (key, tenant) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return finish(app, record_type, e, started),
    };
    if !app.access.may_read(&Caller::Anonymous, record_type) {
        let e = ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this caller may not read this record type",
        );
        return finish(app, record_type, e, started);
    }
    match app
        .read_through
        .get(record_type, &key, &tenant, WhenBusy::Reject)
        .await
    {
        Ok(served) => {
            let (response, outcome) = respond::served(
                &served,
                record_type,
                key.as_str(),
                headers.get(header::IF_NONE_MATCH),
            );
            app.request_metrics.record(record_type, outcome, started);
            response
        }
        Err(e) => finish(app, record_type, respond::read_error(&e), started),
    }
}

/// Counts and returns an error response.
fn finish(app: &App, record_type: &str, e: ApiError, started: Instant) -> Response {
    app.request_metrics
        .record(record_type, RequestOutcome::Error(e.code), started);
    e.into_response()
}

fn invalid_key(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidKey, message)
}

/// The tenant a request names, or the default tenant.
pub(super) fn tenant(
    query: Result<Query<ReadQuery>, QueryRejection>,
) -> Result<TenantId, ApiError> {
    let invalid =
        |message: String| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidTenant, message);
    let Query(query) = query.map_err(|e| invalid(format!("invalid query string: {e}")))?;
    parse_tenant(query.tenant.as_deref()).map_err(invalid)
}

/// Checks an optional tenant id; absent means the default tenant.
pub(super) fn parse_tenant(tenant: Option<&str>) -> Result<TenantId, String> {
    match tenant {
        Some(t) => TenantId::parse(t).map_err(|e| format!("tenant {e}")),
        None => Ok(TenantId::default_tenant()),
    }
}
