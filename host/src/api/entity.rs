//! `GET /v1/entity/{record_type}/{key}`: one record, from the cache or read
//! through its adapter. `HEAD` is answered by the same handler (axum drops the
//! body).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};

use crate::web::extract::ApiPath;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::access::Action;
use crate::app::App;
use crate::auth::CallKind;
use crate::key::{EntityKey, TenantId};
use crate::readthrough::{ReadError, WhenBusy};
use crate::store::RecordId;
use crate::web::RequestOutcome;
use crate::web::read::{ReadQuery, invalid_key, tenant};
use crate::web::respond;
use crate::web::{ApiError, ErrorCode};

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
    ApiPath(record_type): ApiPath<String>,
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

async fn read(
    app: &App,
    record_type: &str,
    key: String,
    query: Result<Query<ReadQuery>, QueryRejection>,
    headers: &HeaderMap,
    started: Instant,
) -> Response {
    let authorized =
        super::auth::authorize(app, headers, CallKind::Read, Action::Read(record_type)).await;
    if let Err(e) = authorized {
        return finish(app, record_type, e, started);
    }
    let parsed = EntityKey::from_string(key)
        .map_err(|e| invalid_key(format!("key {e}")))
        .and_then(|key| Ok((key, tenant(query)?)));
    let (key, tenant) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return finish(app, record_type, e, started),
    };
    // A tenant of a realm served elsewhere is never answered from here.
    let realm = match app.service.realms.for_tenant(tenant.as_str()) {
        Ok(realm) => realm,
        Err(placement) => {
            let e = super::misplaced(placement, &format!("tenant {:?}", tenant.as_str()));
            return finish(app, record_type, e, started);
        }
    };
    match app
        .service
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
            app.service
                .request_metrics
                .record(record_type, outcome, started);
            response
        }
        // Ingested record types are read from the store.
        Err(ReadError::NotReadThrough(_)) => {
            match stored(&realm.stores, record_type, &key, &tenant, headers).await {
                Ok((response, outcome)) => {
                    app.service
                        .request_metrics
                        .record(record_type, outcome, started);
                    response
                }
                Err(e) => finish(app, record_type, e, started),
            }
        }
        Err(e) => finish(app, record_type, respond::read_error(&e), started),
    }
}

/// A record of an ingested record type, from the read cache or else the
/// store (on the blocking pool). Deleted records (tombstones) are not found.
async fn stored(
    store: &crate::store::Stores,
    record_type: &str,
    key: &EntityKey,
    tenant: &TenantId,
    headers: &HeaderMap,
) -> Result<(Response, RequestOutcome), ApiError> {
    let id = RecordId {
        record_type: record_type.to_owned(),
        tenant: tenant.as_str().to_owned(),
        key: key.as_str().to_owned(),
    };
    let records = &store.records;
    let record = match records.cached(&id) {
        Some(record) => Some(record),
        None => {
            let (records, id) = (records.clone(), id.clone());
            crate::store::blocking(move || records.get(&id)).await?
        }
    };
    let Some((body, version)) = record.and_then(|r| Some((r.body?, r.version))) else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no {record_type} record with key {:?}", key.as_str()),
        ));
    };
    let etag = format!("\"v{version}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((
            (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response(),
            RequestOutcome::NotModified,
        ));
    }
    Ok((
        (
            [
                (header::CONTENT_TYPE, "application/json".to_owned()),
                (header::ETAG, etag),
            ],
            body,
        )
            .into_response(),
        RequestOutcome::Found,
    ))
}

/// Counts and returns an error response.
fn finish(app: &App, record_type: &str, e: ApiError, started: Instant) -> Response {
    app.service
        .request_metrics
        .record(record_type, RequestOutcome::Error(e.code), started);
    e.into_response()
}
