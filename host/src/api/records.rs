//! `GET /v1/records/{record_type}`: every live record of an ingested record
//! type, a page at a time, for followers that keep the whole set (sidecars
//! replicating a record type).
//!
//! Pages are read in tenant and key order, each from one store snapshot, and
//! carry the change log's end at that moment (`last_seq`). A follower that
//! opens the change feed first and applies changes over the pages, never
//! letting a page replace what a change wrote, ends with the current set.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::access::Action;
use crate::app::App;
use crate::auth::CallKind;
use crate::config::Mode;
use crate::web::extract::ApiPath;
use crate::web::{ApiError, ErrorCode};

/// Records per page unless the caller asks for fewer or more.
const DEFAULT_LIMIT: usize = 1000;
/// The most records one page holds.
const MAX_LIMIT: usize = 10_000;

#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    after_tenant: Option<String>,
    /// The realm whose records to page through (this node's home realm
    /// when not named).
    realm: Option<String>,
    after_key: Option<String>,
    limit: Option<usize>,
}

#[derive(serde::Serialize)]
struct Record<'a> {
    tenant: &'a str,
    key: &'a str,
    version: u64,
    body: &'a RawValue,
}

#[derive(serde::Serialize)]
struct Cursor<'a> {
    tenant: &'a str,
    key: &'a str,
}

#[derive(serde::Serialize)]
struct Page<'a> {
    records: Vec<Record<'a>>,
    next: Option<Cursor<'a>>,
    last_seq: u64,
}

pub(super) async fn export(
    State(app): State<Arc<App>>,
    ApiPath(record_type): ApiPath<String>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    match page(&app, record_type, &headers, query).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn page(
    app: &Arc<App>,
    record_type: String,
    headers: &HeaderMap,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    super::auth::authorize(app, headers, CallKind::Read, Action::Read(&record_type)).await?;
    let bad = |m: String| ApiError::new(ErrorCode::InvalidKey, m);
    let Query(query) = query.map_err(|e| bad(format!("invalid query string: {e}")))?;
    match app
        .service
        .config()
        .record_types
        .get(&record_type)
        .map(|c| &c.mode)
    {
        Some(Mode::Ingested(_)) => {}
        Some(Mode::ReadThrough(_)) => {
            return Err(ApiError::new(
                ErrorCode::NotIngested,
                format!(
                    "record type {record_type:?} is read through: droid holds no set of its records to export"
                ),
            ));
        }
        None => {
            return Err(ApiError::new(
                ErrorCode::UnknownRecordType,
                format!("no record type named {record_type:?}"),
            ));
        }
    }
    let after = match (query.after_tenant, query.after_key) {
        (Some(tenant), Some(key)) => Some((tenant, key)),
        (None, None) => None,
        _ => {
            return Err(bad(
                "after_tenant and after_key go together (the last record of the previous page)"
                    .to_owned(),
            ));
        }
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let realm = app
        .service
        .realms
        .named_or_home(query.realm.as_deref())
        .map_err(|p| super::misplaced(p, "the realm named"))?;
    let store = realm.stores.records.clone();
    let (records, last_seq) = super::store_op(move || {
        let last_seq = store.last_seq()?;
        let after = after.as_ref().map(|(t, k)| (t.as_str(), k.as_str()));
        Ok((store.records(&record_type, after, limit)?, last_seq))
    })
    .await?;
    let page: Vec<Record<'_>> = records
        .iter()
        .filter_map(|(id, record)| {
            let body = serde_json::from_str::<&RawValue>(record.body.as_deref()?).ok()?;
            Some(Record {
                tenant: &id.tenant,
                key: &id.key,
                version: record.version,
                body,
            })
        })
        .collect();
    let next = (records.len() == limit).then(|| {
        let (id, _) = records.last().expect("a full page has a last record");
        Cursor {
            tenant: &id.tenant,
            key: &id.key,
        }
    });
    // Serialised straight from the store's text: bodies keep their bytes.
    Ok(Json(Page {
        records: page,
        next,
        last_seq,
    })
    .into_response())
}
