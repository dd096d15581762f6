//! `POST /v1/entity/{record_type}/batch`: many keys of one record type in one
//! request, each with its own outcome.
//!
//! The body is `{"keys": [...], "tenant": "..."}` (tenant optional). The answer
//! is `{"results": [...]}` in the order of the keys, each with `key`, `status`,
//! `cache` and either `record` (the JSON record), or `error` (`code` and
//! `message`). Cached keys are answered at once; misses are fetched concurrently,
//! sharing the record type's in-flight limit: a miss waits for a free slot up to
//! the record type's call deadline rather than failing at once.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::access::Action;
use crate::app::App;
use crate::auth::CallKind;
use crate::readthrough::WhenBusy;
use crate::web::ApiError;
use crate::web::batch::{parse, parse_key, render};
use crate::web::extract::ApiPath;
use crate::web::respond;

pub(super) async fn read_batch(
    State(app): State<Arc<App>>,
    ApiPath(record_type): ApiPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let authorized =
        super::auth::authorize(&app, &headers, CallKind::Read, Action::Read(&record_type)).await;
    if let Err(e) = authorized {
        return e.into_response();
    }
    match answer(&app, &record_type, body).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn answer(
    app: &App,
    record_type: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let config = app.service.config();
    let (keys, tenant) = parse(body, config.max_batch_keys)?;
    if let Err(placement) = app.service.realms.for_tenant(tenant.as_str()) {
        return Err(super::misplaced(
            placement,
            &format!("tenant {:?}", tenant.as_str()),
        ));
    }
    app.service
        .read_through
        .check(record_type)
        .map_err(|e| respond::read_error(&e))?;

    let deadline = Instant::now()
        + config
            .record_type(record_type)
            .map(|rt| rt.limits.deadline)
            .unwrap_or_default();
    let reads = keys.iter().map(|key| {
        let tenant = &tenant;
        async move {
            let key = parse_key(key)?;
            app.service
                .read_through
                .get(record_type, &key, tenant, WhenBusy::WaitUntil(deadline))
                .await
                .map_err(|e| respond::read_error(&e))
        }
    });
    let results = futures::future::join_all(reads).await;
    Ok(render(record_type, &keys, results))
}
