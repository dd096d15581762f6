//! Ingestion: a provider's source events, through its record type's
//! transformer, into the store.
//!
//! A request's events are checked one by one (an event that is not valid fails
//! alone), grouped by tenant and by the transformer version that serves it,
//! transformed in one call per group (a few groups at a time), and every
//! resulting change is checked (a
//! transformer may only write its own record type's keys, for the event's
//! tenant, with JSON bodies). Then all accepted events commit in one store
//! transaction, and only then is the request answered: an acknowledged event is
//! durable.

mod health;
mod rate;
mod replay;
mod route;
mod slots;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

pub use health::{Health, SourceHealth, State};
pub use rate::{RateLimits, Refusal};
pub use replay::{Replayed, replay};
pub use route::{
    Route, TENANT_ELSEWHERE, TENANT_ERASING, TENANT_MIGRATING, TENANT_RESTORING, ingest_routed,
};
pub use slots::SourceSlots;

use crate::entity::{EntityOp, SourceEvent};
use crate::key::TenantId;
use crate::plugins::{Binding, Version};
use crate::store::{self, DeadLetter, EventOutcome, EventWrite, Op, RecordId, StoreError, Stores};

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EventResult {
    /// Committed; its changes got these sequence numbers (changes older than
    /// the stored record were skipped and counted in `stale`).
    Applied {
        /// The sequence numbers of its changes.
        seqs: Vec<u64>,
        /// Changes skipped as older than the stored record.
        stale: usize,
    },
    /// Seen before (same source and id); nothing changed.
    Duplicate,
    /// Staged in a snapshot batch: visible once the batch commits.
    Staged,
    /// The event is not valid; nothing was done with it.
    Invalid {
        /// Why.
        reason: String,
    },
    /// The transformer refused it, or produced changes droid cannot accept.
    Rejected {
        /// Why, with the plugin version.
        reason: String,
    },
    /// The transformer failed (trap, timeout...): retrying later may succeed.
    Failed {
        /// Why.
        reason: String,
    },
    /// Not taken here, and nothing was done with it: its tenant migrates
    /// (`tenant_migrating`: send it again later) or lives in a realm this
    /// node does not serve (`tenant_elsewhere`: send it to `realm_url`).
    Refused {
        /// The API's code for why.
        code: String,
        /// Why.
        reason: String,
        /// The realm it belongs to, when elsewhere.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        realm: Option<String>,
        /// Where that realm is served.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        realm_url: Option<String>,
    },
}

/// An event as it arrives, before it is checked.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomingEvent {
    id: Option<String>,
    /// Optional; when given it must name the source the event is posted to.
    source: Option<String>,
    kind: Option<String>,
    tenant: Option<String>,
    occurred_at: Option<u64>,
    payload: Option<Box<serde_json::value::RawValue>>,
}

/// Transformer calls one request runs at once (one per tenant group).
const CALLS_AT_ONCE: usize = 4;

/// The longest event id accepted.
const MAX_EVENT_ID: usize = 256;

impl IncomingEvent {
    /// The event a dead letter kept, to be ingested again.
    pub fn from_dead_letter(letter: &DeadLetter) -> Result<Self, String> {
        let payload = serde_json::value::RawValue::from_string(letter.payload.clone())
            .map_err(|e| format!("the kept payload is not JSON: {e}"))?;
        Ok(Self {
            id: Some(letter.event_id.clone()),
            source: Some(letter.source.clone()),
            kind: Some(letter.kind.clone()),
            tenant: Some(letter.tenant.clone()),
            occurred_at: Some(letter.occurred_at_ms),
            payload: Some(payload),
        })
    }

    /// The tenant it names, unchecked.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The event, checked, as coming from `source`.
    fn check(self, source: &str) -> Result<SourceEvent, String> {
        let missing = |field: &str| format!("missing field `{field}`");
        let id = self.id.ok_or_else(|| missing("id"))?;
        if id.is_empty() || id.len() > MAX_EVENT_ID || id.chars().any(char::is_control) {
            return Err(format!(
                "id must be 1 to {MAX_EVENT_ID} bytes without control characters"
            ));
        }
        if let Some(named) = &self.source
            && named != source
        {
            return Err(format!(
                "the event names source {named:?} but was posted to source {source:?}"
            ));
        }
        let tenant = self.tenant.ok_or_else(|| missing("tenant"))?;
        TenantId::parse(&tenant).map_err(|e| format!("tenant {e}"))?;
        Ok(SourceEvent {
            id,
            source: source.to_owned(),
            kind: self.kind.ok_or_else(|| missing("kind"))?,
            tenant,
            occurred_at: self.occurred_at.ok_or_else(|| missing("occurred_at"))?,
            payload: self
                .payload
                .ok_or_else(|| missing("payload"))?
                .get()
                .as_bytes()
                .to_vec(),
        })
    }
}

