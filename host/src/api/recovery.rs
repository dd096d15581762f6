//! Recovery for operators (admins only):
//!
//! - `POST /v1/admin/restores` `{"tenants", "record_types"?, "at", "dry_run"?}`:
//!   restore chosen tenants to an instant (an RFC 3339 time, or a sequence
//!   number of their realm's change log); a dry run says what would change
//! - `GET  /v1/admin/restores`, `GET /v1/admin/restores/{id}`
//! - `POST /v1/admin/restores/{id}/undo` `{"dry_run"?}`: back to its restore points
//! - `POST /v1/admin/erasures` `{"tenant", "reason"?}`: propose erasing a tenant
//! - `GET  /v1/admin/erasures`, `GET /v1/admin/erasures/{id}`
//! - `POST /v1/admin/erasures/{id}/approve`: another admin approves; the
//!   tenant is erased and the report answered
//! - `GET  /v1/admin/backups`: how far each realm is backed up, the last verification
//! - `POST /v1/admin/backups/verify`: verify every backup file now
//! - `GET  /v1/admin/audit?after=N&limit=M`: the audit log

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use serde::Deserialize;

use super::answers::{AuditAnswer, AuditList, BackupStatus, ErasureList, RealmBackup, RestoreList};
use super::auth::who;
use crate::access::Caller;
use crate::app::App;
use crate::recovery::{Admin, Engine, Erasure, RecoveryError, Restore, RestoreRequest};
use crate::web::extract::{ApiBody, ApiPath, ApiQuery};
use crate::web::{ApiError, ErrorCode};

type Answer<T> = Result<Json<T>, ApiError>;

fn engine(app: &App) -> Result<Arc<Engine>, ApiError> {
    app.service
        .recovery
        .get()
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the recovery engine is not set up"))
}

/// Runs `f` with the recovery engine on the blocking pool.
async fn blocking<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&Engine) -> Result<T, RecoveryError> + Send + 'static,
) -> Result<T, ApiError> {
    let engine = engine(app)?;
    match tokio::task::spawn_blocking(move || f(&engine)).await {
        Ok(result) => result.map_err(refused),
        Err(e) => {
            tracing::error!(error = %e, "a restore task failed");
            Err(ApiError::new(
                ErrorCode::Internal,
                "the server hit an internal error; details are in its log",
            ))
        }
    }
}

pub(super) async fn restore(
    State(app): State<Arc<App>>,
    caller: Option<Extension<Caller>>,
    ApiBody(body): ApiBody,
) -> Answer<Restore> {
    let request: RestoreRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRestore,
            format!(
                "expected {{\"tenants\": [...], \"record_types\"?: [...], \"at\": \"RFC 3339 time or sequence number\", \"dry_run\"?: bool}}: {e}"
            ),
        )
    })?;
    let by = who(caller.as_deref());
    blocking(&app, move |r| r.run(&request, &by))
        .await
        .map(Json)
}

pub(super) async fn restores(State(app): State<Arc<App>>) -> Answer<RestoreList> {
    let restores = blocking(&app, Engine::list).await?;
    Ok(Json(RestoreList { restores }))
}

pub(super) async fn show(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
) -> Answer<Restore> {
    blocking(&app, move |r| r.get(&id)).await.map(Json)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UndoRequest {
    #[serde(default)]
    dry_run: bool,
}

pub(super) async fn undo(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
    caller: Option<Extension<Caller>>,
    ApiBody(body): ApiBody,
) -> Answer<Restore> {
    let request: UndoRequest = if body.is_empty() {
        UndoRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidRestore,
                format!("expected {{\"dry_run\"?: bool}} or no body: {e}"),
            )
        })?
    };
    let by = who(caller.as_deref());
    blocking(&app, move |r| r.undo(&id, &by, request.dry_run))
        .await
        .map(Json)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposeRequest {
    tenant: String,
    #[serde(default)]
    reason: Option<String>,
}

/// The admin `caller` proved to be.
fn admin(caller: Option<&Caller>) -> Admin {
    match caller {
        Some(Caller::Service { issuer, subject }) => Admin {
            issuer: Some(issuer.clone()),
            subject: Some(subject.clone()),
        },
        Some(Caller::Insecure) | None => Admin {
            issuer: None,
            subject: None,
        },
    }
}

