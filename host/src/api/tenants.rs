//! The tenant directory and realm migrations, for operators and for the
//! hooks a platform's migration service calls (admins only):
//!
//! - `GET  /v1/admin/tenants`: the realms and every pin
//! - `GET  /v1/admin/tenants/{tenant}`: where a tenant lives, its migrations
//! - `PUT  /v1/admin/tenants/{tenant}` `{"realm"}`: pin a tenant (refused
//!   when its data is in another realm: migrate it instead)
//! - `GET  /v1/admin/migrations`: every migration
//! - `POST /v1/admin/migrations/schedule` `{"tenant", "target_realm", "start", "end"}`
//! - `POST /v1/admin/migrations/start` `{"migration_id", ...}` (what it
//!   repeats of the schedule must match)
//! - `GET  /v1/admin/migrations/status?migration_id=...`
//! - `POST /v1/admin/migrations/commit` `{"migration_id", ...}`
//! - `POST /v1/admin/migrations/rollback` `{"migration_id", ...}`

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::answers::{
    MigrationAnswer, MigrationList, RealmAnswer, TenantAnswer, TenantList, TenantPin,
};
use crate::app::App;
use crate::key::TenantId;
use crate::tenancy::MigrationError;
use crate::tenancy::lifecycle::{self, StepRequest};
use crate::web::extract::{ApiBody, ApiPath, ApiQuery};
use crate::web::{ApiError, ErrorCode};

type Answer<T> = Result<Json<T>, ApiError>;

pub(super) async fn list(State(app): State<Arc<App>>) -> Answer<TenantList> {
    let realms = app.service.realms.clone();
    super::store_op(move || realms.directory.refresh()).await?;
    let realms = &app.service.realms;
    let config = app.service.config();
    Ok(Json(TenantList {
        realms: realms
            .all()
            .map(|r| RealmAnswer {
                name: r.name.clone(),
                public_url: r.public_url.as_ref().map(ToString::to_string),
                served: r.served,
                default: r.name == config.tenancy.default_realm,
            })
            .collect(),
        tenants: realms
            .directory
            .pins()
            .into_iter()
            .map(|(tenant, realm)| TenantPin { tenant, realm })
            .collect(),
    }))
}

