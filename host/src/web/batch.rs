//! Batch reads as droid and a sidecar both take them: the body (keys and
//! tenant, within the limit), each key checked, and the answer with every
//! key's own outcome in the order asked.

use std::fmt::Write;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ErrorCode};
use super::extract::body_error;
use super::read::parse_tenant;
use super::respond;
use crate::cache::Outcome;
use crate::key::{EntityKey, TenantId};
use crate::readthrough::Served;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    keys: Vec<String>,
    #[serde(default)]
    tenant: Option<String>,
}

/// A batch request's keys and tenant, at most `max` keys.
pub fn parse(
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
pub fn parse_key(key: &str) -> Result<EntityKey, ApiError> {
    EntityKey::parse(key).map_err(|e| ApiError::new(ErrorCode::InvalidKey, format!("key {e}")))
}

/// The answer to a batch: each key's outcome, in the order asked.
pub fn render(
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