/// The events of one tenant that one transformer version handles, with their
/// places in the request.
type Group = (Arc<Version>, Vec<(usize, SourceEvent)>);

/// Where accepted events go.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Committed and visible at once.
    Live,
    /// Staged in this snapshot batch, visible when it commits.
    Snapshot(&'a str),
}

/// Ingests `events` from `source` into `binding`'s record type, returning one
/// result per event, in order.
pub async fn ingest(
    store: &Stores,
    binding: &Binding,
    source: &str,
    events: Vec<Result<IncomingEvent, String>>,
) -> Result<Vec<EventResult>, StoreError> {
    ingest_into(store, binding, source, events, Target::Live).await
}

/// Like [`ingest`], into `target`.
pub async fn ingest_into(
    store: &Stores,
    binding: &Binding,
    source: &str,
    events: Vec<Result<IncomingEvent, String>>,
    target: Target<'_>,
) -> Result<Vec<EventResult>, StoreError> {
    let mut results: Vec<Option<EventResult>> = vec![None; events.len()];
    // Checked events, grouped by tenant and the transformer version serving
    // it. One call never sees two tenants' events: a plugin instance lives for
    // one call, so whatever it keeps from one event can only reach records of
    // the same tenant.
    let mut groups: BTreeMap<(String, u64), Group> = BTreeMap::new();
    for (i, event) in events.into_iter().enumerate() {
        match event.and_then(|e| e.check(source)) {
            Ok(event) => {
                let version = binding.select(&event.tenant);
                groups
                    .entry((event.tenant.clone(), version.id))
                    .or_insert_with(|| (version, Vec::new()))
                    .1
                    .push((i, event));
            }
            Err(reason) => results[i] = Some(EventResult::Invalid { reason }),
        }
    }

    let mut writes: Vec<(usize, EventWrite)> = Vec::new();
    // Events refused by the transformer (or whose changes were), kept as dead letters.
    let mut dead: Vec<DeadLetter> = Vec::new();
    // The groups' calls run a few at a time (tenants are independent), each
    // in one of the record type's call slots; their results are handled in
    // order below.
    let calls = groups.into_values().map(|(version, group)| async move {
        let (indices, batch): (Vec<usize>, Vec<SourceEvent>) = group.into_iter().unzip();
        // The events go into the call; a copy stays for dead letters.
        let originals = batch.clone();
        let outcome = match version.transformer() {
            Some(transformer) => Some(transformer.transform(&binding.context, batch).await),
            None => None,
        };
        (version, indices, originals, outcome)
    });
    let done: Vec<_> = futures::stream::iter(calls)
        .buffered(CALLS_AT_ONCE)
        .collect()
        .await;
    for (version, indices, originals, outcome) in done {
        let Some(outcome) = outcome else {
            for i in &indices {
                results[*i] = Some(EventResult::Failed {
                    reason: format!("plugin version {} is not a transformer", version.label()),
                });
            }
            continue;
        };
        let letter = |event: &SourceEvent, reason: &str| DeadLetter {
            source: source.to_owned(),
            event_id: event.id.clone(),
            kind: event.kind.clone(),
            tenant: event.tenant.clone(),
            occurred_at_ms: event.occurred_at,
            payload: String::from_utf8_lossy(&event.payload).into_owned(),
            reason: reason.to_owned(),
            plugin_version: version.label().to_owned(),
            at_ms: crate::store::now_ms(),
            attempts: 1,
        };
        match outcome {
            Ok(outputs) => {
                for ((i, original), output) in indices.into_iter().zip(&originals).zip(outputs) {
                    let (id, tenant, occurred_at) =
                        (original.id.clone(), &original.tenant, original.occurred_at);
                    let checked = output
                        .map_err(|f| format!("{} (transformer {})", f, version.label()))
                        .and_then(|ops| {
                            to_store_ops(binding, tenant, occurred_at, ops)
                                .map_err(|why| format!("{why} (transformer {})", version.label()))
                        });
                    match checked {
                        Ok(ops) => writes.push((
                            i,
                            EventWrite {
                                overwrite: false,
                                source: source.to_owned(),
                                event_id: id,
                                occurred_at_ms: occurred_at,
                                ops,
                            },
                        )),
                        Err(reason) => {
                            dead.push(letter(original, &reason));
                            results[i] = Some(EventResult::Rejected { reason });
                        }
                    }
                }
            }
            Err(e) => {
                let reason = format!("transformer {} failed: {e}", version.label());
                for (i, original) in indices.into_iter().zip(&originals) {
                    dead.push(letter(original, &reason));
                    results[i] = Some(EventResult::Failed {
                        reason: reason.clone(),
                    });
                }
            }
        }
    }
    if !dead.is_empty() {
        let letters = store.dead_letters.clone();
        store::blocking(move || letters.put_dead_letters(&dead)).await?;
    }

    if !writes.is_empty() {
        // The change log follows the request's order, whatever the grouping.
        writes.sort_unstable_by_key(|(i, _)| *i);
        let (indices, batch): (Vec<usize>, Vec<EventWrite>) = writes.into_iter().unzip();
        if let Target::Snapshot(id) = target {
            let id = id.to_owned();
            let count = batch.len();
            let batches = store.snapshots.clone();
            store::blocking(move || batches.stage(&id, &batch)).await?;
            for i in indices.into_iter().take(count) {
                results[i] = Some(EventResult::Staged);
            }
            return Ok(finish(results));
        }
        let records = store.records.clone();
        let outcomes = store::blocking(move || records.apply(&batch)).await?;
        for (i, outcome) in indices.into_iter().zip(outcomes) {
            results[i] = Some(match outcome {
                EventOutcome::Applied { seqs, stale } => EventResult::Applied { seqs, stale },
                EventOutcome::Duplicate => EventResult::Duplicate,
            });
        }
    }
    Ok(finish(results))
}

