//! The one error type of the HTTP API: every failure leaves as JSON with a stable code.
//!
//! The body is `{"error": {"code": "...", "message": "..."}}`. Codes are part of the
//! API contract (consumers branch on them); messages are for people and may change.
//! Internal details (wasmtime backtraces, file paths) go to the log, not the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The stable error codes of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No record type of that name is configured.
    UnknownRecordType,
    /// The key breaks the key rules.
    InvalidKey,
    /// The tenant id breaks the tenant rules.
    InvalidTenant,
    /// The backing store has no record under the key.
    NotFound,
    /// The record type exists but is not served by this endpoint (an ingested type before ingestion lands).
    NotReadThrough,
    /// The backing store answered with a status outside the contract.
    BackingStoreError,
    /// The backing store could not be reached.
    BackingStoreUnavailable,
    /// The backing store did not answer in time.
    BackingStoreTimeout,
    /// The adapter tried to reach something outside its base URL.
    EgressDenied,
    /// The plugin reported an internal failure.
    PluginError,
    /// The plugin ran past its deadline.
    PluginTimeout,
    /// The plugin ran out of its memory allowance.
    PluginMemoryExhausted,
    /// The plugin trapped or panicked.
    PluginCrashed,
    /// The plugin returned something the host cannot use.
    PluginInvalidResult,
    /// Every plugin instance slot is in use.
    PluginCapacity,
    /// No route matches the request path.
    NoRoute,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// The record type's in-flight fetch limit is reached and nothing cached could be served.
    TooManyFetches,
    /// A batch asks for more keys (or events) than allowed.
    BatchTooLarge,
    /// The request body is larger than the server accepts.
    BodyTooLarge,
    /// The request body is not the JSON the endpoint expects.
    InvalidBody,
    /// The caller may not do this.
    Forbidden,
    /// No plugin of that name is loaded.
    UnknownPlugin,
    /// The plugin has no version answering to that reference.
    UnknownVersion,
    /// The reference names several versions.
    AmbiguousVersion,
    /// The plugin's state does not allow the change (nothing to promote, ...).
    PluginStateConflict,
    /// The configuration file was refused; the running configuration stays.
    ConfigRefused,
    /// No ingestion source of that name is configured.
    UnknownSource,
    /// The store failed; nothing was written.
    StoreUnavailable,
    /// The source is over its agreed ingestion rate.
    RateLimited,
    /// No open snapshot batch of that id.
    UnknownSnapshot,
    /// The snapshot batch's declared count or checksum does not match, or it expired.
    SnapshotRefused,
    /// No bearer token was sent.
    MissingToken,
    /// The token (or its header) is larger than allowed.
    TokenTooLarge,
    /// The token is not a JWT.
    MalformedToken,
    /// The token's algorithm is not an allowed asymmetric one.
    UnsupportedAlgorithm,
    /// The token's `kid` is missing or not a safe relative path.
    InvalidKid,
    /// The token's `kid` does not start with its issuer.
    KidIssuerMismatch,
    /// No key repository has the token's key.
    UnknownKey,
    /// The key repositories could not be reached in time.
    KeyUnavailable,
    /// The token's issuer is named by no grant, so its key is not looked up.
    UnknownIssuer,
    /// The token's signature does not verify.
    BadSignature,
    /// The token is for another audience.
    WrongAudience,
    /// The token has expired.
    TokenExpired,
    /// The token's `nbf` is ahead.
    TokenNotYetValid,
    /// The token's `iat` is ahead of this clock beyond the skew.
    IssuedInFuture,
    /// The token lives longer than an hour.
    LifetimeTooLong,
    /// A claim is missing or malformed.
    InvalidClaims,
    /// The token's `jti` was used before.
    ReplayedToken,
    /// The change feed's `since` is not a sequence number.
    InvalidSince,
    /// The change log no longer holds (or never held) the changes after `since`: resynchronise.
    SequenceExpired,
    /// The record type is read through, so it has no records to export.
    NotIngested,
    /// The plugin went past one of its record type's limits (record size,
    /// depth, changes per event or call, outbound requests per call).
    PluginLimitExceeded,
    /// The ingestion source has `max_in_flight` requests being transformed.
    SourceBusy,
    /// droid holds as many connections as it may, none of them idle.
    ServerBusy,
    /// A path segment is not valid (not UTF-8 once percent-decoded, ...).
    InvalidPath,
    /// The query string does not parse as the route expects.
    InvalidQuery,
    /// The request itself is malformed (its request line or headers).
    InvalidRequest,
    /// The host hit a bug; details are in its log.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order (so `code as usize` indexes it).
    pub const ALL: &[ErrorCode] = &[
        ErrorCode::UnknownRecordType,
        ErrorCode::InvalidKey,
        ErrorCode::InvalidTenant,
        ErrorCode::NotFound,
        ErrorCode::NotReadThrough,
        ErrorCode::BackingStoreError,
        ErrorCode::BackingStoreUnavailable,
        ErrorCode::BackingStoreTimeout,
        ErrorCode::EgressDenied,
        ErrorCode::PluginError,
        ErrorCode::PluginTimeout,
        ErrorCode::PluginMemoryExhausted,
        ErrorCode::PluginCrashed,
        ErrorCode::PluginInvalidResult,
        ErrorCode::PluginCapacity,
        ErrorCode::NoRoute,
        ErrorCode::MethodNotAllowed,
        ErrorCode::TooManyFetches,
        ErrorCode::BatchTooLarge,
        ErrorCode::BodyTooLarge,
        ErrorCode::InvalidBody,
        ErrorCode::Forbidden,
        ErrorCode::UnknownPlugin,
        ErrorCode::UnknownVersion,
        ErrorCode::AmbiguousVersion,
        ErrorCode::PluginStateConflict,
        ErrorCode::ConfigRefused,
        ErrorCode::UnknownSource,
        ErrorCode::StoreUnavailable,
        ErrorCode::RateLimited,
        ErrorCode::UnknownSnapshot,
        ErrorCode::SnapshotRefused,
        ErrorCode::MissingToken,
        ErrorCode::TokenTooLarge,
        ErrorCode::MalformedToken,
        ErrorCode::UnsupportedAlgorithm,
        ErrorCode::InvalidKid,
        ErrorCode::KidIssuerMismatch,
        ErrorCode::UnknownKey,
        ErrorCode::KeyUnavailable,
        ErrorCode::UnknownIssuer,
        ErrorCode::BadSignature,
        ErrorCode::WrongAudience,
        ErrorCode::TokenExpired,
        ErrorCode::TokenNotYetValid,
        ErrorCode::IssuedInFuture,
        ErrorCode::LifetimeTooLong,
        ErrorCode::InvalidClaims,
        ErrorCode::ReplayedToken,
        ErrorCode::InvalidSince,
        ErrorCode::SequenceExpired,
        ErrorCode::NotIngested,
        ErrorCode::PluginLimitExceeded,
        ErrorCode::SourceBusy,
        ErrorCode::ServerBusy,
        ErrorCode::InvalidPath,
        ErrorCode::InvalidQuery,
        ErrorCode::InvalidRequest,
        ErrorCode::Internal,
    ];

    /// The code as it appears in JSON bodies and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownRecordType => "unknown_record_type",
            ErrorCode::InvalidKey => "invalid_key",
            ErrorCode::InvalidTenant => "invalid_tenant",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotReadThrough => "not_read_through",
            ErrorCode::BackingStoreError => "backing_store_error",
            ErrorCode::BackingStoreUnavailable => "backing_store_unavailable",
            ErrorCode::BackingStoreTimeout => "backing_store_timeout",
            ErrorCode::EgressDenied => "egress_denied",
            ErrorCode::PluginError => "plugin_error",
            ErrorCode::PluginTimeout => "plugin_timeout",
            ErrorCode::PluginMemoryExhausted => "plugin_memory_exhausted",
            ErrorCode::PluginCrashed => "plugin_crashed",
            ErrorCode::PluginInvalidResult => "plugin_invalid_result",
            ErrorCode::PluginCapacity => "plugin_capacity",
            ErrorCode::NoRoute => "no_route",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::TooManyFetches => "too_many_fetches",
            ErrorCode::BatchTooLarge => "batch_too_large",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::UnknownPlugin => "unknown_plugin",
            ErrorCode::UnknownVersion => "unknown_version",
            ErrorCode::AmbiguousVersion => "ambiguous_version",
            ErrorCode::PluginStateConflict => "plugin_state_conflict",
            ErrorCode::ConfigRefused => "config_refused",
            ErrorCode::UnknownSource => "unknown_source",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UnknownSnapshot => "unknown_snapshot",
            ErrorCode::SnapshotRefused => "snapshot_refused",
            ErrorCode::MissingToken => "missing_token",
            ErrorCode::TokenTooLarge => "token_too_large",
            ErrorCode::MalformedToken => "malformed_token",
            ErrorCode::UnsupportedAlgorithm => "unsupported_algorithm",
            ErrorCode::InvalidKid => "invalid_kid",
            ErrorCode::KidIssuerMismatch => "kid_issuer_mismatch",
            ErrorCode::UnknownKey => "unknown_key",
            ErrorCode::KeyUnavailable => "key_unavailable",
            ErrorCode::UnknownIssuer => "unknown_issuer",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::WrongAudience => "wrong_audience",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::TokenNotYetValid => "token_not_yet_valid",
            ErrorCode::IssuedInFuture => "issued_in_future",
            ErrorCode::LifetimeTooLong => "lifetime_too_long",
            ErrorCode::InvalidClaims => "invalid_claims",
            ErrorCode::ReplayedToken => "replayed_token",
            ErrorCode::InvalidSince => "invalid_since",
            ErrorCode::SequenceExpired => "sequence_expired",
            ErrorCode::NotIngested => "not_ingested",
            ErrorCode::PluginLimitExceeded => "plugin_limit_exceeded",
            ErrorCode::SourceBusy => "source_busy",
            ErrorCode::ServerBusy => "server_busy",
            ErrorCode::InvalidPath => "invalid_path",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Internal => "internal",
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An API failure, ready to be turned into a response.
#[derive(Debug, Clone)]
#[must_use]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
    /// Seconds after which retrying makes sense, sent as `Retry-After`.
    pub retry_after: Option<u32>,
    /// The `WWW-Authenticate` challenge of a `401`.
    pub challenge: Option<String>,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            challenge: None,
        }
    }

    /// The JSON body alone, for embedding in batch answers.
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code.as_str(), "message": self.message })
    }

    /// Adds a `WWW-Authenticate` header.
    pub fn challenge(mut self, challenge: String) -> Self {
        self.challenge = Some(challenge);
        self
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: ErrorCode,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::try_from(c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn all_lists_every_code_in_declaration_order() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i, "{code:?}");
        }
        assert_eq!(ErrorCode::ALL.last(), Some(&ErrorCode::Internal));
    }
}
