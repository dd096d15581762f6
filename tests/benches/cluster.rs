//! Several nodes on real engines, next to the embedded store in the same run:
//!
//! - ingestion events/s at batches of 1, 100 and 1,000 into the embedded
//!   store, into PostgreSQL through one node, and through three nodes
//!   (requests spread over them), four requests in flight; PostgreSQL syncs
//!   every commit, as the embedded store does;
//! - propagation from an acknowledgement on node A to a sidecar following
//!   node B, at 1,000 events/s;
//! - NATS JetStream with three nodes: throughput of a published backlog, and
//!   publish-to-committed latency at 1,000 events/s;
//! - cache hits of ingested records on a node backed by PostgreSQL against
//!   one on the embedded store (hits never touch the store);
//! - a plugin pushed through one of three nodes: time until each node serves
//!   it (compiled artifacts cached, as after a node's first sight of a file).
//!
//! Run with `cargo bench -p droid-e2e --bench cluster` (`ONLY=ingest` for the
//! ingestion rates alone; it starts PostgreSQL
//! and nats-server of its own; `scripts/servers.sh` installs them).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use droid_e2e::load::{ingest_rate, sidecar_lags, ticket_event};
use droid_e2e::{Setup, TestDroid};
use droid_test_servers::{NatsServer, PostgresServer};

const TICKETS_TYPE: &str =
    "[record_types.ticket]\nmode = \"ingested\"\ntransformer = \"ticket_transformer.wasm\"\n";

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn percentiles(mut lags: Vec<Duration>) -> String {
    lags.sort();
    format!(
        "p50 {:.0} us, p99 {:.0} us, max {:.0} us ({} events)",
        us(lags[lags.len() / 2]),
        us(lags[lags.len() * 99 / 100]),
        us(lags[lags.len() - 1]),
        lags.len()
    )
}

async fn nodes(setup: &Setup, n: usize) -> Vec<TestDroid> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(setup.clone().start().await);
    }
    out
}

fn main() {
    let rt = droid_e2e::bench::tokio_runtime();
    rt.block_on(async {
        let pg = PostgresServer::start_durable();
        println!("ingestion, ~{} byte events, 4 requests in flight", ticket_event(1, 1).len());
        let embedded = nodes(&Setup::new().tickets(), 1).await;
        let one = nodes(&Setup::new().tickets().postgres(&pg.url(), "one"), 1).await;
        let three = nodes(&Setup::new().tickets().postgres(&pg.url(), "three"), 3).await;
        for (batch, total) in [(1u64, 2_000u64), (100, 20_000), (1_000, 60_000)] {
            let mut line = format!("  batch {batch:>5}:");
            for (name, fleet) in [("embedded", &embedded), ("postgres 1 node", &one), ("postgres 3 nodes", &three)] {
                let next = AtomicU64::new(batch * 1_000_000_000);
                let rate = ingest_rate(fleet, batch, total, &next).await;
                line.push_str(&format!("  {name} {rate:>7.0}/s"));
            }
            println!("{line}");
        }

        if std::env::var("ONLY").as_deref() == Ok("ingest") {
            return;
        }
        // An acknowledgement on A, applied by a sidecar following B.
        let (lags, early) = sidecar_lags(&three[0], &three[1]).await;
        println!(
            "  acknowledgement on node A to visibility through a sidecar following node B, 1,000 events/s ({early} visible before their acknowledgement, counted as 0): {}",
            percentiles(lags)
        );

        nats(&pg).await;
        hits(&embedded[0], &one[0]).await;
        pushed(&pg).await;
    });
}

