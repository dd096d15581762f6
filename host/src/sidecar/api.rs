//! The sidecar's HTTP API: droid's own read API (`GET`/`HEAD
//! /v1/entity/{record_type}/{key}`), answered from the sidecar's caches, plus
//! health and metrics.
//!
//! Answers carry droid's caching headers (`Droid-Cache`, `ETag`,
//! `Cache-Control`, `Age`) and `Droid-Sync`: `in-sync` while the sidecar follows
//! the droid's change feed, `out-of-sync` otherwise. Out of sync, what the
//! caches hold is still served, as `Droid-Cache: stale` with `max-age=0`.
//! Consumers on the same host call it without credentials: the sidecar reads
//! with its own identity, so it listens on loopback.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tower_http::catch_panic::CatchPanicLayer;

use super::Sidecar;
use crate::api::respond;
use crate::api::{ApiError, ErrorCode, RequestOutcome};
use crate::key::{EntityKey, TenantId};
use crate::readthrough::{Busy, CacheStatus, WhenBusy};

/// The header saying whether the sidecar is following its droid.
pub const DROID_SYNC: &str = "droid-sync";

/// The sidecar's router.
pub fn router(sidecar: Arc<Sidecar>) -> Router {
    Router::new()
        .route("/v1/entity/{record_type}/{key}", get(get_entity))
        .route("/v1/entity/{record_type}/{key}/{*rest}", get(key_with_slash))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NoRoute,
                "no such route; a sidecar serves GET /v1/entity/{record_type}/{key}, /healthz and /metrics",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this route does not accept that method",
            )
        })
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "the sidecar hit an internal error; details are in its log",
            )
            .into_response()
        }))
        .with_state(sidecar)
}

#[derive(Debug, Deserialize)]
struct ReadQuery {
    tenant: Option<String>,
}

async fn get_entity(
    State(sidecar): State<Arc<Sidecar>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ReadQuery>, QueryRejection>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let in_sync = sidecar.sync.in_sync();
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    let (record_type, response) =
        read(&sidecar, path, query, if_none_match, in_sync, started).await;
    let mut response = match response {
        Ok(response) => response,
        Err(e) => {
            sidecar
                .request_metrics
                .record(&record_type, RequestOutcome::Error(e.code), started);
            e.into_response()
        }
    };
    response.headers_mut().insert(
        DROID_SYNC,
        HeaderValue::from_static(if in_sync { "in-sync" } else { "out-of-sync" }),
    );
    response
}

async fn read(
    sidecar: &Sidecar,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ReadQuery>, QueryRejection>,
    if_none_match: Option<HeaderValue>,
    in_sync: bool,
    started: Instant,
) -> (String, Result<Response, ApiError>) {
    let Ok(Path((record_type, key))) = path else {
        let e = invalid_key("the path is not valid UTF-8 once percent-decoded".to_owned());
        return (String::new(), Err(e));
    };
    let Some(reader) = sidecar.readers.get(&record_type) else {
        let e = ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownRecordType,
            format!("this sidecar serves no record type named {record_type:?}"),
        );
        return (record_type, Err(e));
    };
    let key = match EntityKey::from_string(key) {
        Ok(key) => key,
        Err(e) => return (record_type, Err(invalid_key(format!("key {e}")))),
    };
    let tenant = match tenant(query) {
        Ok(tenant) => tenant,
        Err(e) => return (record_type, Err(e)),
    };
    let mut served = match reader.read(&key, &tenant, WhenBusy::Reject).await {
        Ok(served) => served,
        Err(Busy) => {
            let e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyFetches,
                format!(
                    "record type {record_type:?} already has {} reads through to droid in flight; try again shortly",
                    reader.max_in_flight()
                ),
            )
            .retry_after(1);
            return (record_type, Err(e));
        }
    };
    // Out of sync, a cached answer may have changed upstream unseen.
    if !in_sync && served.status == CacheStatus::Hit {
        served.status = CacheStatus::Stale;
    }
    let (response, outcome) =
        respond::served(&served, &record_type, key.as_str(), if_none_match.as_ref());
    sidecar
        .request_metrics
        .record(&record_type, outcome, started);
    (record_type, Ok(response))
}

fn tenant(query: Result<Query<ReadQuery>, QueryRejection>) -> Result<TenantId, ApiError> {
    let invalid =
        |message: String| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidTenant, message);
    let Query(query) = query.map_err(|e| invalid(format!("invalid query string: {e}")))?;
    match query.tenant {
        Some(t) => TenantId::parse(&t).map_err(|e| invalid(format!("tenant {e}"))),
        None => Ok(TenantId::default_tenant()),
    }
}

async fn key_with_slash() -> ApiError {
    invalid_key("key contains '/', which is not allowed".to_owned())
}

fn invalid_key(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidKey, message)
}

/// `200` while in sync with the droid, `503` otherwise; the body says how far
/// behind either way. (The sidecar keeps answering out of sync: this is for
/// dashboards and for consumers that prefer another path when it is stale.)
async fn healthz(State(sidecar): State<Arc<Sidecar>>) -> Response {
    let report = sidecar.sync.report();
    let status = if report.in_sync {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if report.in_sync { "in_sync" } else { "out_of_sync" },
        "upstream": sidecar.upstream.base(),
        "sync": report,
        "replicas": sidecar.replicas.report(),
    });
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(sidecar): State<Arc<Sidecar>>) -> impl IntoResponse {
    sidecar.publish_gauges();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        sidecar.metrics.render(),
    )
}
