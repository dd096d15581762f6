//! The HTTP API: routes, request parsing and the mapping of every outcome to a
//! status and a stable JSON error code.
//!
//! Handlers parse and validate at the edge (keys, tenants), call the service
//! ([`ReadThrough`](crate::readthrough::ReadThrough)) and map its answer; they never
//! see wasmtime types. Every response that is not a success is an [`ApiError`].

mod entity;
mod error;
mod ops;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

pub use error::{ApiError, ErrorCode};

use crate::app::App;

/// The API's router over `app`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/entity/{record_type}/{key}", get(entity::get_entity))
        .route(
            "/v1/entity/{record_type}/{key}/{*rest}",
            get(entity::key_with_slash),
        )
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "the server hit an internal error; details are in its log",
            )
            .into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NoRoute,
        "no such route; entities are read at /v1/entity/{record_type}/{key}",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method",
    )
}