pub(super) async fn show(
    State(app): State<Arc<App>>,
    ApiPath(tenant): ApiPath<String>,
) -> Answer<TenantAnswer> {
    checked_tenant(&tenant)?;
    let realms = app.service.realms.clone();
    super::store_op(move || realms.directory.refresh()).await?;
    Ok(Json(where_is(&app, &tenant)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PinRequest {
    realm: String,
}

pub(super) async fn pin(
    State(app): State<Arc<App>>,
    ApiPath(tenant): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Answer<TenantAnswer> {
    checked_tenant(&tenant)?;
    let request: PinRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidBody,
            format!("expected a JSON body such as {{\"realm\": \"eu\"}}: {e}"),
        )
    })?;
    let realms = app.service.realms.clone();
    if realms.get(&request.realm).is_none() {
        return Err(refused(MigrationError::UnknownRealm(request.realm)));
    }
    let types: Vec<String> = app.service.config().record_types.keys().cloned().collect();
    let (who, realm) = (tenant.clone(), request.realm.clone());
    let outcome = super::store_op(move || {
        realms.directory.refresh()?;
        if let Some(open) = realms.directory.open_migrations_of(&who).first() {
            return Ok(Err(MigrationError::AlreadyMigrating {
                tenant: who,
                id: open.id.clone(),
                state: open.state.as_str(),
            }));
        }
        // Data elsewhere would be stranded: only a migration moves it.
        for other in realms.all().filter(|r| r.name != realm) {
            for record_type in &types {
                if !other
                    .stores
                    .records
                    .tenant_records(record_type, &who, None, 1)?
                    .is_empty()
                {
                    return Ok(Ok(Some(other.name.clone())));
                }
            }
        }
        realms.directory.pin(&who, &realm)?;
        Ok(Ok(None))
    })
    .await?;
    match outcome.map_err(refused)? {
        Some(holder) => Err(ApiError::new(
            ErrorCode::TenantHasData,
            format!(
                "tenant {tenant:?} has records in realm {holder:?}: pinning it to {:?} would strand them; migrate it instead (droid tenants migrate schedule)",
                request.realm
            ),
        )),
        None => Ok(Json(where_is(&app, &tenant))),
    }
}

pub(super) async fn migrations(State(app): State<Arc<App>>) -> Answer<MigrationList> {
    let realms = app.service.realms.clone();
    super::store_op(move || realms.directory.refresh()).await?;
    Ok(Json(MigrationList {
        migrations: app
            .service
            .realms
            .directory
            .migrations()
            .iter()
            .map(|(m, _)| MigrationAnswer::from(m))
            .collect(),
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct StatusQuery {
    migration_id: Option<String>,
}

pub(super) async fn status(
    State(app): State<Arc<App>>,
    ApiPath(step): ApiPath<String>,
    ApiQuery(query): ApiQuery<StatusQuery>,
) -> Answer<MigrationAnswer> {
    if step != "status" {
        return Err(ApiError::new(
            ErrorCode::NoRoute,
            format!("GET applies to /v1/admin/migrations/status only; {step:?} takes POST"),
        ));
    }
    let request = StepRequest {
        migration_id: query.migration_id,
        ..StepRequest::default()
    };
    let realms = app.service.realms.clone();
    let (migration, _) = super::store_op(move || Ok(lifecycle::named(&realms, &request)))
        .await?
        .map_err(refused)?;
    Ok(Json(MigrationAnswer::from(&migration)))
}

pub(super) async fn step(
    State(app): State<Arc<App>>,
    ApiPath(step): ApiPath<String>,
    caller: Option<axum::extract::Extension<crate::access::Caller>>,
    ApiBody(body): ApiBody,
) -> Answer<MigrationAnswer> {
    let by = super::auth::who(caller.as_deref());
    let request: StepRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidBody,
            format!(
                "expected a JSON body such as {{\"migration_id\": \"m-...\"}} (schedule: {{\"tenant\", \"target_realm\", \"start\", \"end\"}}, times in RFC 3339): {e}"
            ),
        )
    })?;
    if step == "schedule"
        && let Some(tenant) = &request.tenant
    {
        checked_tenant(tenant)?;
    }
    let realms = app.service.realms.clone();
    let config = app.service.config();
    let done = super::store_op(move || {
        let done = match step.as_str() {
            "schedule" => lifecycle::schedule(&realms, &config.tenancy, &request),
            "start" => lifecycle::start(&realms, &request),
            "commit" => lifecycle::commit(&realms, &request),
            "rollback" => lifecycle::rollback(&realms, &request),
            other => Err(MigrationError::Unknown(format!(
                "{other} (the steps are schedule, start, commit and rollback)"
            ))),
        };
        // Commits and rollbacks destroy data at one end: they are audited,
        // refused ones too.
        if matches!(step.as_str(), "commit" | "rollback") {
            let action = format!("migration_{step}");
            let id = request.migration_id.clone().unwrap_or_default();
            crate::recovery::audit::append(
                realms.directory.recovery().as_ref(),
                &crate::recovery::audit::Entry {
                    action: &action,
                    id: &id,
                    by: &by,
                    outcome: if done.is_ok() { "accepted" } else { "refused" },
                    details: match &done {
                        Ok(m) => serde_json::json!({
                            "tenant": m.tenant,
                            "source_realm": m.source_realm,
                            "target_realm": m.target_realm,
                        }),
                        Err(e) => serde_json::json!({ "error": e.to_string() }),
                    },
                },
            );
        }
        Ok(done)
    })
    .await?
    .map_err(refused)?;
    app.service.wake_tenancy();
    Ok(Json(MigrationAnswer::from(&done)))
}

/// Where `tenant` lives, as the directory this node holds says.
fn where_is(app: &App, tenant: &str) -> TenantAnswer {
    let realms = &app.service.realms;
    let realm = realms.of_tenant(tenant);
    let mut migrations: Vec<MigrationAnswer> = realms
        .directory
        .migrations()
        .iter()
        .filter(|(m, _)| m.tenant == tenant)
        .map(|(m, _)| MigrationAnswer::from(m))
        .collect();
    migrations.truncate(100);
    TenantAnswer {
        tenant: tenant.to_owned(),
        realm: realm.name.clone(),
        pinned: realms.directory.declared() && realms.directory.is_pinned(tenant),
        served_here: realm.served,
        realm_url: realm.public_url.as_ref().map(ToString::to_string),
        migrations,
    }
}

fn checked_tenant(tenant: &str) -> Result<(), ApiError> {
    TenantId::parse(tenant)
        .map(|_| ())
        .map_err(|e| ApiError::new(ErrorCode::InvalidTenant, format!("tenant {e}")))
}

/// A refused step as the API answers it.
fn refused(e: MigrationError) -> ApiError {
    let code = match &e {
        MigrationError::Store(_) => {
            return ApiError::new(
                ErrorCode::StoreUnavailable,
                "the store failed; nothing was changed, try again",
            )
            .retry_after(1);
        }
        MigrationError::Raced(_) => ErrorCode::MigrationState,
        MigrationError::UnknownRealm(_) => ErrorCode::UnknownRealm,
        MigrationError::SameRealm { .. } => ErrorCode::SameRealm,
        MigrationError::AlreadyMigrating { .. } => ErrorCode::TenantAlreadyMigrating,
        MigrationError::TooMany(_) => ErrorCode::TooManyMigrations,
        MigrationError::InvalidWindow(_) => ErrorCode::InvalidWindow,
        MigrationError::WindowInPast(_) => ErrorCode::WindowInPast,
        MigrationError::Unknown(_) => ErrorCode::UnknownMigration,
        MigrationError::Mismatch { .. } => ErrorCode::MigrationMismatch,
        MigrationError::WrongState { .. } => ErrorCode::MigrationState,
        MigrationError::OutsideWindow { .. } => ErrorCode::OutsideWindow,
    };
    ApiError::new(code, e.to_string())
}
