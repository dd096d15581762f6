//! Admin endpoints: plugins, their versions and rollouts, and the configuration.
//! `droid plugins ...` is a client of these.
//!
//! - `GET  /v1/admin/plugins`: every plugin's versions, states, shares, call
//!   counters and last rollback, and every plugin file that failed to load.
//! - `POST /v1/admin/plugins/{name}/rollout` `{"version": "...", "share": "5%"}`
//! - `POST /v1/admin/plugins/{name}/promote`
//! - `POST /v1/admin/plugins/{name}/rollback` (optional `{"reason": "..."}`)
//! - `GET  /v1/admin/config`: the configuration file's status, last refusal included.
//! - `POST /v1/admin/reload`: loads plugin files and the configuration again.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ErrorCode};
use crate::access::Caller;
use crate::app::App;
use crate::config::Share;
use crate::plugins::{ControlError, RolledBack, Version};

type Answer = Result<Json<Value>, ApiError>;

/// Every plugin and every failed file.
pub(super) async fn list(State(app): State<Arc<App>>) -> Answer {
    allowed(&app)?;
    let (plugins, failures) = app.plugins.status();
    Ok(Json(
        json!({ "plugins": plugins, "load_failures": failures }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolloutRequest {
    version: String,
    share: String,
}

/// Starts (or re-shares) a rollout.
pub(super) async fn rollout(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    allowed(&app)?;
    let request: RolloutRequest = parse(&body, r#"{"version": "1.2.0", "share": "5%"}"#)?;
    let share = Share::parse(&request.share).map_err(|why| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
            format!("share: {why}"),
        )
    })?;
    let version = blocking(move || app.rollout(&name, &request.version, share))
        .await?
        .map_err(control_error)?;
    Ok(Json(json!({ "version": version.label(), "share": share })))
}

/// Promotes the candidate.
pub(super) async fn promote(State(app): State<Arc<App>>, Path(name): Path<String>) -> Answer {
    allowed(&app)?;
    let version: Arc<Version> = blocking(move || app.promote(&name))
        .await?
        .map_err(control_error)?;
    Ok(Json(
        json!({ "version": version.label(), "share": Share::ALL }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    reason: Option<String>,
}

/// Rolls back the candidate, or the current version to the previous one.
pub(super) async fn rollback(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Answer {
    allowed(&app)?;
    let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        parse(&body, r#"{"reason": "..."}"#)?
    };
    let done: RolledBack = blocking(move || app.rollback(&name, request.reason.as_deref()))
        .await?
        .map_err(control_error)?;
    Ok(Json(json!({ "rollback": done.record })))
}

/// The configuration file's status.
pub(super) async fn config(State(app): State<Arc<App>>) -> Answer {
    allowed(&app)?;
    let record_types: Vec<String> = app.config().record_types.keys().cloned().collect();
    Ok(Json(
        json!({ "status": app.config_status(), "record_types": record_types }),
    ))
}

/// Loads plugin files and the configuration again.
pub(super) async fn reload(State(app): State<Arc<App>>) -> Answer {
    allowed(&app)?;
    let (outcomes, report) = blocking(move || app.rescan()).await?;
    let files: Vec<String> = outcomes.iter().map(|o| format!("{o:?}")).collect();
    match report {
        Ok(report) => Ok(Json(json!({ "config": report, "plugin_files": files }))),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::ConfigRefused,
            format!("the configuration was refused; the running one stays: {e}"),
        )),
    }
}

fn allowed(app: &App) -> Result<(), ApiError> {
    if app.access.may_administer(&Caller::Anonymous) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "this caller may not use the admin endpoints",
        ))
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], example: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
            format!("expected a JSON body such as {example}: {e}"),
        )
    })
}

/// Runs a change off the async workers: it may take a lock held by a load.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!(error = %e, "an admin task failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "the server hit an internal error; details are in its log",
        )
    })
}

fn control_error(e: ControlError) -> ApiError {
    let (status, code) = match &e {
        ControlError::UnknownPlugin(_) => (StatusCode::NOT_FOUND, ErrorCode::UnknownPlugin),
        ControlError::UnknownVersion { .. } => (StatusCode::NOT_FOUND, ErrorCode::UnknownVersion),
        ControlError::AmbiguousVersion { .. } => {
            (StatusCode::CONFLICT, ErrorCode::AmbiguousVersion)
        }
        ControlError::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::PluginStateConflict),
    };
    ApiError::new(status, code, e.to_string())
}
