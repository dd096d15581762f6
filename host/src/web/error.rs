//! The one error type of the HTTP API: every failure leaves as JSON with a stable code.
//!
//! The body is `{"error": {"code": "...", "message": "..."}}`. Codes are part of the
//! API contract (consumers branch on them); messages are for people and may change.
//! Internal details (wasmtime backtraces, file paths) go to the log, not the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Declares the error codes once: each with its wire name and the one HTTP
/// status it is always answered with.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $code:ident = ($wire:literal, $status:ident),)*) => {
        /// The stable error codes of the API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $code,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$code,)*];

            /// The code as it appears in JSON bodies and metric labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$code => $wire,)*
                }
            }

            /// The HTTP status a refusal with this code is answered with.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$code => StatusCode::$status,)*
                }
            }
        }
    };
}

error_codes! {
    /// No record type of that name is configured.
    UnknownRecordType = ("unknown_record_type", NOT_FOUND),
    /// The key breaks the key rules.
    InvalidKey = ("invalid_key", BAD_REQUEST),
    /// The tenant id breaks the tenant rules.
    InvalidTenant = ("invalid_tenant", BAD_REQUEST),
    /// The backing store has no record under the key.
    NotFound = ("not_found", NOT_FOUND),
    /// The record type exists but is not served by this endpoint (an ingested type before ingestion lands).
    NotReadThrough = ("not_read_through", NOT_FOUND),
    /// The backing store answered with a status outside the contract.
    BackingStoreError = ("backing_store_error", BAD_GATEWAY),
    /// The backing store could not be reached.
    BackingStoreUnavailable = ("backing_store_unavailable", BAD_GATEWAY),
    /// The backing store did not answer in time.
    BackingStoreTimeout = ("backing_store_timeout", GATEWAY_TIMEOUT),
    /// The adapter tried to reach something outside its base URL.
    EgressDenied = ("egress_denied", BAD_GATEWAY),
    /// The plugin reported an internal failure.
    PluginError = ("plugin_error", BAD_GATEWAY),
    /// The plugin ran past its deadline.
    PluginTimeout = ("plugin_timeout", GATEWAY_TIMEOUT),
    /// The plugin ran out of its memory allowance.
    PluginMemoryExhausted = ("plugin_memory_exhausted", BAD_GATEWAY),
    /// The plugin trapped or panicked.
    PluginCrashed = ("plugin_crashed", BAD_GATEWAY),
    /// The plugin returned something the host cannot use.
    PluginInvalidResult = ("plugin_invalid_result", BAD_GATEWAY),
    /// Every plugin instance slot is in use.
    PluginCapacity = ("plugin_capacity", SERVICE_UNAVAILABLE),
    /// No route matches the request path.
    NoRoute = ("no_route", NOT_FOUND),
    /// The route exists but not for this method.
    MethodNotAllowed = ("method_not_allowed", METHOD_NOT_ALLOWED),
    /// The record type's in-flight fetch limit is reached and nothing cached could be served.
    TooManyFetches = ("too_many_fetches", TOO_MANY_REQUESTS),
    /// A batch asks for more keys (or events) than allowed.
    BatchTooLarge = ("batch_too_large", PAYLOAD_TOO_LARGE),
    /// The request body is larger than the server accepts.
    BodyTooLarge = ("body_too_large", PAYLOAD_TOO_LARGE),
    /// The request body is not the JSON the endpoint expects.
    InvalidBody = ("invalid_body", BAD_REQUEST),
    /// The caller may not do this.
    Forbidden = ("forbidden", FORBIDDEN),
    /// No plugin of that name is loaded.
    UnknownPlugin = ("unknown_plugin", NOT_FOUND),
    /// The plugin has no version answering to that reference.
    UnknownVersion = ("unknown_version", NOT_FOUND),
    /// The reference names several versions.
    AmbiguousVersion = ("ambiguous_version", CONFLICT),
    /// The plugin's state does not allow the change (nothing to promote, ...).
    PluginStateConflict = ("plugin_state_conflict", CONFLICT),
    /// A pushed plugin file did not load (trust, world, compile); nothing was kept.
    PluginRefused = ("plugin_refused", UNPROCESSABLE_ENTITY),
    /// A pushed file's name is not `NAME.wasm` or `NAME@VERSION.wasm`.
    InvalidPluginFile = ("invalid_plugin_file", BAD_REQUEST),
    /// The configuration file was refused; the running configuration stays.
    ConfigRefused = ("config_refused", UNPROCESSABLE_ENTITY),
    /// No ingestion source of that name is configured.
    UnknownSource = ("unknown_source", NOT_FOUND),
    /// The error id is not one droid still holds (malformed, or dropped from
    /// the journal; the log keeps every one).
    UnknownErrorId = ("unknown_error_id", NOT_FOUND),
    /// The store failed; nothing was written.
    StoreUnavailable = ("store_unavailable", SERVICE_UNAVAILABLE),
    /// The source is over its agreed ingestion rate.
    RateLimited = ("rate_limited", TOO_MANY_REQUESTS),
    /// No open snapshot batch of that id.
    UnknownSnapshot = ("unknown_snapshot", NOT_FOUND),
    /// The snapshot batch's declared count or checksum does not match, or it expired.
    SnapshotRefused = ("snapshot_refused", CONFLICT),
    /// No bearer token was sent.
    MissingToken = ("missing_token", UNAUTHORIZED),
    /// The token (or its header) is larger than allowed.
    TokenTooLarge = ("token_too_large", UNAUTHORIZED),
    /// The token is not a JWT.
    MalformedToken = ("malformed_token", UNAUTHORIZED),
    /// The token's algorithm is not an allowed asymmetric one.
    UnsupportedAlgorithm = ("unsupported_algorithm", UNAUTHORIZED),
    /// The token's `kid` is missing or not a safe relative path.
    InvalidKid = ("invalid_kid", UNAUTHORIZED),
    /// The token's `kid` does not start with its issuer.
    KidIssuerMismatch = ("kid_issuer_mismatch", UNAUTHORIZED),
    /// No key repository has the token's key.
    UnknownKey = ("unknown_key", UNAUTHORIZED),
    /// The key repositories could not be reached in time.
    KeyUnavailable = ("key_unavailable", SERVICE_UNAVAILABLE),
    /// The token's issuer is named by no grant, so its key is not looked up.
    UnknownIssuer = ("unknown_issuer", UNAUTHORIZED),
    /// The token's signature does not verify.
    BadSignature = ("bad_signature", UNAUTHORIZED),
    /// The token is for another audience.
    WrongAudience = ("wrong_audience", UNAUTHORIZED),
    /// The token has expired.
    TokenExpired = ("token_expired", UNAUTHORIZED),
    /// The token's `nbf` is ahead.
    TokenNotYetValid = ("token_not_yet_valid", UNAUTHORIZED),
    /// The token's `iat` is ahead of this clock beyond the skew.
    IssuedInFuture = ("issued_in_future", UNAUTHORIZED),
    /// The token lives longer than an hour.
    LifetimeTooLong = ("lifetime_too_long", UNAUTHORIZED),
    /// A claim is missing or malformed.
    InvalidClaims = ("invalid_claims", UNAUTHORIZED),
    /// The token's `jti` was used before.
    ReplayedToken = ("replayed_token", UNAUTHORIZED),
    /// The change feed's `since` is not a sequence number.
    InvalidSince = ("invalid_since", BAD_REQUEST),
    /// The change log no longer holds (or never held) the changes after `since`: resynchronise.
    SequenceExpired = ("sequence_expired", GONE),
    /// The record type is read through, so it has no records to export.
    NotIngested = ("not_ingested", NOT_FOUND),
    /// The plugin went past one of its record type's limits (record size,
    /// depth, changes per event or call, outbound requests per call).
    PluginLimitExceeded = ("plugin_limit_exceeded", BAD_GATEWAY),
    /// The ingestion source has `max_in_flight` requests being transformed.
    SourceBusy = ("source_busy", TOO_MANY_REQUESTS),
    /// droid holds as many connections as it may, none of them idle.
    ServerBusy = ("server_busy", SERVICE_UNAVAILABLE),
    /// A path segment is not valid (not UTF-8 once percent-decoded, ...).
    InvalidPath = ("invalid_path", BAD_REQUEST),
    /// The query string does not parse as the route expects.
    InvalidQuery = ("invalid_query", BAD_REQUEST),
    /// The request itself is malformed (its request line or headers).
    InvalidRequest = ("invalid_request", BAD_REQUEST),
    /// The tenant's data lives in a realm this node does not serve: ask the
    /// nodes at `realm_url`.
    TenantElsewhere = ("tenant_elsewhere", MISDIRECTED_REQUEST),
    /// The tenant is migrating between realms; its writes are refused until
    /// the migration ends (see `Retry-After`).
    TenantMigrating = ("tenant_migrating", CONFLICT),
    /// A restore of the tenant is under way; its writes are refused until
    /// it ends (see `Retry-After`).
    TenantRestoring = ("tenant_restoring", CONFLICT),
    /// The tenant is being erased; its writes are refused until it ends.
    TenantErasing = ("tenant_erasing", CONFLICT),
    /// No realm of that name is declared.
    UnknownRealm = ("unknown_realm", UNPROCESSABLE_ENTITY),
    /// The tenant already lives in the realm named.
    SameRealm = ("same_realm", CONFLICT),
    /// The tenant has a migration that has not ended.
    TenantAlreadyMigrating = ("tenant_already_migrating", CONFLICT),
    /// `tenancy.max_concurrent_migrations` are under way.
    TooManyMigrations = ("too_many_migrations", CONFLICT),
    /// A migration window that is not one (times not RFC 3339, end before start).
    InvalidWindow = ("invalid_window", BAD_REQUEST),
    /// The window ends in the past.
    WindowInPast = ("window_in_past", UNPROCESSABLE_ENTITY),
    /// No migration of that id.
    UnknownMigration = ("unknown_migration", NOT_FOUND),
    /// The request does not repeat the schedule it names.
    MigrationMismatch = ("migration_mismatch", CONFLICT),
    /// The step does not apply in the migration's state (or another node took it first).
    MigrationState = ("migration_state", CONFLICT),
    /// The migration's window is not open.
    OutsideWindow = ("outside_window", CONFLICT),
    /// The tenant has data in another realm: pinning would strand it; migrate instead.
    TenantHasData = ("tenant_has_data", CONFLICT),
    /// A restore request that is not one (no tenants, a bad instant).
    InvalidRestore = ("invalid_restore", BAD_REQUEST),
    /// No backup, nor the change log, reaches back to the instant asked for.
    RestoreOutOfRange = ("restore_out_of_range", UNPROCESSABLE_ENTITY),
    /// A backup file the restore needs is damaged; nothing was written.
    BackupCorrupt = ("backup_corrupt", UNPROCESSABLE_ENTITY),
    /// The backup target cannot be read or written now.
    BackupUnavailable = ("backup_unavailable", SERVICE_UNAVAILABLE),
    /// `[backup]` is not configured on this node.
    BackupsNotConfigured = ("backups_not_configured", CONFLICT),
    /// No restore or erasure of that id.
    UnknownOperation = ("unknown_operation", NOT_FOUND),
    /// The step does not apply to the restore or erasure as it stands.
    OperationState = ("operation_state", CONFLICT),
    /// An erasure must be approved by another admin than its proposer (a
    /// token of another issuer).
    SameAdmin = ("same_admin", FORBIDDEN),
    /// The erasure proposal expired unapproved.
    ErasureExpired = ("erasure_expired", CONFLICT),
    /// The host hit a bug; details are in its log.
    Internal = ("internal", INTERNAL_SERVER_ERROR),
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
    /// For `tenant_elsewhere`: the realm and its `public_url`.
    pub realm: Option<(String, Option<String>)>,
}

impl ApiError {
    /// An error with `code` (and so its status) and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: code.status(),
            code,
            message: message.into(),
            retry_after: None,
            challenge: None,
            realm: None,
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
    /// Names the realm the client should ask instead, and where.
    pub fn realm(mut self, realm: String, url: Option<String>) -> Self {
        self.realm = Some((realm, url));
        self
    }

    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

/// A store failure: nothing was written, the client may send again. The
/// cause goes to the log, not the answer.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "a store operation failed");
        ApiError::new(
            ErrorCode::StoreUnavailable,
            "the store failed; nothing was written, try again",
        )
        .retry_after(1)
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
    #[serde(skip_serializing_if = "Option::is_none")]
    realm: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    realm_url: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                realm: self.realm.as_ref().map(|(r, _)| r.as_str()),
                realm_url: self.realm.as_ref().and_then(|(_, u)| u.as_deref()),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(url) = self
            .realm
            .as_ref()
            .and_then(|(_, u)| u.as_deref())
            .and_then(|u| HeaderValue::try_from(u).ok())
        {
            response.headers_mut().insert("droid-realm-url", url);
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
