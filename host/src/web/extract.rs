//! Extractors whose refusals are API errors: axum's own answer a malformed path
//! segment, query string or body in plain text, and every refusal of droid's
//! API is JSON with a stable code. Handlers take these instead of axum's
//! `Path`, `Query` and `Bytes`.
//!
//! The size of a body is bounded before it is read, by [`limit_body`].

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorCode};

/// The route's path parameters, or `400 invalid_path`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|e| path_error(&e))
    }
}

/// The query string, or `400 invalid_query`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|e| query_error(&e))
    }
}

/// The whole request body, or `413 body_too_large` / `400 invalid_body`.
#[derive(Debug)]
pub struct ApiBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state)
            .await
            .map(ApiBody)
            .map_err(|e| body_error(&e))
    }
}

/// A path that did not extract: a segment that is not UTF-8 once
/// percent-decoded, or that does not parse as the route expects.
pub fn path_error(e: &PathRejection) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidPath,
        format!("the request path is not valid: {}", e.body_text()),
    )
}

/// A query string that did not extract.
pub fn query_error(e: &QueryRejection) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidQuery,
        format!("the query string is not valid: {}", e.body_text()),
    )
}

/// A body that could not be read: too large, or cut off.
pub fn body_error(e: &BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ::metrics::counter!(crate::metrics::BODIES_REFUSED, "reason" => "read").increment(1);
        ApiError::new(ErrorCode::BodyTooLarge, e.body_text())
    } else {
        ApiError::new(ErrorCode::InvalidBody, e.body_text())
    }
}

/// Middleware bounding every request body to `limit` bytes: a declared
/// `Content-Length` above it is refused before a byte is read (so a client
/// that sent `Expect: 100-continue` is never told to go on), and a body that
/// grows past it while being read fails its handler's read with `413`.
pub async fn limit_body(limit: u64, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && length > limit
    {
        ::metrics::counter!(crate::metrics::BODIES_REFUSED, "reason" => "declared").increment(1);
        return too_large(length, limit).into_response();
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let request =
        request.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    next.run(request).await
}

fn too_large(length: u64, limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::BodyTooLarge,
        format!("the request body is {length} bytes; at most {limit} are accepted"),
    )
}
