//! The HTTP pieces droid's API and a sidecar's both use: the one error type
//! and its codes ([`error`]), extractors whose refusals are JSON
//! ([`extract`]), answers and their caching headers ([`respond`]), what a
//! read names ([`read`]) and how a batch read is taken and answered
//! ([`batch`]), request metrics ([`requests`]) and the paths ([`routes`]).
//!
//! It knows nothing of `App` or a sidecar: it sits below both.

pub mod batch;
mod error;
pub mod extract;
pub mod read;
mod requests;
pub mod respond;
pub mod routes;

use axum::response::IntoResponse;

pub use error::{ApiError, ErrorCode};
pub use requests::{RequestMetrics, RequestOutcome};

/// The answer to a request whose handler panicked: the process stays up.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    ApiError::new(
        ErrorCode::Internal,
        "the server hit an internal error; details are in its log",
    )
    .into_response()
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method",
    )
}
