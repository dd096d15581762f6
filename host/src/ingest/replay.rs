//! Dead letters through the current transformer again, after a provider's
//! fix: those that now go through are committed (and leave the dead letters
//! in that same transaction, see [`crate::store::Records::apply`]); those refused again stay,
//! with their reason updated and one more attempt counted.

use serde::{Deserialize, Serialize};

use super::{EventResult, IncomingEvent, Route, ingest_routed};
use crate::plugins::Binding;
use crate::store::{self, StoreError};
use crate::tenancy::Realms;

/// What a replay did.
#[derive(Debug, Serialize, Deserialize)]
pub struct Replayed {
    /// Dead letters that went through (or were in the store already).
    pub replayed: usize,
    /// Dead letters refused again.
    pub still_failing: usize,
    /// Each replayed event's result, in the order of the dead letters.
    pub results: Vec<EventResult>,
}

/// Replays `source`'s dead letters (those of `ids` only, when given) into
/// `binding`'s record type, from every realm this node serves.
pub async fn replay(
    realms: &std::sync::Arc<Realms>,
    binding: &Binding,
    source: &str,
    ids: Option<&[String]>,
) -> Result<Replayed, StoreError> {
    let mut letters = Vec::new();
    for realm in realms.served() {
        let reading = realm.stores.dead_letters.clone();
        let wanted = source.to_owned();
        letters.extend(
            store::blocking(move || reading.dead_letters(Some(&wanted), usize::MAX)).await?,
        );
    }
    if let Some(ids) = ids {
        let wanted: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        letters.retain(|l| wanted.contains(l.event_id.as_str()));
    }
    let events = letters
        .iter()
        .map(IncomingEvent::from_dead_letter)
        .collect();
    let results = ingest_routed(realms, binding, source, events, Route::Live).await?;
    let replayed = results
        .iter()
        .filter(|r| matches!(r, EventResult::Applied { .. } | EventResult::Duplicate))
        .count();
    Ok(Replayed {
        replayed,
        still_failing: results.len() - replayed,
        results,
    })
}