/// Three nodes consuming one stream: a backlog's throughput, then latency
/// at a steady 1,000 events/s.
async fn nats(pg: &PostgresServer) {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: "EVENTS".into(),
            subjects: vec!["events.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let toml = format!(
        "{TICKETS_TYPE}\n[sources.tracker]\nrecord_type = \"ticket\"\nstream = {{ url = \"{}\", stream = \"EVENTS\", subject = \"events.tracker\", durable = \"droid\", batch = 500 }}\n",
        nats.url()
    );
    let fleet = nodes(&Setup::new().raw(&toml).postgres(&pg.url(), "streamed"), 3).await;
    let records = fleet[0].app().service.home_store().records.clone();
    let start = store_last(&records).await;

    // A backlog of 20,000 events, published as fast as JetStream acknowledges.
    const BACKLOG: u64 = 20_000;
    let started = Instant::now();
    let mut acks = Vec::new();
    for n in 0..BACKLOG {
        acks.push(
            jetstream
                .publish("events.tracker", ticket_event(40_000_000 + n, 1).into())
                .await
                .unwrap(),
        );
        if acks.len() == 1_000 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
    let published = started.elapsed();
    while store_last(&records).await < start + BACKLOG {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let committed = started.elapsed();
    println!(
        "  NATS, 3 nodes: {BACKLOG} events published in {:.2} s, all committed after {:.2} s: {:.0} events/s",
        published.as_secs_f64(),
        committed.as_secs_f64(),
        BACKLOG as f64 / committed.as_secs_f64()
    );

    // Latency: each event's publish time against when its change is in the log.
    let mut signal = records.subscribe();
    let mut position = store_last(&records).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let reader = records.clone();
    let watcher = tokio::spawn(async move {
        while signal.changed().await.is_ok() {
            let at = Instant::now();
            let (from, reader) = (position, reader.clone());
            let changes = tokio::task::spawn_blocking(move || reader.changes(from, 10_000))
                .await
                .unwrap()
                .unwrap();
            for change in changes {
                position = change.seq;
                if tx.send((change.event_id, at)).is_err() {
                    return;
                }
            }
        }
    });
    let mut sent = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    for round in 0..500u64 {
        ticker.tick().await;
        for i in 0..10 {
            let n = 50_000_000 + round * 10 + i;
            sent.insert(format!("ev-{n}-1"), Instant::now());
            jetstream
                .publish("events.tracker", ticket_event(n, 1).into())
                .await
                .unwrap();
        }
    }
    let mut lags = Vec::new();
    while lags.len() < sent.len() {
        let (id, at) = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("every event committed")
            .unwrap();
        if let Some(published) = sent.get(&id) {
            lags.push(at.saturating_duration_since(*published));
        }
    }
    watcher.abort();
    println!(
        "  NATS, 3 nodes: publish to committed (seen in the log) at 1,000 events/s: {}",
        percentiles(lags)
    );
}

async fn store_last(records: &Arc<dyn droid_host::store::Records>) -> u64 {
    let records = records.clone();
    tokio::task::spawn_blocking(move || records.last_seq().unwrap())
        .await
        .unwrap()
}

/// Hits of 1,000 ingested records read over and over, 32 at a time for 5 s,
/// on a node of each store.
async fn hits(embedded: &TestDroid, postgres: &TestDroid) {
    let mut line = "  cache hits of ingested records, 32 connections, 5 s:".to_owned();
    for (name, node) in [("embedded", embedded), ("postgres", postgres)] {
        let body = format!(
            "[{}]",
            (0..1_000u64)
                .map(|n| ticket_event(60_000_000 + n, 1))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(node.post("/v1/ingest/tracker", &body).await.status, 200);
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        let paths: Arc<Vec<String>> = Arc::new(
            (0..1_000u64)
                .map(|n| {
                    let n = 60_000_000 + n;
                    node.url(&format!(
                        "/v1/entity/ticket/OPS-{n}?tenant=tenant-{}",
                        n % 50
                    ))
                })
                .collect(),
        );
        for path in paths.iter() {
            assert_eq!(client.get(path).send().await.unwrap().status(), 200);
        }
        let done = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + Duration::from_secs(5);
        let tasks: Vec<_> = (0..32)
            .map(|t| {
                let (client, paths, done) = (client.clone(), paths.clone(), done.clone());
                tokio::spawn(async move {
                    let mut i = t * 31;
                    while Instant::now() < until {
                        let r = client.get(&paths[i % paths.len()]).send().await.unwrap();
                        assert_eq!(r.status(), 200);
                        r.bytes().await.unwrap();
                        done.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        line.push_str(&format!(
            "  {name} {:.0}/s",
            done.load(Ordering::Relaxed) as f64 / 5.0
        ));
    }
    println!("{line}");
}

/// Pushes a new version of an adapter to one of three nodes and reports how
/// long until every node serves it; then rolls it back on another node and
/// reports how long until every node serves the old one again.
async fn pushed(pg: &PostgresServer) {
    let echo = "[record_types.echo]\nmode = \"read-through\"\nadapter = \"echo.wasm\"\nbase_url = \"http://127.0.0.1:9/\"\n";
    let v1 = std::fs::read(droid_e2e::plugins::VERSION_ECHO_V1).unwrap();
    let v2 = std::fs::read(droid_e2e::plugins::VERSION_ECHO_V2).unwrap();
    let mut fleet = Vec::new();
    for n in 0..3 {
        fleet.push(
            TestDroid::start_with_plugin_settings(
                "watch = false\n",
                &format!(
                    "{echo}\n[server]\nnode_name = \"bench-{n}\"\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\nschema = \"pushed\"\n",
                    pg.url()
                ),
                &[("echo.wasm", &v1)],
            )
            .await,
        );
    }
    let key = AtomicU64::new(0);
    let all_serve = async |version: &str, started: Instant| {
        let mut last = Duration::ZERO;
        for node in &fleet {
            loop {
                let n = key.fetch_add(1, Ordering::Relaxed);
                let r = node.get(&format!("/v1/entity/echo/k{n}")).await;
                if r.status == 200 && r.json()["version"] == version {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            last = started.elapsed();
        }
        last
    };
    let started = Instant::now();
    let r = reqwest::Client::new()
        .post(fleet[0].url("/v1/admin/plugins/files/echo@2.0.0.wasm"))
        .body(v2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let acknowledged = started.elapsed();
    let pushed = all_serve("2.0.0", started).await;
    let started = Instant::now();
    let r = fleet[2].post("/v1/admin/plugins/echo/rollback", "{}").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rolled_back = all_serve("1.0.0", started).await;
    println!(
        "  a plugin pushed through one of 3 nodes: answered in {:.0} ms, served by all 3 after {:.0} ms; rolled back on another, all 3 serve the old version after {:.0} ms",
        acknowledged.as_secs_f64() * 1e3,
        pushed.as_secs_f64() * 1e3,
        rolled_back.as_secs_f64() * 1e3
    );
}
