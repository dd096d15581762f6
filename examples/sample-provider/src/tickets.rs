//! The tracker's bootstrap endpoint, for `droid backfill ticket`: every ticket
//! the tracker holds, as `ticket.created` events, a page at a time.
//!
//! It follows droid's bootstrap contract: `GET /tickets/bootstrap?limit=N` for
//! the first page, `&cursor=C` for the next; each answer is
//! `{"events": [...], "next_cursor": "C" | null, "total": N}`. Tickets are
//! generated from their number, so every run and every page is the same, and
//! event ids are stable (`bootstrap-OPS-7`): a page sent twice changes nothing.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

/// How many tickets the tracker holds.
#[derive(Debug, Clone, Copy)]
pub struct Tickets(pub usize);

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

/// One page of the bootstrap.
pub async fn bootstrap(
    State(Tickets(count)): State<Tickets>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Value>, (StatusCode, String)> {
    let start = match query.cursor.as_deref() {
        None => 0,
        Some(cursor) => cursor
            .strip_prefix("after-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= count)
            .ok_or((
                StatusCode::BAD_REQUEST,
                format!("unknown cursor {cursor:?}"),
            ))?,
    };
    let end = (start + query.limit.unwrap_or(500).clamp(1, 5_000)).min(count);
    let events: Vec<Value> = (start..end).map(|i| event(i + 1)).collect();
    Ok(Json(json!({
        "events": events,
        "next_cursor": (end < count).then(|| format!("after-{end}")),
        "total": count,
    })))
}

const SUMMARIES: &[&str] = &[
    "Checkout latency above SLO",
    "Login page returns 502 intermittently",
    "Search results missing archived items",
    "Export to CSV drops unicode characters",
    "Mobile app crashes on rotate",
    "Webhook retries never back off",
];
const STATUSES: &[&str] = &["open", "in_progress", "blocked", "done"];
const PRIORITIES: &[&str] = &["low", "medium", "high", "critical"];

/// Ticket `n` as a `ticket.created` event, with the transformer's payload shape.
fn event(n: usize) -> Value {
    let pick = |options: &'static [&'static str], salt: usize| {
        options[(n.wrapping_mul(2_654_435_761) >> 7).wrapping_add(salt) % options.len()]
    };
    json!({
        "id": format!("bootstrap-OPS-{n}"),
        "kind": "ticket.created",
        "tenant": format!("tenant-{:04}", n % 50 + 1),
        "occurred_at": 1_763_000_000_000u64 + n as u64 * 60_000,
        "payload": {
            "ticket": {
                "key": format!("OPS-{n}"),
                "summary": pick(SUMMARIES, 0),
                "description": "Imported from the tracker's history.",
                "status": pick(STATUSES, 1),
                "priority": pick(PRIORITIES, 2),
                "labels": ["imported"],
                "updated_at": "2026-11-01T00:00:00Z",
                "version": 1
            },
            "project": {"key": "OPS", "name": "Operations"},
            "assignee": null,
            "reporter": {"account_id": "u-1", "display_name": "Tracker import", "email": "import@example.com"}
        }
    })
}
