//! Who is calling, and whether they may: every handler but health and metrics
//! starts here.
//!
//! [`authenticate`] turns the `Authorization` header into a [`Caller`] (or a
//! `401` with a `WWW-Authenticate` challenge and a code naming the check that
//! failed); [`require`] then asks the configuration's grants ([`crate::access`])
//! and answers `403` naming the grant that is missing. Without `[auth]`, in the
//! explicit `--insecure-no-auth` mode, every caller is
//! [`Caller::Insecure`] and may do everything.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::access::{Action, Caller};
use crate::app::App;
use crate::auth::{AuthError, CallKind};
use crate::web::extract::ApiPath;
use crate::web::{ApiError, ErrorCode};

/// The caller of a request that does `kind`.
pub(super) async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    kind: CallKind,
) -> Result<Caller, ApiError> {
    let Some(authenticator) = app.service.authenticator() else {
        return Ok(Caller::Insecure);
    };
    let authorization = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
    authenticator
        .authenticate(authorization, kind)
        .await
        .map_err(|e| {
            metrics::counter!(crate::metrics::AUTH_FAILURES, "reason" => code(&e).as_str())
                .increment(1);
            refusal(&e)
        })
}

/// Refuses with `403` unless `caller` may do `action`.
pub(super) fn require(app: &App, caller: &Caller, action: Action<'_>) -> Result<(), ApiError> {
    if crate::access::permits(&app.service.config(), caller, action) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::Forbidden,
        format!(
            "{} may not {action}",
            caller.issuer().unwrap_or("this caller")
        ),
    ))
}

/// [`authenticate`] then [`require`].
pub(super) async fn authorize(
    app: &App,
    headers: &HeaderMap,
    kind: CallKind,
    action: Action<'_>,
) -> Result<Caller, ApiError> {
    let caller = authenticate(app, headers, kind).await?;
    require(app, &caller, action)?;
    Ok(caller)
}

/// Middleware of the ingestion routes: the caller must publish to `{source}`.
pub(super) async fn publishers_only(
    State(app): State<Arc<App>>,
    ApiPath(params): ApiPath<HashMap<String, String>>,
    request: Request,
    next: Next,
) -> Response {
    let source = params.get("source").map_or("", String::as_str);
    match authorize(
        &app,
        request.headers(),
        CallKind::Mutate,
        Action::Publish(source),
    )
    .await
    {
        Ok(_) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// Middleware of the admin routes: the caller must be an admin. The
/// caller rides on with the request, for the handlers that record who
/// asked (the audit log, maker-checker approvals).
pub(super) async fn admins_only(
    State(app): State<Arc<App>>,
    mut request: Request,
    next: Next,
) -> Response {
    match authorize(
        &app,
        request.headers(),
        CallKind::Mutate,
        Action::Administer,
    )
    .await
    {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// Who `caller` is, as the audit log records it.
pub(super) fn who(caller: Option<&Caller>) -> String {
    match caller {
        Some(Caller::Service { issuer, subject }) if issuer == subject => issuer.clone(),
        Some(Caller::Service { issuer, subject }) => format!("{issuer} ({subject})"),
        Some(Caller::Insecure) | None => "anonymous (--insecure-no-auth)".to_owned(),
    }
}

/// The answer to credentials that were not accepted.
fn refusal(e: &AuthError) -> ApiError {
    if *e == AuthError::KeyUnavailable {
        return ApiError::new(code(e), e.to_string()).retry_after(1);
    }
    let challenge = if *e == AuthError::Missing {
        "Bearer realm=\"droid\"".to_owned()
    } else {
        format!(
            "Bearer realm=\"droid\", error=\"invalid_token\", error_description=\"{}\"",
            code(e).as_str()
        )
    };
    ApiError::new(code(e), e.to_string()).challenge(challenge)
}

/// The stable code of each refusal.
fn code(e: &AuthError) -> ErrorCode {
    match e {
        AuthError::Missing => ErrorCode::MissingToken,
        AuthError::TooLarge => ErrorCode::TokenTooLarge,
        AuthError::Malformed(_) => ErrorCode::MalformedToken,
        AuthError::Algorithm => ErrorCode::UnsupportedAlgorithm,
        AuthError::Kid(_) => ErrorCode::InvalidKid,
        AuthError::KidIssuer => ErrorCode::KidIssuerMismatch,
        AuthError::UnknownKey => ErrorCode::UnknownKey,
        AuthError::UnknownIssuer => ErrorCode::UnknownIssuer,
        AuthError::KeyUnavailable => ErrorCode::KeyUnavailable,
        AuthError::Signature => ErrorCode::BadSignature,
        AuthError::Audience => ErrorCode::WrongAudience,
        AuthError::Expired => ErrorCode::TokenExpired,
        AuthError::NotYetValid => ErrorCode::TokenNotYetValid,
        AuthError::IssuedInFuture => ErrorCode::IssuedInFuture,
        AuthError::Lifetime => ErrorCode::LifetimeTooLong,
        AuthError::Claims(_) => ErrorCode::InvalidClaims,
        AuthError::Replayed => ErrorCode::ReplayedToken,
    }
}
