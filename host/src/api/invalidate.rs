//! `POST /v1/invalidate`: remove keys from the read-through caches.
//!
//! The body is one event or an array of events of the shape
//! `{"record_type", "key", "tenant"?, "version"?, "timestamp"?}` (the event stream
//! consumer will read the same shape). Each event gets its own outcome:
//! `invalidated`, `ignored` (older than what the cache already saw), or an error
//! for that event alone. The answer is `200` with
//! `{"invalidated": n, "ignored": n, "failed": n, "results": [...]}`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::access::{Action, Caller};
use crate::app::App;
use crate::app::InvalidationError;
use crate::auth::CallKind;
use crate::readthrough::{Applied, Invalidation};
use crate::store::InvalidatedKey;
use crate::web::extract::body_error;
use crate::web::respond;
use crate::web::{ApiError, ErrorCode};

/// The most events one request may carry.
pub const MAX_EVENTS: usize = 1000;

pub(super) async fn invalidate(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let caller = match super::auth::authenticate(&app, &headers, CallKind::Mutate).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let (response, logged) = match answer(&app, &caller, body) {
        Ok(answer) => answer,
        Err(e) => return e.into_response(),
    };
    // Followers of the change log (sidecars) drop the keys too.
    let realms = app.service.realms.clone();
    match super::store_op(move || realms.log_invalidations(&logged)).await {
        Ok(_) => response,
        Err(e) => e.into_response(),
    }
}

/// The answer, and the invalidations that applied (for the change log).
fn answer(
    app: &App,
    caller: &Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Response, Vec<InvalidatedKey>), ApiError> {
    let body = body.map_err(|e| body_error(&e))?;
    let invalid = |m: String| ApiError::new(ErrorCode::InvalidBody, m);
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| invalid(format!("the body is not JSON: {e}")))?;
    let raw_events = match value {
        Value::Array(events) => events,
        event @ Value::Object(_) => vec![event],
        _ => {
            return Err(invalid(
                "expected an invalidation event or an array of them".to_owned(),
            ));
        }
    };
    if raw_events.len() > MAX_EVENTS {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!(
                "{} events sent; one request may carry at most {MAX_EVENTS}",
                raw_events.len()
            ),
        ));
    }
    // Every event must be well-formed before any is applied: a malformed batch
    // changes nothing.
    let events = raw_events
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            serde_json::from_value::<Invalidation>(raw).map_err(|e| {
                invalid(format!(
                    "event {i}: {e}; expected {{\"record_type\", \"key\", \"tenant\"?, \"version\"?, \"timestamp\"?}}"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // And the caller must be an invalidator of every record type it names.
    for event in &events {
        super::auth::require(app, caller, Action::Invalidate(&event.record_type))?;
    }

    let (mut invalidated, mut ignored, mut failed) = (0, 0, 0);
    let mut logged = Vec::new();
    let results: Vec<Value> = events
        .iter()
        .map(|event| {
            let head = json!({ "record_type": event.record_type, "key": event.key });
            match apply(app, event) {
                Ok((Applied::Invalidated { removed }, key)) => {
                    invalidated += 1;
                    logged.extend(key);
                    merge(head, json!({ "outcome": "invalidated", "removed": removed }))
                }
                Ok((Applied::Ignored { reason }, _)) => {
                    ignored += 1;
                    merge(head, json!({ "outcome": "ignored", "reason": reason }))
                }
                Err(e) => {
                    failed += 1;
                    merge(head, json!({ "outcome": "failed", "status": e.status.as_u16(), "error": e.body_json() }))
                }
            }
        })
        .collect();
    let response = Json(json!({
        "invalidated": invalidated,
        "ignored": ignored,
        "failed": failed,
        "results": results,
    }))
    .into_response();
    Ok((response, logged))
}

fn apply(app: &App, event: &Invalidation) -> Result<(Applied, Option<InvalidatedKey>), ApiError> {
    app.service.invalidate(event).map_err(|e| match e {
        InvalidationError::Key(why) => ApiError::new(ErrorCode::InvalidKey, format!("key {why}")),
        InvalidationError::Tenant(why) => ApiError::new(ErrorCode::InvalidTenant, why),
        InvalidationError::RecordType(e) => respond::read_error(&e),
    })
}

fn merge(mut head: Value, tail: Value) -> Value {
    if let (Value::Object(h), Value::Object(t)) = (&mut head, tail) {
        h.extend(t);
    }
    head
}
