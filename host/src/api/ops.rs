//! Operator endpoints: liveness and Prometheus metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::app::App;

/// Liveness: the process is up and serving. It says nothing about backing stores,
/// which fail per record type and are reported per record type.
pub(super) async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
}

/// Prometheus text exposition of every metric.
pub(super) async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    app.service.read_through.publish_gauges();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.service.metrics.render(),
    )
}
