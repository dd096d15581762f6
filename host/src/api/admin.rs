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
//! - `GET  /v1/admin/errors/{id}`: a failed fetch's detail (panic text, error
//!   chain, plugin version), by the error id its answer named.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::answers::{
    ConfigAnswer, DeadLetterList, ErrorDetail, Logged, PluginList, Reloaded, Replayed,
    RollbackDone, Serving, SourceList,
};
use crate::app::App;
use crate::config::Share;
use crate::plugins::{ControlError, RolledBack, Version};
use crate::web::extract::{ApiBody, ApiPath, ApiQuery};
use crate::web::{ApiError, ErrorCode};

type Answer<T> = Result<Json<T>, ApiError>;

/// Every plugin and every failed file.
pub(super) async fn list(State(app): State<Arc<App>>) -> Answer<PluginList> {
    let (plugins, load_failures) = app.control.plugins.status();
    Ok(Json(PluginList {
        plugins,
        load_failures,
    }))
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
    ApiPath(name): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Answer<Serving> {
    let request: RolloutRequest = parse(&body, r#"{"version": "1.2.0", "share": "5%"}"#)?;
    let share = Share::parse(&request.share)
        .map_err(|why| ApiError::new(ErrorCode::InvalidBody, format!("share: {why}")))?;
    let version = blocking(move || app.control.rollout(&name, &request.version, share))
        .await?
        .map_err(control_error)?;
    Ok(Json(Serving {
        version: version.label().to_owned(),
        share,
    }))
}

/// Promotes the candidate.
pub(super) async fn promote(
    State(app): State<Arc<App>>,
    ApiPath(name): ApiPath<String>,
) -> Answer<Serving> {
    let version: Arc<Version> = blocking(move || app.control.promote(&name))
        .await?
        .map_err(control_error)?;
    Ok(Json(Serving {
        version: version.label().to_owned(),
        share: Share::ALL,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    reason: Option<String>,
}

/// Rolls back the candidate, or the current version to the previous one.
pub(super) async fn rollback(
    State(app): State<Arc<App>>,
    ApiPath(name): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Answer<RollbackDone> {
    let request: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        parse(&body, r#"{"reason": "..."}"#)?
    };
    let done: RolledBack = blocking(move || app.control.rollback(&name, request.reason.as_deref()))
        .await?
        .map_err(control_error)?;
    Ok(Json(RollbackDone {
        rollback: done.record,
    }))
}

/// The configuration file's status.
pub(super) async fn config(State(app): State<Arc<App>>) -> Answer<ConfigAnswer> {
    Ok(Json(ConfigAnswer {
        status: app.control.config_status(),
        record_types: app.service.config().record_types.keys().cloned().collect(),
    }))
}

/// Loads plugin files and the configuration again.
pub(super) async fn reload(State(app): State<Arc<App>>) -> Answer<Reloaded> {
    let (outcomes, report) = blocking(move || app.control.rescan()).await?;
    let plugin_files = outcomes.iter().map(|o| format!("{o:?}")).collect();
    match report {
        Ok(config) => Ok(Json(Reloaded {
            config,
            plugin_files,
        })),
        Err(e) => Err(ApiError::new(
            ErrorCode::ConfigRefused,
            format!("the configuration was refused; the running one stays: {e}"),
        )),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], example: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
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
            ErrorCode::Internal,
            "the server hit an internal error; details are in its log",
        )
    })
}

fn control_error(e: ControlError) -> ApiError {
    let code = match &e {
        ControlError::UnknownPlugin(_) => ErrorCode::UnknownPlugin,
        ControlError::UnknownVersion { .. } => ErrorCode::UnknownVersion,
        ControlError::AmbiguousVersion { .. } => ErrorCode::AmbiguousVersion,
        ControlError::Conflict(_) => ErrorCode::PluginStateConflict,
    };
    ApiError::new(code, e.to_string())
}

/// A failed fetch's detail, while the journal holds it.
pub(super) async fn error(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
) -> Answer<ErrorDetail> {
    let unknown = || {
        ApiError::new(
            ErrorCode::UnknownErrorId,
            format!(
                "no failure {id:?} is held (ids are 16 hex digits; older ones are only in the log, under error_id)"
            ),
        )
    };
    let id_value = crate::failure::ErrorId::parse(&id).ok_or_else(unknown)?;
    let logged = app
        .service
        .read_through
        .journal()
        .get(id_value)
        .ok_or_else(unknown)?;
    Ok(Json(ErrorDetail {
        error: Logged::clone(&logged),
    }))
}

/// Every ingestion source's failures against its thresholds.
pub(super) async fn sources(State(app): State<Arc<App>>) -> Answer<SourceList> {
    let now = std::time::Instant::now();
    let config = app.service.config();
    let sources = config
        .sources
        .iter()
        .map(|(name, source)| app.service.source_health.health(name, source, now))
        .collect();
    Ok(Json(SourceList { sources }))
}

#[derive(Debug, Deserialize)]
pub(super) struct DeadLetterQuery {
    source: Option<String>,
    limit: Option<usize>,
}

/// Dead letters, optionally of one source.
pub(super) async fn dead_letters(
    State(app): State<Arc<App>>,
    ApiQuery(query): ApiQuery<DeadLetterQuery>,
) -> Answer<DeadLetterList> {
    let limit = query.limit.unwrap_or(1000).min(10_000);
    let mut dead_letters = Vec::new();
    for realm in app.service.realms.served() {
        let store = realm.stores.dead_letters.clone();
        let source = query.source.clone();
        dead_letters.extend(blocking(move || store.dead_letters(source.as_deref(), limit)).await??);
    }
    dead_letters.sort_by(|a, b| (&a.source, &a.event_id).cmp(&(&b.source, &b.event_id)));
    dead_letters.truncate(limit);
    Ok(Json(DeadLetterList { dead_letters }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    ids: Option<Vec<String>>,
}

/// Runs a source's dead letters (all, or the given ids) through the current
/// transformer again: those that now succeed leave the dead letters.
pub(super) async fn replay(
    State(app): State<Arc<App>>,
    ApiPath(source): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Answer<Replayed> {
    let request: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        parse(&body, r#"{"ids": ["ev-1", "ev-2"]}"#)?
    };
    let config = app.service.config();
    let Some(source_config) = config.sources.get(&source).cloned() else {
        return Err(ApiError::new(
            ErrorCode::UnknownSource,
            format!("no ingestion source named {source:?} is configured"),
        ));
    };
    let registry = app.service.registry();
    let Some(binding) = registry.get(&source_config.record_type).cloned() else {
        return Err(ApiError::new(
            ErrorCode::Internal,
            "the source's record type is not bound",
        ));
    };
    let done = crate::ingest::replay(
        &app.service.realms,
        &binding,
        &source,
        request.ids.as_deref(),
    )
    .await?;
    Ok(Json(done))
}
