//! The HTTP API: routes, request parsing and the mapping of every outcome to a
//! status and a stable JSON error code.
//!
//! Handlers parse and validate at the edge (keys, tenants, bodies), ask the access
//! policy, call the service ([`ReadThrough`](crate::readthrough::ReadThrough)) and
//! map its answer ([`respond`]); they never see wasmtime types. Every response that
//! is not a success is an [`ApiError`].

mod admin;
pub mod answers;
mod auth;
mod batch;
mod entity;
mod feed;
mod fleet;
mod ingest;
mod invalidate;
mod ops;
mod records;
mod recovery;
mod snapshot;
mod tenants;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use crate::web::respond::{DROID_CACHE, DROID_PLUGIN_VERSION};
pub use crate::web::{ApiError, ErrorCode, RequestMetrics, RequestOutcome, respond, routes};
use crate::web::{extract, method_not_allowed, panic_response};

use crate::app::App;

/// The API's router over `app`.
pub fn router(app: Arc<App>) -> Router {
    let router = Router::new()
        .route(routes::ENTITY, get(entity::get_entity))
        .route(
            routes::BATCH,
            post(batch::read_batch).get(entity::get_key_named_batch),
        )
        .route(routes::INVALIDATE, post(invalidate::invalidate))
        .route(routes::CHANGES, get(feed::changes))
        .route(routes::RECORDS, get(records::export))
        .route(
            routes::KEY_WITH_SLASH,
            get(crate::web::read::key_with_slash),
        )
        .merge(publishing(app.clone()))
        .merge(administration(app.clone()))
        .route(routes::HEALTHZ, get(ops::healthz))
        .route(routes::METRICS, get(ops::metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are bounded by `server.max_body_bytes` (read live), not by
        // axum's fixed default, whose refusal is plain text.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(app.clone(), limit_body))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(request_span));
    let router = if app.service.authenticator().is_none() {
        // Every answer of an unauthenticated droid says so.
        router.layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static(INSECURE_HEADER),
            HeaderValue::from_static("insecure-no-auth: this droid checks no credentials"),
        ))
    } else {
        router
    };
    router.with_state(app)
}

/// Bounds the request's body by the configuration in force.
async fn limit_body(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let limit = app.service.config().max_body_bytes;
    extract::limit_body(limit, request, next).await
}

/// The span of a request names its method and route, never its URI: keys of
/// sensitive record types must not reach logs or traces.
fn request_span(request: &axum::extract::Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("(no route)", |p| p.as_str());
    tracing::debug_span!("request", method = %request.method(), route)
}

/// Runs a store operation off the async workers; a store failure is a `503`
/// (nothing was written, the client may send again).
pub(super) async fn store_op<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => {
            tracing::error!(error = %e, "a store task failed");
            Err(ApiError::new(
                ErrorCode::Internal,
                "the server hit an internal error; details are in its log",
            ))
        }
    }
}

/// The refusal for a tenant or realm this node does not serve: `421` with
/// the realm and its `public_url`, or `422` for a realm no one declared.
pub(crate) fn misplaced(placement: crate::tenancy::Placement, what: &str) -> ApiError {
    match placement {
        crate::tenancy::Placement::Elsewhere { realm, url } => ApiError::new(
            ErrorCode::TenantElsewhere,
            format!(
                "{what} is in realm {realm:?}, which this node does not serve; ask {}",
                url.as_ref()
                    .map_or("the nodes serving it".to_owned(), |u| u.to_string())
            ),
        )
        .realm(realm, url.map(|u| u.to_string())),
        crate::tenancy::Placement::Unknown(realm) => ApiError::new(
            ErrorCode::UnknownRealm,
            format!("no realm named {realm:?} is declared"),
        ),
    }
}

/// The header every response carries in `--insecure-no-auth` mode.
pub const INSECURE_HEADER: &str = "droid-warning";

/// Ingestion routes: only a source's publishers may use them.
fn publishing(app: Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route(routes::INGEST, post(ingest::ingest_events))
        .route(routes::SNAPSHOTS, post(snapshot::open))
        .route(
            routes::SNAPSHOT,
            get(snapshot::show)
                .post(snapshot::part)
                .delete(snapshot::abort),
        )
        .route(routes::SNAPSHOT_COMMIT, post(snapshot::commit))
        .route_layer(middleware::from_fn_with_state(app, auth::publishers_only))
}

/// Admin routes: only `auth.admins` may use them.
fn administration(app: Arc<App>) -> Router<Arc<App>> {
    Router::new()
        .route(routes::PLUGINS, get(admin::list))
        .route(routes::ROLLOUT, post(admin::rollout))
        .route(routes::PROMOTE, post(admin::promote))
        .route(routes::ROLLBACK, post(admin::rollback))
        .route(routes::PLUGIN_FILE, post(fleet::push))
        .route(routes::FLEET, get(fleet::nodes))
        .route(routes::CONFIG, get(admin::config))
        .route(routes::RELOAD, post(admin::reload))
        .route(routes::SOURCES, get(admin::sources))
        .route(routes::DEAD_LETTERS, get(admin::dead_letters))
        .route(routes::REPLAY, post(admin::replay))
        .route(routes::ERROR, get(admin::error))
        .route(routes::TENANTS, get(tenants::list))
        .route(routes::TENANT, get(tenants::show).put(tenants::pin))
        .route(routes::MIGRATIONS, get(tenants::migrations))
        .route(
            routes::MIGRATION_STEP,
            get(tenants::status).post(tenants::step),
        )
        .route(
            routes::RESTORES,
            get(recovery::restores).post(recovery::restore),
        )
        .route(routes::RESTORE, get(recovery::show))
        .route(routes::RESTORE_UNDO, post(recovery::undo))
        .route(
            routes::ERASURES,
            get(recovery::erasures).post(recovery::propose_erasure),
        )
        .route(routes::ERASURE, get(recovery::erasure))
        .route(routes::ERASURE_APPROVE, post(recovery::approve_erasure))
        .route(routes::BACKUPS, get(recovery::backups))
        .route(routes::BACKUPS_VERIFY, post(recovery::verify))
        .route(routes::AUDIT, get(recovery::audit))
        .route_layer(middleware::from_fn_with_state(app, auth::admins_only))
}

async fn no_route() -> ApiError {
    ApiError::new(
        ErrorCode::NoRoute,
        "no such route; see the README for the API",
    )
}
