//! Load the benchmarks put on droid over HTTP: ticket events, ingestion at a
//! batch size with requests in flight, and the time from an acknowledgement
//! to a sidecar having applied the change.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::TestDroid;

/// A ticket event of tenant `acme` for `key` at `version`, as JSON (its
/// description and reporter's email are what the ticket transformer drops).
pub fn ticket(id: &str, kind: &str, key: &str, version: u64, summary: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "kind": kind,
        "tenant": "acme",
        "occurred_at": 1_763_633_700_000u64 + version,
        "payload": {
            "ticket": {"key": key, "summary": summary, "description": "secret words", "status": "open",
                       "priority": "high", "labels": [], "updated_at": "2026-11-20T10:00:00Z", "version": version},
            "project": {"key": "OPS", "name": "Operations"},
            "assignee": null,
            "reporter": {"account_id": "u-1", "display_name": "Grace", "email": "grace@example.com"}
        }
    })
}

/// The summary of ticket `key` of tenant `acme` as `droid` serves it;
/// `None` when it is not found.
pub async fn summary(droid: &TestDroid, key: &str) -> Option<String> {
    let r = droid
        .get(&format!("/v1/entity/ticket/{key}?tenant=acme"))
        .await;
    match r.status {
        200 => Some(r.json()["summary"].as_str().unwrap().to_owned()),
        404 => None,
        other => panic!("{other}: {}", r.body),
    }
}

/// Ingestion requests in flight at once.
pub const IN_FLIGHT: u64 = 4;

/// Ticket event `n` (about 300 bytes of payload) at `version`, of one of 50
/// tenants.
pub fn ticket_event(n: u64, version: u64) -> String {
    format!(
        r#"{{"id":"ev-{n}-{version}","kind":"ticket.updated","tenant":"tenant-{}","occurred_at":1763633700000,"payload":{{"ticket":{{"key":"OPS-{n}","summary":"Checkout latency above SLO","description":"Customers report slow checkouts.","status":"open","priority":"high","labels":["payments"],"updated_at":"2026-11-20T10:15:00Z","version":{version}}},"project":{{"key":"OPS","name":"Operations"}},"assignee":null,"reporter":{{"account_id":"u-7","display_name":"Grace Hopper","email":"grace@example.com"}}}}}}"#,
        n % 50,
    )
}

/// Posts `total` new events in batches of `batch`, [`IN_FLIGHT`] requests at
/// once spread over `nodes` in turn, numbering events from `next`; returns
/// events per second.
pub async fn ingest_rate(nodes: &[TestDroid], batch: u64, total: u64, next: &AtomicU64) -> f64 {
    let started = Instant::now();
    let per_task = total / IN_FLIGHT;
    let tasks = (0..IN_FLIGHT).map(|t| async move {
        let mut sent = 0;
        let mut turn = t as usize;
        while sent < per_task {
            let first = next.fetch_add(batch, Ordering::Relaxed);
            let body = format!(
                "[{}]",
                (first..first + batch)
                    .map(|n| ticket_event(n, 1))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let node = &nodes[turn % nodes.len()];
            turn += 1;
            let r = node.post("/v1/ingest/tracker", &body).await;
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.json()["applied"], batch, "{}", r.body);
            sent += batch;
        }
    });
    futures::future::join_all(tasks).await;
    total as f64 / started.elapsed().as_secs_f64()
}

/// Posts batches of 10 updates every 10 ms for 5 s to `droid`, for keys a
/// sidecar following `followed` (the same droid, or another node) holds;
/// returns, sorted, each update's time from its acknowledgement to the sidecar
/// having applied it (visible to reads), and how many were visible first.
pub async fn sidecar_lags(droid: &TestDroid, followed: &TestDroid) -> (Vec<Duration>, usize) {
    const KEYS: u64 = 5_000;
    let first_key = 30_000_000;
    let keys = first_key..first_key + KEYS;
    for chunk in keys.clone().collect::<Vec<_>>().chunks(500) {
        let body = format!(
            "[{}]",
            chunk
                .iter()
                .map(|n| ticket_event(*n, 1))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(droid.post("/v1/ingest/tracker", &body).await.status, 200);
    }
    let sidecar = crate::TestSidecar::start(
        &followed.url(""),
        &format!("{}[record_types.ticket]\n", crate::sidecar::FAST_FEED),
    )
    .await;
    sidecar.wait_in_sync().await;
    for n in keys.clone() {
        let r = sidecar
            .get(&format!(
                "/v1/entity/ticket/OPS-{n}?tenant=tenant-{}",
                n % 50
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Every position the sidecar reaches, with when.
    let mut position = sidecar.sidecar().sync().watch_position();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let watcher = tokio::spawn(async move {
        while position.changed().await.is_ok() {
            let seq = *position.borrow_and_update();
            if tx.send((seq, Instant::now())).is_err() {
                return;
            }
        }
    });
    let mut acked_at = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    for round in 0..500u64 {
        ticker.tick().await;
        let first = first_key + (round * 10) % KEYS;
        let body = format!(
            "[{}]",
            (first..first + 10)
                .map(|n| ticket_event(n, 2 + round))
                .collect::<Vec<_>>()
                .join(",")
        );
        let r = droid.post("/v1/ingest/tracker", &body).await;
        let acked = Instant::now();
        assert_eq!(r.status, 200, "{}", r.body);
        for result in r.json()["results"].as_array().unwrap() {
            acked_at.push((result["seqs"][0].as_u64().unwrap(), acked));
        }
    }
    let last = acked_at.iter().map(|(seq, _)| *seq).max().unwrap();
    let mut reached = Vec::new();
    while reached.last().is_none_or(|(seq, _)| *seq < last) {
        let step = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the sidecar applied every change")
            .unwrap();
        reached.push(step);
    }
    watcher.abort();
    let (mut lags, mut early) = (Vec::new(), 0);
    for (seq, acked) in acked_at {
        let (_, at) = reached.iter().find(|(p, _)| *p >= seq).unwrap();
        match at.checked_duration_since(acked) {
            Some(lag) => lags.push(lag),
            None => {
                early += 1;
                lags.push(Duration::ZERO);
            }
        }
    }
    // Spot check over HTTP: the last update is what the sidecar serves.
    let n = first_key + (499 * 10) % KEYS + 9;
    let r = sidecar
        .get(&format!(
            "/v1/entity/ticket/OPS-{n}?tenant=tenant-{}",
            n % 50
        ))
        .await;
    assert_eq!(
        (r.status, r.header("etag")),
        (200, Some("\"v501\"")),
        "{}",
        r.body
    );
    lags.sort();
    (lags, early)
}
