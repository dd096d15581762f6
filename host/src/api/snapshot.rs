//! Complete-or-none snapshot batches: a provider opens a batch (one day of data,
//! say), sends its parts, and commits; only then do all its records become
//! visible, in one transaction. An aborted or expired batch leaves no trace; a
//! declared event count or checksum that does not match refuses the commit.
//!
//! - `POST   /v1/ingest/{source}/snapshots` `{"realm"?, "expected_count"?, "checksum"?, "ttl_s"?}`
//! - `POST   /v1/ingest/{source}/snapshots/{id}`: a part (events, as for ingestion)
//! - `GET    /v1/ingest/{source}/snapshots/{id}`: its state
//! - `POST   /v1/ingest/{source}/snapshots/{id}/commit`
//! - `DELETE /v1/ingest/{source}/snapshots/{id}`: abort
//!
//! The checksum is the SHA-256 (hex) of the staged event ids in the order sent,
//! each followed by a newline.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::ingest::Route;
use crate::store::{EventOutcome, EventWrite, Snapshot, now_ms};
use crate::tenancy::Realm;
use crate::tenancy::Realms;
use crate::web::extract::{ApiBody, ApiPath};
use crate::web::{ApiError, ErrorCode};

/// How long a batch stays open unless the provider says otherwise.
const DEFAULT_TTL_S: u64 = 3_600;
/// The longest a batch may stay open.
const MAX_TTL_S: u64 = 7 * 86_400;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenRequest {
    /// The realm the batch is staged in (this node's home realm when not
    /// named): only that realm's tenants' events go into it.
    realm: Option<String>,
    expected_count: Option<u64>,
    checksum: Option<String>,
    ttl_s: Option<u64>,
}

pub(super) async fn open(
    State(app): State<Arc<App>>,
    ApiPath(source): ApiPath<String>,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
    known_source(&app, &source)?;
    let request: OpenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        OpenRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            bad(format!(
                "expected {{\"realm\"?, \"expected_count\"?, \"checksum\"?, \"ttl_s\"?}}: {e}"
            ))
        })?
    };
    let ttl = request.ttl_s.unwrap_or(DEFAULT_TTL_S);
    if ttl == 0 || ttl > MAX_TTL_S {
        return Err(bad(format!("ttl_s must be 1 to {MAX_TTL_S}, found {ttl}")));
    }
    if let Some(sum) = &request.checksum
        && (sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(bad("checksum must be a SHA-256 as 64 hex digits".to_owned()));
    }
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| internal(&e.to_string()))?;
    let now = now_ms();
    let snapshot = Snapshot {
        id: id.iter().map(|b| format!("{b:02x}")).collect(),
        source: source.clone(),
        opened_at_ms: now,
        expires_at_ms: now + ttl * 1000,
        expected_count: request.expected_count,
        checksum: request.checksum.map(|s| s.to_lowercase()),
        staged: 0,
    };
    let realm = app
        .service
        .realms
        .named_or_home(request.realm.as_deref())
        .map_err(|p| super::misplaced(p, "the realm named"))?;
    let store = realm.stores.snapshots.clone();
    let opened = snapshot.clone();
    super::store_op(move || store.open_snapshot(&opened)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "snapshot": snapshot }))).into_response())
}

