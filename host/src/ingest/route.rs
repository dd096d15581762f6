//! Events to their tenants' realms: each event goes to the store of the
//! realm its tenant is pinned to (a tenant's first write pins it where the
//! rules place it, so changing them later moves no data), is refused while
//! its tenant migrates (`tenant_migrating`: the provider sends it again
//! later), and is refused on a node that does not serve its realm
//! (`tenant_elsewhere`, with the realm's URL). Each realm's events then
//! commit in that realm's store, in one transaction per realm.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{EventResult, IncomingEvent, Target, ingest_into};
use crate::key::TenantId;
use crate::plugins::Binding;
use crate::store::{self, StoreError};
use crate::tenancy::{Held, Placement, Realm, Realms};

/// The API's codes for a refused event (`web::ErrorCode`'s, which sits
/// above this module; `api` checks they agree).
pub const TENANT_MIGRATING: &str = "tenant_migrating";
/// See [`TENANT_MIGRATING`].
pub const TENANT_ELSEWHERE: &str = "tenant_elsewhere";
/// See [`TENANT_MIGRATING`]: a restore of the tenant is under way.
pub const TENANT_RESTORING: &str = "tenant_restoring";
/// See [`TENANT_MIGRATING`]: the tenant is being erased.
pub const TENANT_ERASING: &str = "tenant_erasing";

/// The code of a write refused while `held` holds its tenant off.
fn held_code(held: &Held) -> &'static str {
    match held.kind.as_str() {
        Held::MIGRATION => TENANT_MIGRATING,
        "erase" => TENANT_ERASING,
        _ => TENANT_RESTORING,
    }
}

/// Where accepted events go, by realm.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    /// Committed at once, each in its tenant's realm.
    Live,
    /// Staged in snapshot batch `id` of `realm`: only its tenants' events.
    Snapshot {
        /// The realm the batch is in.
        realm: &'a Realm,
        /// The batch.
        id: &'a str,
    },
}

/// An event with its place in the request.
type Placed = (usize, Result<IncomingEvent, String>);

/// Ingests `events` from `source` into `binding`'s record type, each in
/// its tenant's realm; one result per event, in order.
pub async fn ingest_routed(
    realms: &Arc<Realms>,
    binding: &Binding,
    source: &str,
    events: Vec<Result<IncomingEvent, String>>,
    into: Route<'_>,
) -> Result<Vec<EventResult>, StoreError> {
    let count = events.len();
    let mut results: Vec<Option<EventResult>> = vec![None; count];
    let mut groups: BTreeMap<String, Vec<Placed>> = BTreeMap::new();
    let mut unpinned = BTreeSet::new();
    let home = realms.home().name.clone();
    for (i, event) in events.into_iter().enumerate() {
        // An event without a valid tenant fails its own checks at home.
        let Some(tenant) = event
            .as_ref()
            .ok()
            .and_then(|e| e.tenant())
            .filter(|t| TenantId::parse(t).is_ok())
            .map(str::to_owned)
        else {
            groups.entry(home.clone()).or_default().push((i, event));
            continue;
        };
        match place(realms, &tenant, into) {
            Ok(realm) => {
                if !realms.directory.is_pinned(&tenant) {
                    unpinned.insert(tenant);
                }
                groups.entry(realm).or_default().push((i, event));
            }
            Err(refused) => {
                if let EventResult::Refused { code, .. } = &refused {
                    metrics::counter!(crate::metrics::INGEST_REFUSED, "code" => code.clone())
                        .increment(1);
                }
                results[i] = Some(refused);
            }
        }
    }
    if !unpinned.is_empty() {
        let realms = realms.clone();
        let unpinned: Vec<String> = unpinned.into_iter().collect();
        store::blocking(move || realms.directory.pin_where_placed(&unpinned)).await?;
    }
    for (name, group) in groups {
        let Some(realm) = realms.get(&name) else {
            continue;
        };
        let (indices, events): (Vec<usize>, Vec<_>) = group.into_iter().unzip();
        let target = match into {
            Route::Live => Target::Live,
            Route::Snapshot { id, .. } => Target::Snapshot(id),
        };
        let done = ingest_into(&realm.stores, binding, source, events, target).await?;
        for (i, result) in indices.into_iter().zip(done) {
            results[i] = Some(result);
        }
    }
    Ok(results
        .into_iter()
        .map(|r| {
            r.unwrap_or(EventResult::Failed {
                reason: "not processed".to_owned(),
            })
        })
        .collect())
}

/// The realm `tenant`'s event goes to, or why it is refused.
fn place(realms: &Realms, tenant: &str, into: Route<'_>) -> Result<String, EventResult> {
    if let Some(held) = realms.directory.held_by(tenant) {
        return Err(EventResult::Refused {
            code: held_code(&held).to_owned(),
            reason: format!("tenant {tenant:?} is {held}; send the event again once it ends"),
            realm: None,
            realm_url: None,
        });
    }
    let elsewhere = |realm: String, url: Option<url::Url>, why: String| EventResult::Refused {
        code: TENANT_ELSEWHERE.to_owned(),
        reason: why,
        realm: Some(realm),
        realm_url: url.map(|u| u.to_string()),
    };
    match realms.for_tenant(tenant) {
        Ok(realm) => match into {
            Route::Snapshot { realm: batch, .. } if batch.name != realm.name => Err(elsewhere(
                realm.name.clone(),
                realm.public_url.clone(),
                format!(
                    "tenant {tenant:?} is in realm {:?}, and this snapshot batch in realm {:?}",
                    realm.name, batch.name
                ),
            )),
            _ => Ok(realm.name.clone()),
        },
        Err(Placement::Elsewhere { realm, url }) => {
            let why =
                format!("tenant {tenant:?} is in realm {realm:?}, which this node does not serve");
            Err(elsewhere(realm, url, why))
        }
        Err(Placement::Unknown(realm)) => Err(EventResult::Failed {
            reason: format!(
                "tenant {tenant:?} is pinned to realm {realm:?}, which is not declared"
            ),
        }),
    }
}