fn finish(results: Vec<Option<EventResult>>) -> Vec<EventResult> {
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or(EventResult::Failed {
                reason: "not processed".to_owned(),
            })
        })
        .collect()
}

/// The changes one event asked for, checked: no more than the record type
/// allows, each key changed once, and each change as [`to_store_op`] checks it.
fn to_store_ops(
    binding: &Binding,
    tenant: &str,
    occurred_at: u64,
    ops: Vec<EntityOp>,
) -> Result<Vec<Op>, String> {
    let limits = binding.context.limits();
    if ops.len() > limits.max_ops_per_event as usize {
        limited(binding, "max_ops_per_event");
        return Err(format!(
            "the event produced {} changes, more than limits.max_ops_per_event ({})",
            ops.len(),
            limits.max_ops_per_event
        ));
    }
    let mut keys = std::collections::HashSet::with_capacity(ops.len());
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let op = to_store_op(binding, tenant, occurred_at, op)?;
        if !keys.insert(op.id().key.clone()) {
            return Err(format!(
                "the event changes key {:?} more than once; send one change per key",
                op.id().key
            ));
        }
        out.push(op);
    }
    Ok(out)
}

/// Counts a change refused for going past the record type's `limit`.
fn limited(binding: &Binding, limit: &'static str) {
    metrics::counter!(
        crate::metrics::PLUGIN_LIMITED,
        "record_type" => binding.config.name.clone(),
        "limit" => limit
    )
    .increment(1);
}

/// One change a transformer asked for, checked: the event's tenant only, a
/// valid key, a JSON body within the record type's limits, a version droid
/// can keep. Without a provider version, the event's time orders the change.
fn to_store_op(
    binding: &Binding,
    tenant: &str,
    occurred_at: u64,
    op: EntityOp,
) -> Result<Op, String> {
    let (key, op_tenant) = match &op {
        EntityOp::Upsert(e) => (&e.key, &e.tenant),
        EntityOp::Delete(r) => (&r.key, &r.tenant),
    };
    let version = match &op {
        EntityOp::Upsert(e) => e.version,
        EntityOp::Delete(r) => r.version,
    };
    droid_rules::change::check(key, op_tenant, version, tenant)?;
    let id = RecordId {
        record_type: binding.config.name.clone(),
        tenant: tenant.to_owned(),
        key: key.clone(),
    };
    Ok(match op {
        EntityOp::Upsert(entity) => {
            crate::body::check(
                &entity.body,
                binding.context.limits(),
                &binding.config.sensitive_fields,
                binding.config.seal_key.as_ref(),
            )
            .map_err(|e| {
                if let Some(limit) = e.limit() {
                    limited(binding, limit);
                }
                format!("record {:?}: {e}", entity.key)
            })?;
            Op::Upsert {
                id,
                body: entity.body,
                version: entity.version.unwrap_or(occurred_at),
            }
        }
        EntityOp::Delete(r) => Op::Delete {
            id,
            version: r.version.unwrap_or(occurred_at),
        },
    })
}