pub(super) async fn show(
    State(app): State<Arc<App>>,
    ApiPath((source, id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let (snapshot, realm) = open_snapshot(&app, &source, &id).await?;
    Ok(Json(json!({ "snapshot": snapshot, "realm": realm.name })).into_response())
}

pub(super) async fn part(
    State(app): State<Arc<App>>,
    ApiPath((source, id)): ApiPath<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (_, realm) = open_snapshot(&app, &source, &id).await?;
    let into = Route::Snapshot {
        realm: &realm,
        id: &id,
    };
    super::ingest::answer(&app, &source, body, into).await
}

pub(super) async fn commit(
    State(app): State<Arc<App>>,
    ApiPath((source, id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, realm) = open_snapshot(&app, &source, &id).await?;
    let store = realm.stores.clone();
    let realms = app.service.realms.clone();
    let check = move |snapshot: &Snapshot, staged: &[EventWrite]| {
        verify(snapshot, staged)?;
        still_here(&realms, &realm.name, staged)
    };
    let verdict = super::store_op(move || store.commit_snapshot(&id, &check)).await?;
    match verdict {
        Ok(outcomes) => {
            let applied = outcomes
                .iter()
                .filter(|o| matches!(o, EventOutcome::Applied { .. }))
                .count();
            let changes: usize = outcomes
                .iter()
                .map(|o| match o {
                    EventOutcome::Applied { seqs, .. } => seqs.len(),
                    EventOutcome::Duplicate => 0,
                })
                .sum();
            Ok(Json(json!({
                "committed": outcomes.len(),
                "applied": applied,
                "duplicate": outcomes.len() - applied,
                "changes": changes,
            }))
            .into_response())
        }
        Err(why) => Err(ApiError::new(
            ErrorCode::SnapshotRefused,
            format!(
                "the snapshot was not committed: {why}; it stays open (send the missing parts, or abort it)"
            ),
        )),
    }
}

pub(super) async fn abort(
    State(app): State<Arc<App>>,
    ApiPath((source, id)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, realm) = open_snapshot(&app, &source, &id).await?;
    let store = realm.stores.snapshots.clone();
    super::store_op(move || store.abort_snapshot(&id)).await?;
    Ok(Json(json!({ "aborted": true })).into_response())
}

/// Every staged event's tenant still lives in the batch's realm and is not
/// migrating: one that moved (or is moving) since it was staged would
/// otherwise be written where it no longer lives.
fn still_here(realms: &Realms, realm: &str, staged: &[EventWrite]) -> Result<(), String> {
    for event in staged {
        for op in &event.ops {
            let tenant = &op.id().tenant;
            if let Some(held) = realms.directory.held_by(tenant) {
                return Err(format!(
                    "tenant {tenant:?} is {held}; abort the batch and send it again once it ends"
                ));
            }
            let now = realms.of_tenant(tenant);
            if now.name != realm {
                return Err(format!(
                    "tenant {tenant:?} moved to realm {:?} since its events were staged in realm {realm:?}; abort the batch and send it again",
                    now.name
                ));
            }
        }
    }
    Ok(())
}

/// The commit's checks: not expired, the declared count, the declared checksum.
fn verify(snapshot: &Snapshot, staged: &[EventWrite]) -> Result<(), String> {
    let ids: Vec<&str> = staged.iter().map(|e| e.event_id.as_str()).collect();
    if now_ms() > snapshot.expires_at_ms {
        return Err("it expired".to_owned());
    }
    if let Some(expected) = snapshot.expected_count
        && expected != ids.len() as u64
    {
        return Err(format!(
            "{} events were staged but {expected} were declared",
            ids.len()
        ));
    }
    if let Some(expected) = &snapshot.checksum {
        let mut hasher = Sha256::new();
        for id in ids {
            hasher.update(id.as_bytes());
            hasher.update(b"\n");
        }
        let actual: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if &actual != expected {
            return Err(format!(
                "the staged event ids hash to {actual}, not the declared {expected}"
            ));
        }
    }
    Ok(())
}

fn known_source(app: &App, source: &str) -> Result<(), ApiError> {
    if app.service.config().sources.contains_key(source) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnknownSource,
            format!("no ingestion source named {source:?} is configured"),
        ))
    }
}

/// The open snapshot `id` of `source` and the realm it is in (of those
/// this node serves), or a 404.
async fn open_snapshot(
    app: &App,
    source: &str,
    id: &str,
) -> Result<(Snapshot, Arc<Realm>), ApiError> {
    known_source(app, source)?;
    let mut found = None;
    for realm in app.service.realms.served() {
        let store = realm.stores.snapshots.clone();
        let wanted = id.to_owned();
        if let Some(snapshot) = super::store_op(move || store.snapshot(&wanted)).await? {
            found = Some((snapshot, realm.clone()));
            break;
        }
    }
    match found {
        Some((s, realm)) if s.source == source && now_ms() <= s.expires_at_ms => Ok((s, realm)),
        _ => Err(ApiError::new(
            ErrorCode::UnknownSnapshot,
            format!("no open snapshot {id:?} of source {source:?} (committed, aborted or expired)"),
        )),
    }
}

fn bad(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidBody, message)
}

fn internal(detail: &str) -> ApiError {
    tracing::error!(detail, "snapshot handler failed");
    ApiError::new(
        ErrorCode::Internal,
        "the server hit an internal error; details are in its log",
    )
}
