//! The fleet's admin routes: `POST /v1/admin/plugins/files/{file}` pushes a
//! plugin file (the body is the component; a signature, when the plugin
//! folder's trust rule wants one, comes base64-encoded in
//! `Droid-Plugin-Signature`) to this node and, when the store is shared,
//! to every node; `GET /v1/admin/fleet` shows what each node holds and
//! serves.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine;

use super::answers::{FleetAnswer, NodeStatus, PushedFileAnswer};
use crate::app::{App, PushError, Pushed};
use crate::store;
use crate::web::extract::{ApiBody, ApiPath};
use crate::web::{ApiError, ErrorCode};

/// The header carrying a pushed file's signature (its `.sig` file, base64).
pub const SIGNATURE_HEADER: &str = "droid-plugin-signature";

type Answer<T> = Result<Json<T>, ApiError>;

pub(super) async fn push(
    State(app): State<Arc<App>>,
    ApiPath(file): ApiPath<String>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Answer<Pushed> {
    let signature = match headers.get(SIGNATURE_HEADER) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| {
                    base64::engine::general_purpose::STANDARD
                        .decode(text.trim())
                        .ok()
                })
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidBody,
                        format!("{SIGNATURE_HEADER} must be the .sig file, base64-encoded"),
                    )
                })?,
        ),
    };
    let wasm = body.to_vec();
    let pushed =
        tokio::task::spawn_blocking(move || app.control.push_plugin(&file, wasm, signature))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "a push task failed");
                ApiError::new(
                    ErrorCode::Internal,
                    "the server hit an internal error; details are in its log",
                )
            })?;
    match pushed {
        Ok(pushed) => Ok(Json(pushed)),
        Err(e @ PushError::Name(_)) => {
            Err(ApiError::new(ErrorCode::InvalidPluginFile, e.to_string()))
        }
        Err(PushError::Refused(reason)) => Err(ApiError::new(
            ErrorCode::PluginRefused,
            format!("the plugin file did not load; nothing was kept: {reason}"),
        )),
        Err(PushError::Keep(reason)) => {
            Err(ApiError::new(ErrorCode::StoreUnavailable, reason).retry_after(1))
        }
    }
}

pub(super) async fn nodes(State(app): State<Arc<App>>) -> Answer<FleetAnswer> {
    let Some(fleet) = app.service.realms.base.fleet.clone() else {
        // Alone: this node is the fleet.
        let me = app.control.node_status(&app.node_name());
        return Ok(Json(FleetAnswer {
            shared: false,
            nodes: vec![me],
            files: Vec::new(),
        }));
    };
    let (reports, files) =
        store::blocking(move || Ok((fleet.node_reports()?, fleet.pushed_files()?))).await?;
    let nodes = reports
        .into_iter()
        .filter_map(|r| match serde_json::from_str::<NodeStatus>(&r.report) {
            Ok(mut status) => {
                status.at_ms = r.at_ms;
                Some(status)
            }
            Err(e) => {
                tracing::warn!(node = %r.node, error = %e, "a node's report does not parse");
                None
            }
        })
        .collect();
    let files = files
        .into_iter()
        .map(|f| PushedFileAnswer {
            file: f.file,
            sha256: f.sha256,
            signed: f.signed,
            pushed_at_ms: f.pushed_at_ms,
        })
        .collect();
    Ok(Json(FleetAnswer {
        shared: true,
        nodes,
        files,
    }))
}
