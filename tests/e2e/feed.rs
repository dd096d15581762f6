//! The change feed, `GET /v1/changes`: the log in order, then live changes and
//! heartbeats; resuming from a sequence number; expired and bad positions;
//! server-sent events; per-record-type access; and a slow subscriber dropped
//! rather than buffered for.

use std::time::Duration;

use droid_e2e::tokens::Issuers;
use droid_e2e::{Setup, TestBackend, TestDroid};
use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn event(id: &str, n: u64, kind: &str, version: u64, summary: &str) -> String {
    format!(
        r#"{{"id":"{id}","kind":"{kind}","tenant":"acme","occurred_at":1763633700000,"payload":{{"ticket":{{"key":"OPS-{n}","summary":"{summary}","status":"open","priority":"low","updated_at":"t","version":{version}}},"project":{{"key":"OPS","name":"Ops"}},"assignee":null,"reporter":{{"account_id":"u","display_name":"U"}}}}}}"#
    )
}

async fn ingest(droid: &TestDroid, events: &[String]) {
    let r = droid
        .post("/v1/ingest/tracker", &format!("[{}]", events.join(",")))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn droid(backend: &TestBackend, extra: &str) -> TestDroid {
    Setup::new()
        .raw(extra)
        .tickets()
        .site(backend, "")
        .start()
        .await
}

/// A streaming reader of the feed's lines.
struct Lines {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    pending: String,
}

impl Lines {
    async fn open(droid: &TestDroid, query: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = reqwest::Client::new().get(droid.url(&format!("/v1/changes?{query}")));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        Self {
            stream: response.bytes_stream().boxed(),
            pending: String::new(),
        }
    }

    /// The next line, or `None` when the stream ended.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.pending.find('\n') {
                let line: String = self.pending.drain(..=i).collect();
                return Some(serde_json::from_str(&line).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("the feed went quiet")?;
            self.pending
                .push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }

    /// The next change, skipping heartbeats.
    async fn change(&mut self) -> Value {
        loop {
            let line = self.next().await.expect("the stream ended");
            if line.get("heartbeat").is_none() {
                return line;
            }
        }
    }
}

#[tokio::test]
async fn the_feed_streams_the_log_in_order_then_follows_live_changes() {
    let backend = TestBackend::start().await;
    backend.put("s1", r#"{"n":1}"#);
    let droid = droid(&backend, "").await;
    ingest(
        &droid,
        &[
            event("e1", 1, "ticket.created", 1, "one"),
            event("e2", 1, "ticket.updated", 2, "one again"),
            event("e3", 2, "ticket.created", 1, "two"),
        ],
    )
    .await;
    let mut feed = Lines::open(&droid, "since=0&heartbeat_ms=100", &[]).await;
    let first = feed.change().await;
    assert_eq!(first["seq"], 1);
    assert_eq!(first["kind"], "upsert");
    assert_eq!(first["record_type"], "ticket");
    assert_eq!(first["body"]["summary"], "one", "the body is JSON: {first}");
    assert!(first["occurred_at_ms"].as_u64().unwrap() > 0);
    assert!(
        first["committed_at_ms"].as_u64().unwrap() >= first["occurred_at_ms"].as_u64().unwrap()
    );
    assert_eq!(feed.change().await["seq"], 2);
    assert_eq!(feed.change().await["seq"], 3);

    // Caught up: heartbeats carry the position.
    let heartbeat = feed.next().await.unwrap();
    assert_eq!(heartbeat["heartbeat"]["last_seq"], 3, "{heartbeat}");

    // Live: a delete, then an invalidation of a read-through key.
    ingest(&droid, &[event("e4", 2, "ticket.deleted", 2, "two")]).await;
    let deleted = feed.change().await;
    assert_eq!(
        (deleted["seq"].as_u64(), deleted["kind"].as_str()),
        (Some(4), Some("delete"))
    );
    let r = droid
        .post(
            "/v1/invalidate",
            r#"{"record_type":"site","key":"s1","version":7}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let invalidated = feed.change().await;
    assert_eq!(invalidated["seq"], 5);
    assert_eq!(invalidated["kind"], "invalidate");
    assert_eq!(
        (
            invalidated["record_type"].as_str(),
            invalidated["key"].as_str(),
            invalidated["version"].as_u64()
        ),
        (Some("site"), Some("s1"), Some(7))
    );
    assert!(invalidated.get("body").is_none());
}

#[tokio::test]
async fn a_follower_resumes_from_its_sequence_missing_nothing() {
    let backend = TestBackend::start().await;
    let droid = droid(&backend, "").await;
    let events: Vec<String> = (0..20)
        .map(|n| event(&format!("e{n}"), n, "ticket.created", 1, "s"))
        .collect();
    ingest(&droid, &events[..10]).await;
    let mut feed = Lines::open(&droid, "since=0", &[]).await;
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(feed.change().await["seq"].as_u64().unwrap());
    }
    drop(feed);
    ingest(&droid, &events[10..]).await;
    let mut feed = Lines::open(&droid, &format!("since={}", seen.last().unwrap()), &[]).await;
    while seen.len() < 20 {
        seen.push(feed.change().await["seq"].as_u64().unwrap());
    }
    assert_eq!(
        seen,
        (1..=20).collect::<Vec<_>>(),
        "in order, none missing, none twice"
    );

    // Server-sent events, resuming with Last-Event-ID.
    let response = reqwest::Client::new()
        .get(droid.url("/v1/changes"))
        .header("accept", "text/event-stream")
        .header("last-event-id", "19")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    while !text.contains("event: change") {
        let chunk = stream.next().await.unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    // The stream opens with a heartbeat naming its position and the log's end.
    assert!(
        text.starts_with("id: 19\nevent: heartbeat\ndata: {\"at_ms\":"),
        "{text}"
    );
    assert!(text.contains(r#""head_seq":20"#), "{text}");
    assert!(text.contains("id: 20\nevent: change\ndata: {"), "{text}");

    // `since=now`: only what commits from here on.
    let mut feed = Lines::open(&droid, "since=now", &[]).await;
    let opening = feed.next().await.unwrap();
    assert_eq!(opening["heartbeat"]["last_seq"], 20, "{opening}");
    ingest(&droid, &[event("e20", 20, "ticket.created", 1, "s")]).await;
    assert_eq!(feed.change().await["seq"], 21);
}

#[tokio::test]
async fn positions_the_log_does_not_hold_are_refused_so_the_follower_resynchronises() {
    let backend = TestBackend::start().await;
    let droid = droid(&backend, "").await;
    let events: Vec<String> = (0..10)
        .map(|n| event(&format!("e{n}"), n, "ticket.created", 1, "s"))
        .collect();
    ingest(&droid, &events).await;
    assert_eq!(
        droid
            .app()
            .service
            .home_store()
            .records
            .trim_changes(3)
            .unwrap(),
        7
    );
    for (since, why) in [
        ("0", "no longer held"),
        ("6", "no longer held"),
        ("11", "ahead of it"),
    ] {
        let r = droid.get(&format!("/v1/changes?since={since}")).await;
        assert_eq!(r.status, 410, "{since}: {}", r.body);
        assert_eq!(r.error_code(), "sequence_expired");
        assert!(r.body.contains(why), "{}", r.body);
    }
    let mut feed = Lines::open(&droid, "since=7", &[]).await;
    assert_eq!(feed.change().await["seq"], 8);

    for (query, status, code) in [
        ("since=abc", 400, "invalid_since"),
        ("since=-1", 400, "invalid_since"),
        ("since=18446744073709551615", 410, "sequence_expired"),
        ("since=0&record_types=nope", 404, "unknown_record_type"),
    ] {
        let r = droid.get(&format!("/v1/changes?{query}")).await;
        assert_eq!(
            (r.status, r.error_code()),
            (status, code.to_owned()),
            "{query}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn a_subscriber_sees_only_the_record_types_it_may_read() {
    let issuers = Issuers::new(&["reader", "tracker"]);
    let backend = TestBackend::start().await;
    let droid = TestDroid::start(&format!(
        "{}\n[record_types.ticket]\nmode = \"ingested\"\ntransformer = \"ticket_transformer.wasm\"\nreaders = [\"tracker\"]\n\n[sources.tracker]\nrecord_type = \"ticket\"\npublishers = [\"tracker\"]\n\n[record_types.site]\nmode = \"read-through\"\nadapter = \"http_json_adapter.wasm\"\nbase_url = \"{}\"\nreaders = [\"reader\"]\ninvalidators = [\"tracker\"]\n",
        issuers.auth_table(&[], ""),
        backend.url("/records")
    ))
    .await;
    let bearer = |issuer: &str| format!("Bearer {}", issuers.token(issuer));
    let r = droid
        .send_with(
            reqwest::Method::POST,
            "/v1/ingest/tracker",
            Some(&format!("[{}]", event("e1", 1, "ticket.created", 1, "s"))),
            &[("authorization", &bearer("tracker"))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = droid
        .send_with(
            reqwest::Method::POST,
            "/v1/invalidate",
            Some(r#"{"record_type":"site","key":"k"}"#),
            &[("authorization", &bearer("tracker"))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let token = bearer("reader");
    let r = droid
        .get_with(
            "/v1/changes?record_types=ticket",
            &[("authorization", &token)],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code()),
        (403, "forbidden".to_owned()),
        "{}",
        r.body
    );
    assert_eq!(droid.get("/v1/changes").await.status, 401);
    // Without naming record types: only what it may read; the ticket change is
    // skipped (the heartbeat still carries the position).
    let mut feed = Lines::open(&droid, "heartbeat_ms=100", &[("authorization", &token)]).await;
    let change = feed.change().await;
    assert_eq!(
        (change["seq"].as_u64(), change["record_type"].as_str()),
        (Some(2), Some("site"))
    );
}

/// A subscriber that stops reading is dropped once its buffer has stayed full
/// for the send timeout; it resumes from its last sequence number.
#[tokio::test]
async fn a_slow_subscriber_is_dropped_and_resumes() {
    let backend = TestBackend::start().await;
    let droid = droid(&backend, "[server]\nfeed_send_timeout_ms = 200\n").await;
    // About 12 MB of changes: more than every buffer between droid and a
    // client with a tiny receive window.
    let summary = "x".repeat(4000);
    const EVENTS: u64 = 3000;
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(100) {
        let events: Vec<String> = chunk
            .iter()
            .map(|n| event(&format!("e{n}"), *n, "ticket.created", 1, &summary))
            .collect();
        ingest(&droid, &events).await;
    }
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket
        .connect(
            droid
                .url("/")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .unwrap(),
        )
        .await
        .unwrap();
    stream
        .write_all(b"GET /v1/changes?since=0 HTTP/1.1\r\nHost: droid\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Do not read for a while: droid must give up on this subscriber.
    let mut dropped = 0.0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        dropped = droid
            .metric("droid_feed_dropped_total")
            .await
            .unwrap_or(0.0);
        if dropped >= 1.0 {
            break;
        }
    }
    assert!(dropped >= 1.0, "the slow subscriber was not dropped");
    // What it did get ends early; it resumes from the last change it has.
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut received))
        .await
        .expect("the dropped stream ends")
        .unwrap();
    let text = String::from_utf8_lossy(&received);
    let last = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["seq"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(
        last < EVENTS,
        "the stream ended before the end of the log ({last})"
    );
    let mut feed = Lines::open(&droid, &format!("since={last}"), &[]).await;
    let mut next = last + 1;
    while next <= EVENTS {
        assert_eq!(feed.change().await["seq"], next);
        next += 1;
    }
}

/// A droid shutting down ends its feeds rather than waiting on them forever.
#[tokio::test]
async fn shutting_down_ends_the_streams() {
    let backend = TestBackend::start().await;
    let droid = droid(&backend, "").await;
    ingest(&droid, &[event("e1", 1, "ticket.created", 1, "s")]).await;
    let mut feed = Lines::open(&droid, "since=0&heartbeat_ms=60000", &[]).await;
    assert_eq!(feed.change().await["seq"], 1);
    tokio::time::timeout(Duration::from_secs(10), droid.stop())
        .await
        .expect("the shutdown is not held up by a follower");
    assert!(feed.next().await.is_none(), "the stream ended");
}

/// Subscribers that never read their socket hold a bounded number of bytes
/// each and in all, however large the changes: the budget is
/// `feed_buffer_bytes`, the tail `feed_tail_bytes`, and after the send
/// timeout they are dropped, while everyone else is served as usual.
#[tokio::test]
async fn stalled_subscribers_of_large_changes_hold_a_bounded_number_of_bytes() {
    const BUDGET: f64 = 4.0 * 1_048_576.0;
    const TAIL: f64 = 2.0 * 1_048_576.0;
    let backend = TestBackend::start().await;
    backend.put("s-1", r#"{"site":1}"#);
    let droid = droid(
        &backend,
        "[server]\nfeed_subscriber_bytes = 1048576\nfeed_buffer_bytes = 4194304\nfeed_tail_bytes = 2097152\nfeed_send_timeout_ms = 3000\nwrite_timeout_ms = 1000\n\n[record_types.big]\nmode = \"ingested\"\ntransformer = \"hostile_transformer.wasm\"\n\n[sources.bulk]\nrecord_type = \"big\"\n",
    )
    .await;
    // 24 posts of 32 events with a 60 KB field each: 46 MB of changes.
    for post in 0..24 {
        let events: Vec<String> = (0..32)
            .map(|i| {
                format!(
                    r#"{{"id":"p{post}-{i}","kind":"big","tenant":"t","occurred_at":1,"payload":{{"key":"k{post}-{i}","n":60000}}}}"#
                )
            })
            .collect();
        let r = droid
            .post("/v1/ingest/bulk", &format!("[{}]", events.join(",")))
            .await;
        assert_eq!(r.json()["applied"], 32, "{}", r.body);
    }
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(droid.addr()).await.unwrap();
        stream
            .write_all(b"GET /v1/changes?since=0 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        stalled.push(stream);
    }
    let mut most = (0.0f64, 0.0f64);
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Answered while every subscriber stalls: reads never wait on them.
        assert_eq!(droid.get("/v1/entity/site/s-1").await.status, 200);
        // Read in process: the gauges are shared by every droid of the test run.
        let service = &droid.app().service;
        let tail = service.realms.home().tail.bytes() as f64;
        let subscribers = service.feed.budget.held_bytes() as f64;
        most = (most.0.max(subscribers), most.1.max(tail));
    }
    assert!(
        most.0 > 0.0 && most.0 <= BUDGET,
        "subscribers held {} bytes",
        most.0
    );
    assert!(most.1 <= TAIL, "the tail held {} bytes", most.1);
    // Past the send timeout the stalled ones are dropped; the memory is back.
    let back = droid_e2e::eventually(Duration::from_secs(15), "the budget given back", || async {
        let held = droid.app().service.feed.budget.held_bytes();
        (held == 0).then_some(held as f64)
    })
    .await;
    assert_eq!(back, 0.0);
    drop(stalled);
}
