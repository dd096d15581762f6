//! `POST /v1/entity/{record_type}/batch`: many keys of one record type in one
//! request, each with its own outcome.
//!
//! The body is `{"keys": [...], "tenant": "..."}` (tenant optional). The answer
//! is `{"results": [...]}` in the order of the keys, each with `key`, `status`,
//! `cache` and either `record` (the JSON record), or `error` (`code` and
//! `message`). Cached keys are answered at once; misses are fetched concurrently,
//! sharing the record type's in-flight limit: a miss waits for a free slot up to
//! the record type's call deadline rather than failing at once.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::entity::parse_tenant;
use super::error::{ApiError, ErrorCode};
use super::extract::{ApiPath, body_error};
use super::respond;
use crate::access::Action;
use crate::app::App;
use crate::auth::CallKind;
use crate::cache::Outcome;
use crate::key::{EntityKey, TenantId};
use crate::readthrough::{Served, WhenBusy};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    keys: Vec<String>,
    #[serde(default)]
    tenant: Option<String>,
}

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
    let config = app.config();
    let (keys, tenant) = parse(body, config.max_batch_keys)?;
    app.read_through
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
            app.read_through
                .get(record_type, &key, tenant, WhenBusy::WaitUntil(deadline))
                .await
                .map_err(|e| respond::read_error(&e))
        }
    });
    let results = futures::future::join_all(reads).await;
    Ok(render(record_type, &keys, results))
}

/// A batch request's keys and tenant, at most `max` keys.
pub(crate) fn parse(
    body: Result<Bytes, BytesRejection>,
    max: usize,
) -> Result<(Vec<String>, TenantId), ApiError> {
    let body = body.map_err(|e| body_error(&e))?;
    let request: BatchRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidBody,
            format!("expected {{\"keys\": [...], \"tenant\": \"...\"}}: {e}"),
        )
    })?;
    if request.keys.len() > max {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!(
                "{} keys asked for; a batch may ask for at most {max}",
                request.keys.len()
            ),
        ));
    }
    let tenant = parse_tenant(request.tenant.as_deref())
        .map_err(|m| ApiError::new(ErrorCode::InvalidTenant, m))?;
    Ok((request.keys, tenant))
}

/// One key of a batch, checked.
pub(crate) fn parse_key(key: &str) -> Result<EntityKey, ApiError> {
    EntityKey::parse(key).map_err(|e| ApiError::new(ErrorCode::InvalidKey, format!("key {e}")))
}

/// The answer to a batch: each key's outcome, in the order asked.
pub(crate) fn render(
    record_type: &str,
    keys: &[String],
    results: Vec<Result<Served, ApiError>>,
) -> Response {
    let mut out = String::from("{\"results\":[");
    for (i, (key, result)) in keys.iter().zip(results).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let key_json = serde_json::to_string(key).expect("strings serialize");
        match result {
            Ok(served) => {
                let cache = served.status.as_str();
                match &served.entry.outcome {
                    Outcome::Found { body, etag, .. } => {
                        let etag = etag.to_str().unwrap_or_default();
                        let etag_json = serde_json::to_string(etag).expect("strings serialize");
                        // Bodies were checked to be JSON when fetched: embed them as they are.
                        let body = std::str::from_utf8(body).expect("bodies are UTF-8");
                        let _ = write!(
                            out,
                            r#"{{"key":{key_json},"status":200,"cache":"{cache}","etag":{etag_json},"record":{body}}}"#
                        );
                    }
                    Outcome::NotFound => {
                        let e = ApiError::new(
                            ErrorCode::NotFound,
                            format!("no {record_type} record with key {key:?}"),
                        );
                        push_error(&mut out, &key_json, Some(cache), &e);
                    }
                    Outcome::Failed(failure) => {
                        push_error(
                            &mut out,
                            &key_json,
                            Some(cache),
                            &respond::fetch_error(record_type, failure),
                        );
                    }
                }
            }
            Err(e) => push_error(&mut out, &key_json, None, &e),
        }
    }
    out.push_str("]}");
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn push_error(out: &mut String, key_json: &str, cache: Option<&str>, e: &ApiError) {
    let cache = cache
        .map(|c| format!(r#","cache":"{c}""#))
        .unwrap_or_default();
    let _ = write!(
        out,
        r#"{{"key":{key_json},"status":{}{cache},"error":{}}}"#,
        e.status.as_u16(),
        e.body_json()
    );
}
