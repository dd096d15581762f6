//! The sidecar's HTTP API: droid's own read API (`GET`/`HEAD
//! /v1/entity/{record_type}/{key}` and `POST /v1/entity/{record_type}/batch`),
//! answered from the sidecar's caches, plus health and metrics.
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
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};

use crate::web::extract::ApiPath;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;

use super::Sidecar;
use crate::key::{EntityKey, TenantId};
use crate::readthrough::{Busy, CacheStatus, Reader, Served, WhenBusy};
use crate::web::read::{ReadQuery, invalid_key, tenant};
use crate::web::{ApiError, ErrorCode, RequestOutcome};
use crate::web::{batch, read, respond};

/// The header saying whether the sidecar is following its droid.
pub const DROID_SYNC: &str = "droid-sync";

/// The largest request body a sidecar reads: a batch of keys is small.
const MAX_BODY_BYTES: u64 = 1 << 20;

/// The sidecar's router.
pub fn router(sidecar: Arc<Sidecar>) -> Router {
    Router::new()
        .route(crate::web::routes::ENTITY, get(get_entity))
        .route(
            crate::web::routes::BATCH,
            post(read_batch).get(get_key_named_batch),
        )
        .route(
            crate::web::routes::KEY_WITH_SLASH,
            get(read::key_with_slash),
        )
        .route(crate::web::routes::HEALTHZ, get(healthz))
        .route(crate::web::routes::METRICS, get(metrics))
        .fallback(|| async {
            ApiError::new(ErrorCode::NoRoute,
                "no such route; a sidecar serves GET /v1/entity/{record_type}/{key}, /healthz and /metrics",
            )
        })
        .method_not_allowed_fallback(crate::web::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(|request, next| {
            crate::web::extract::limit_body(MAX_BODY_BYTES, request, next)
        }))
        .layer(CatchPanicLayer::custom(crate::web::panic_response))
        .with_state(sidecar)
}

async fn get_entity(
    State(sidecar): State<Arc<Sidecar>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<ReadQuery>, QueryRejection>,
    request: Request,
) -> Response {
    let Ok(Path((record_type, key))) = path else {
        let e = invalid_key("the path is not valid UTF-8 once percent-decoded".to_owned());
        return e.into_response();
    };
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    one(&sidecar, record_type, key, query, if_none_match).await
}

/// `GET /v1/entity/{record_type}/batch` reads the key named `batch`; the path
/// is shared with the batch endpoint, which only takes `POST`.
async fn get_key_named_batch(
    State(sidecar): State<Arc<Sidecar>>,
    ApiPath(record_type): ApiPath<String>,
    query: Result<Query<ReadQuery>, QueryRejection>,
    request: Request,
) -> Response {
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    one(
        &sidecar,
        record_type,
        "batch".to_owned(),
        query,
        if_none_match,
    )
    .await
}

/// One read, counted, with `Droid-Sync`.
async fn one(
    sidecar: &Sidecar,
    record_type: String,
    key: String,
    query: Result<Query<ReadQuery>, QueryRejection>,
    if_none_match: Option<HeaderValue>,
) -> Response {
    let started = Instant::now();
    let in_sync = sidecar.sync.in_sync();
    let mut response = match read(sidecar, &record_type, key, query, if_none_match, in_sync).await {
        Ok((response, outcome)) => {
            sidecar
                .request_metrics
                .record(&record_type, outcome, started);
            response
        }
        Err(e) => {
            sidecar
                .request_metrics
                .record(&record_type, RequestOutcome::Error(e.code), started);
            e.into_response()
        }
    };
    response
        .headers_mut()
        .insert(DROID_SYNC, sync_header(in_sync));
    response
}

fn sync_header(in_sync: bool) -> HeaderValue {
    HeaderValue::from_static(if in_sync { "in-sync" } else { "out-of-sync" })
}

async fn read(
    sidecar: &Sidecar,
    record_type: &str,
    key: String,
    query: Result<Query<ReadQuery>, QueryRejection>,
    if_none_match: Option<HeaderValue>,
    in_sync: bool,
) -> Result<(Response, RequestOutcome), ApiError> {
    let reader = sidecar.reader(record_type)?;
    let key = EntityKey::from_string(key).map_err(|e| invalid_key(format!("key {e}")))?;
    let tenant = tenant(query)?;
    let served = serve(reader, &key, &tenant, WhenBusy::Reject, in_sync).await?;
    Ok(respond::served(
        &served,
        record_type,
        key.as_str(),
        if_none_match.as_ref(),
    ))
}

/// Reads through the record type's reader; out of sync, a cached answer is
/// reported stale (it may have changed upstream unseen).
async fn serve(
    reader: &Arc<Reader>,
    key: &EntityKey,
    tenant: &TenantId,
    when_busy: WhenBusy,
    in_sync: bool,
) -> Result<Served, ApiError> {
    let mut served = reader.read(key, tenant, when_busy).await.map_err(|Busy| {
        ApiError::new(ErrorCode::TooManyFetches,
            format!(
                "record type {:?} already has {} reads through to droid in flight; try again shortly",
                reader.name(),
                reader.max_in_flight()
            ),
        )
        .retry_after(1)
    })?;
    if !in_sync && served.status == CacheStatus::Hit {
        served.status = CacheStatus::Stale;
    }
    Ok(served)
}

/// `POST /v1/entity/{record_type}/batch`, as on droid: each key's outcome,
/// misses read through concurrently within the record type's limit.
async fn read_batch(
    State(sidecar): State<Arc<Sidecar>>,
    ApiPath(record_type): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let in_sync = sidecar.sync.in_sync();
    let answer = async {
        let (keys, tenant) = batch::parse(body, sidecar.config.max_batch_keys)?;
        let reader = sidecar.reader(&record_type)?;
        let deadline = Instant::now() + sidecar.config.upstream.request_timeout;
        let reads = keys.iter().map(|key| {
            let tenant = &tenant;
            async move {
                let key = batch::parse_key(key)?;
                let when_busy = WhenBusy::WaitUntil(deadline);
                serve(reader, &key, tenant, when_busy, in_sync).await
            }
        });
        let results = futures::future::join_all(reads).await;
        Ok::<_, ApiError>(batch::render(&record_type, &keys, results))
    };
    let mut response = match answer.await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    response
        .headers_mut()
        .insert(DROID_SYNC, sync_header(in_sync));
    response
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