pub(super) async fn propose_erasure(
    State(app): State<Arc<App>>,
    caller: Option<Extension<Caller>>,
    ApiBody(body): ApiBody,
) -> Answer<Erasure> {
    let request: ProposeRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidBody,
            format!("expected {{\"tenant\": \"...\", \"reason\"?: \"...\"}}: {e}"),
        )
    })?;
    let by = admin(caller.as_deref());
    blocking(&app, move |r| {
        r.propose_erasure(&request.tenant, request.reason, by)
    })
    .await
    .map(Json)
}

pub(super) async fn erasures(State(app): State<Arc<App>>) -> Answer<ErasureList> {
    let erasures = blocking(&app, Engine::erasures).await?;
    Ok(Json(ErasureList { erasures }))
}

pub(super) async fn erasure(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
) -> Answer<Erasure> {
    blocking(&app, move |r| r.erasure(&id)).await.map(Json)
}

pub(super) async fn approve_erasure(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
    caller: Option<Extension<Caller>>,
) -> Answer<Erasure> {
    let by = admin(caller.as_deref());
    blocking(&app, move |r| r.approve_erasure(&id, by))
        .await
        .map(Json)
}

pub(super) async fn backups(State(app): State<Arc<App>>) -> Answer<BackupStatus> {
    let Some(backups) = app.service.backups.clone() else {
        return Err(not_configured());
    };
    let realms = app.service.realms.clone();
    let status = super::store_op(move || {
        let mut out = Vec::new();
        for realm in realms.served() {
            let Some(shipped) = backups.shipped(&realm.name) else {
                continue;
            };
            let last = realm.stores.records.last_seq()?;
            out.push(RealmBackup {
                realm: realm.name.clone(),
                shipped_seq: shipped,
                last_seq: last,
                lag_changes: last.saturating_sub(shipped),
            });
        }
        Ok(BackupStatus {
            target: backups.target.describe().to_owned(),
            realms: out,
            verifications: backups.reports(),
        })
    })
    .await?;
    Ok(Json(status))
}

pub(super) async fn verify(State(app): State<Arc<App>>) -> Answer<BackupStatus> {
    let Some(taken) = app.service.backups.clone() else {
        return Err(not_configured());
    };
    let handle = tokio::runtime::Handle::current();
    let verified = tokio::task::spawn_blocking(move || taken.verify(&handle)).await;
    match verified {
        Ok(Ok(_)) => backups(State(app)).await,
        Ok(Err(e)) => Err(refused(e.into())),
        Err(e) => {
            tracing::error!(error = %e, "a verification task failed");
            Err(ApiError::new(
                ErrorCode::Internal,
                "the verification failed; details are in the log",
            ))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

/// The most audit entries one answer holds.
const MAX_AUDIT_ENTRIES: usize = 1_000;

pub(super) async fn audit(
    State(app): State<Arc<App>>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Answer<AuditList> {
    let store = app.service.realms.directory.recovery().clone();
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_AUDIT_ENTRIES);
    let rows = super::store_op(move || store.audit(query.after, limit)).await?;
    Ok(Json(AuditList {
        entries: rows
            .into_iter()
            .map(|row| AuditAnswer {
                id: row.id,
                at: crate::tenancy::migration::rfc3339(row.at_ms),
                entry: serde_json::from_str(&row.entry)
                    .unwrap_or(serde_json::Value::String(row.entry)),
            })
            .collect(),
    }))
}

fn not_configured() -> ApiError {
    ApiError::new(
        ErrorCode::BackupsNotConfigured,
        "this node takes no backups: configure [backup] (see the README)",
    )
}

/// A refused or failed recovery operation as the API answers it.
fn refused(e: RecoveryError) -> ApiError {
    let code = match &e {
        RecoveryError::Store(_) => {
            return ApiError::new(
                ErrorCode::StoreUnavailable,
                format!("the store failed: {e}; try again"),
            )
            .retry_after(1);
        }
        RecoveryError::Invalid(_) => ErrorCode::InvalidRestore,
        RecoveryError::Migrating { .. } => ErrorCode::TenantMigrating,
        RecoveryError::Held { .. } => ErrorCode::TenantRestoring,
        RecoveryError::Unknown(_) => ErrorCode::UnknownOperation,
        RecoveryError::State(_) => ErrorCode::OperationState,
        RecoveryError::SameAdmin(_) => ErrorCode::SameAdmin,
        RecoveryError::Expired(_) => ErrorCode::ErasureExpired,
        RecoveryError::OutOfRange(_) => ErrorCode::RestoreOutOfRange,
        RecoveryError::Corrupt(_) => ErrorCode::BackupCorrupt,
        RecoveryError::Backup(_) => ErrorCode::BackupUnavailable,
    };
    ApiError::new(code, e.to_string())
}
