//! `POST /v1/ingest/{source}`: a provider's events, as a JSON array or JSON
//! lines, each `{"id", "kind", "tenant", "occurred_at", "payload"}`. The answer
//! comes once every accepted event is durable: `200` with counts and one result
//! per event (`applied` with its sequence numbers, `duplicate`, `invalid`,
//! `rejected` or `failed`, each with its reason). A body that cannot be read at
//! all is refused whole, and then nothing is written.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::App;
use crate::ingest::{EventResult, IncomingEvent, Refusal, Route, ingest_routed};
use crate::web::extract::{ApiPath, body_error};
use crate::web::{ApiError, ErrorCode};

/// The most events one request may carry.
pub const MAX_EVENTS: usize = 10_000;

pub(super) async fn ingest_events(
    State(app): State<Arc<App>>,
    ApiPath(source): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match answer(&app, &source, body, Route::Live).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// Ingests a request's events into `target`: live, or a snapshot batch.
/// When every event is refused for one reason (its tenant migrates, or
/// lives in a realm served elsewhere), so is the request, with that code.
pub(super) async fn answer(
    app: &App,
    source: &str,
    body: Result<Bytes, BytesRejection>,
    target: Route<'_>,
) -> Result<Response, ApiError> {
    let config = app.service.config();
    let Some(source_config) = config.sources.get(source) else {
        return Err(ApiError::new(
            ErrorCode::UnknownSource,
            format!("no ingestion source named {source:?} is configured"),
        ));
    };
    let body = body.map_err(|e| body_error(&e))?;
    let events = parse(&body)?;
    if events.len() > MAX_EVENTS {
        return Err(ApiError::new(
            ErrorCode::BatchTooLarge,
            format!(
                "{} events in one request; at most {MAX_EVENTS}",
                events.len()
            ),
        ));
    }
    let count = u32::try_from(events.len()).unwrap_or(u32::MAX);
    match app.service.rate_limits.admit(source, source_config, count) {
        Ok(()) => {}
        Err(Refusal::Later(wait)) => {
            return Err(ApiError::new(ErrorCode::RateLimited,
                format!(
                    "source {source:?} is over its agreed rate of {} events per second; retry in {} ms",
                    source_config.rate_limit.map_or(0, |r| r.get()),
                    wait.as_millis()
                ),
            )
            .retry_after(wait.as_secs_f64().ceil().max(1.0) as u32));
        }
        Err(Refusal::TooMany { burst }) => {
            return Err(ApiError::new(
                ErrorCode::BatchTooLarge,
                format!(
                    "{count} events in one request; source {source:?} admits at most {burst} at once (its burst)"
                ),
            ));
        }
    }
    let Some(_slot) = app
        .service
        .source_slots
        .try_take(source, source_config.max_in_flight)
    else {
        metrics::counter!(crate::metrics::INGEST_BUSY, "source" => source.to_owned()).increment(1);
        return Err(ApiError::new(ErrorCode::SourceBusy,
            format!(
                "source {source:?} has {} requests being transformed, the most it may (sources.{source}.max_in_flight); retry shortly",
                source_config.max_in_flight
            ),
        )
        .retry_after(1));
    };
    let registry = app.service.registry();
    let binding = registry
        .get(&source_config.record_type)
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the source's record type is not bound"))?
        .clone();
    let results = ingest_routed(&app.service.realms, &binding, source, events, target).await?;
    let count = |f: fn(&EventResult) -> bool| results.iter().filter(|r| f(r)).count();
    app.service
        .source_health
        .note_outcomes(source, source_config, &results);
    if let Some(refused) = all_refused(&results) {
        let code = match refused.0 {
            crate::ingest::TENANT_MIGRATING => ErrorCode::TenantMigrating,
            crate::ingest::TENANT_RESTORING => ErrorCode::TenantRestoring,
            crate::ingest::TENANT_ERASING => ErrorCode::TenantErasing,
            _ => ErrorCode::TenantElsewhere,
        };
        let mut error = ApiError::new(code, refused.1.to_owned());
        if code != ErrorCode::TenantElsewhere {
            error = error.retry_after(config.tenancy.retry_after_s);
        }
        if let Some(realm) = refused.2 {
            error = error.realm(realm.to_owned(), refused.3.map(str::to_owned));
        }
        return Err(error);
    }
    Ok(Json(json!({
        "applied": count(|r| matches!(r, EventResult::Applied { .. })),
        "duplicate": count(|r| matches!(r, EventResult::Duplicate)),
        "invalid": count(|r| matches!(r, EventResult::Invalid { .. })),
        "rejected": count(|r| matches!(r, EventResult::Rejected { .. })),
        "failed": count(|r| matches!(r, EventResult::Failed { .. })),
        "staged": count(|r| matches!(r, EventResult::Staged)),
        "refused": count(|r| matches!(r, EventResult::Refused { .. })),
        "results": results,
    }))
    .into_response())
}

/// A JSON array of events, or one event per line. Each element that is not an
/// event becomes that event's own error; a body that is neither form is refused.
fn parse(body: &[u8]) -> Result<Vec<Result<IncomingEvent, String>>, ApiError> {
    let invalid = |m: String| ApiError::new(ErrorCode::InvalidBody, m);
    let text =
        std::str::from_utf8(body).map_err(|_| invalid("the body is not UTF-8".to_owned()))?;
    // Each element is parsed on its own, so a bad one fails alone.
    let element = |raw: &serde_json::value::RawValue| {
        serde_json::from_str::<IncomingEvent>(raw.get()).map_err(|e| format!("not an event: {e}"))
    };
    if text.trim_start().starts_with('[') {
        let values: Vec<&serde_json::value::RawValue> = serde_json::from_str(text)
            .map_err(|e| invalid(format!("the body is not a JSON array: {e}")))?;
        return Ok(values.into_iter().map(element).collect());
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str::<&serde_json::value::RawValue>(line)
                .map(element)
                .map_err(|e| invalid(format!("line {}: not JSON: {e}", n + 1)))
        })
        .collect()
}

/// The code, reason, realm and realm URL shared by every result, when every
/// one was refused alike (and there is at least one).
fn all_refused(results: &[EventResult]) -> Option<(&str, &str, Option<&str>, Option<&str>)> {
    let mut shared = None;
    for result in results {
        let EventResult::Refused {
            code,
            reason,
            realm,
            realm_url,
        } = result
        else {
            return None;
        };
        match shared {
            None => {
                shared = Some((
                    code.as_str(),
                    reason.as_str(),
                    realm.as_deref(),
                    realm_url.as_deref(),
                ));
            }
            Some((c, _, r, _)) if c == code && r == realm.as_deref() => {}
            Some(_) => return None,
        }
    }
    shared
}

#[cfg(test)]
mod tests {
    use crate::web::ErrorCode;

    #[test]
    fn the_refused_events_codes_are_the_apis() {
        assert_eq!(
            crate::ingest::TENANT_MIGRATING,
            ErrorCode::TenantMigrating.as_str()
        );
        assert_eq!(
            crate::ingest::TENANT_ELSEWHERE,
            ErrorCode::TenantElsewhere.as_str()
        );
        assert_eq!(
            crate::ingest::TENANT_RESTORING,
            ErrorCode::TenantRestoring.as_str()
        );
        assert_eq!(
            crate::ingest::TENANT_ERASING,
            ErrorCode::TenantErasing.as_str()
        );
    }
}
