//! Turning what the read path served into HTTP: status, body, and the caching
//! headers consumers and sidecars rely on.
//!
//! Every answer about a record carries `Droid-Cache` (hit, miss, stale or
//! coalesced), `Cache-Control` with the entry's remaining freshness (and the
//! record type's stale windows), and `Age`. Found records carry a strong `ETag`;
//! a matching `If-None-Match` gets `304` without a body.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorCode};
use super::requests::RequestOutcome;
use crate::cache::{Failure, Outcome};
use crate::entity::PluginFailure;
use crate::failure::{CallError, FetchError};
use crate::readthrough::{CacheStatus, ReadError, Served};

/// The `Droid-Cache` header: where an answer came from.
pub const DROID_CACHE: &str = "droid-cache";
/// The header naming the plugin version that produced the answer.
pub const DROID_PLUGIN_VERSION: &str = "droid-plugin-version";

/// The response for a served read, and its outcome for metrics.
pub fn served(
    served: &Served,
    record_type: &str,
    key: &str,
    if_none_match: Option<&HeaderValue>,
) -> (Response, RequestOutcome) {
    let now = Instant::now();
    let entry = &served.entry;
    let (mut response, outcome) = match &entry.outcome {
        Outcome::Found { body, etag, .. } => {
            if if_none_match.is_some_and(|v| etag_matches(v, etag)) {
                let mut r = StatusCode::NOT_MODIFIED.into_response();
                r.headers_mut().insert(header::ETAG, etag.clone());
                (r, RequestOutcome::NotModified)
            } else {
                let mut r = Response::new(Body::from(body.clone()));
                let h = r.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                h.insert(header::ETAG, etag.clone());
                (r, RequestOutcome::Found)
            }
        }
        Outcome::NotFound => {
            let message = format!("no {record_type} record with key {key:?}");
            let e = ApiError::new(ErrorCode::NotFound, message);
            (
                e.into_response(),
                RequestOutcome::Error(ErrorCode::NotFound),
            )
        }
        Outcome::Failed(failure) => {
            let e = fetch_error(record_type, failure);
            let code = e.code;
            (e.into_response(), RequestOutcome::Error(code))
        }
    };
    let h = response.headers_mut();
    h.insert(
        DROID_CACHE,
        HeaderValue::from_static(served.status.as_str()),
    );
    if let Some(label) = &entry.producer.label {
        h.insert(DROID_PLUGIN_VERSION, label.clone());
    }
    let max_age = match served.status {
        CacheStatus::Stale => 0,
        _ => entry.remaining(now).as_secs(),
    };
    let mut cache_control = format!("max-age={max_age}");
    if let Outcome::Found { .. } = &entry.outcome {
        push_window(
            &mut cache_control,
            "stale-while-revalidate",
            served.stale_while_revalidate,
        );
        push_window(&mut cache_control, "stale-if-error", served.stale_if_error);
    }
    set(h, header::CACHE_CONTROL, cache_control);
    set(h, header::AGE, entry.age(now).as_secs().to_string());
    (response, outcome)
}

fn push_window(cache_control: &mut String, name: &str, window: Duration) {
    if !window.is_zero() {
        cache_control.push_str(&format!(", {name}={}", window.as_secs()));
    }
}

/// Sets a header from a string we built (digits and ASCII only), without copying it.
fn set(headers: &mut HeaderMap, name: header::HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
        headers.insert(name, v);
    }
}

/// Weak comparison, as `If-None-Match` requires: `*`, or any listed tag equal to
/// ours once a `W/` prefix is set aside.
fn etag_matches(header: &HeaderValue, etag: &HeaderValue) -> bool {
    let (Ok(text), Ok(etag)) = (header.to_str(), etag.to_str()) else {
        return false;
    };
    text.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// The API error for a read that produced no answer at all.
pub fn read_error(e: &ReadError) -> ApiError {
    let message = e.to_string();
    match e {
        ReadError::UnknownRecordType(_) => ApiError::new(ErrorCode::UnknownRecordType, message),
        ReadError::NotReadThrough(_) => ApiError::new(ErrorCode::NotReadThrough, message),
        ReadError::Busy { .. } => ApiError::new(ErrorCode::TooManyFetches, message).retry_after(1),
    }
}

/// The API error for a failed fetch: each failure has its own code, and a
/// message a consumer may see. What the plugin or its backing store said
/// (a panic's text and location, URLs, error chains) is not in it: it is in
/// the log under the failure's id, which the message names.
pub fn fetch_error(record_type: &str, failure: &Failure) -> ApiError {
    let (code, public) = match &failure.error {
        FetchError::EgressDenied(_) => (
            ErrorCode::EgressDenied,
            "the adapter tried to reach something outside its base URL".to_owned(),
        ),
        FetchError::Plugin(reported) => match reported {
            PluginFailure::InvalidInput(_) => (
                ErrorCode::InvalidKey,
                "the adapter refused the key as invalid".to_owned(),
            ),
            PluginFailure::UpstreamStatus { status, .. } => (
                ErrorCode::BackingStoreError,
                format!("the backing store answered {status}, outside the read-through contract"),
            ),
            PluginFailure::UpstreamUnavailable(_) => (
                ErrorCode::BackingStoreUnavailable,
                "the backing store could not be reached".to_owned(),
            ),
            PluginFailure::UpstreamTimeout(_) => (
                ErrorCode::BackingStoreTimeout,
                "the backing store did not answer in time".to_owned(),
            ),
            PluginFailure::Internal(_) => (
                ErrorCode::PluginError,
                "the record type's plugin failed".to_owned(),
            ),
            PluginFailure::Elsewhere(where_) => (ErrorCode::TenantElsewhere, where_.clone()),
        },
        FetchError::Call(call) => match call {
            // droid's own words about its own limits: nothing of the plugin's.
            CallError::Timeout { .. } => (ErrorCode::PluginTimeout, call.to_string()),
            CallError::MemoryExhausted { .. } => {
                (ErrorCode::PluginMemoryExhausted, call.to_string())
            }
            CallError::LimitExceeded { .. } => (ErrorCode::PluginLimitExceeded, call.to_string()),
            CallError::InvalidResult { .. } => (ErrorCode::PluginInvalidResult, call.to_string()),
            CallError::Panic { .. } | CallError::Trap { .. } => (
                ErrorCode::PluginCrashed,
                "the record type's plugin crashed".to_owned(),
            ),
            CallError::Capacity => {
                return ApiError::new(
                    ErrorCode::PluginCapacity,
                    format!("record type {record_type}: {call}"),
                )
                .retry_after(1);
            }
        },
    };
    ApiError::new(
        code,
        format!(
            "record type {record_type}: {public} (error id {}; the detail is in droid's log)",
            failure.id
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let tag = &HeaderValue::from_static("\"v3\"");
        for yes in ["\"v3\"", "W/\"v3\"", "\"v1\", \"v3\"", "*"] {
            assert!(etag_matches(&HeaderValue::from_static(yes), tag), "{yes}");
        }
        for no in ["\"v4\"", "v3", ""] {
            assert!(!etag_matches(&HeaderValue::from_static(no), tag), "{no}");
        }
    }
}
