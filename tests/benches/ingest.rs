//! Ingestion throughput over loopback HTTP: ticket events (about 300 bytes of
//! payload each) posted to `POST /v1/ingest/{source}`, through the wasm ticket
//! transformer, committed durably to the embedded store before each answer.
//! Batches of 1, 100 and 1,000 events, 4 requests in flight. Then the time from
//! an acknowledgement to the record being readable, and the time from posting
//! an event to a change-feed follower receiving it at a steady 1,000 events/s,
//! and from its acknowledgement to its visibility through a sidecar (which
//! holds every key updated).
//!
//! Run with `cargo bench -p droid-e2e --bench ingest`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use droid_e2e::TestDroid;
use droid_e2e::droid::TICKETS;
use droid_e2e::load::{IN_FLIGHT, ingest_rate, sidecar_lags, ticket_event};

fn event(n: u64) -> String {
    ticket_event(n, 1)
}

fn main() {
    let rt = droid_e2e::bench::tokio_runtime();
    rt.block_on(async {
        let droid = Arc::new(TestDroid::start(TICKETS).await);
        println!(
            "ingestion, ~{} byte events, {IN_FLIGHT} requests in flight",
            event(1).len()
        );
        let next = AtomicU64::new(0);
        for (batch, total) in [(1u64, 2_000u64), (100, 20_000), (1_000, 60_000)] {
            let rate = ingest_rate(std::slice::from_ref(&droid), batch, total, &next).await;
            println!("  batch {batch:>5}: {rate:>8.0} events/s ({total} events)");
        }

        // From acknowledgement to readable: the read right after the answer.
        let mut lags = Vec::new();
        for i in 0..200u64 {
            let n = 10_000_000 + i;
            let r = droid.post("/v1/ingest/tracker", &format!("[{}]", event(n))).await;
            assert_eq!(r.status, 200);
            let acked = Instant::now();
            let read = droid
                .get(&format!("/v1/entity/ticket/OPS-{n}?tenant=tenant-{}", n % 50))
                .await;
            assert_eq!(read.status, 200, "readable at once after the answer");
            lags.push(acked.elapsed());
        }
        lags.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "  acknowledgement to readable: p50 {:.0} us, p99 {:.0} us (the first read after the answer always finds it)",
            us(lags[lags.len() / 2]),
            us(lags[lags.len() * 99 / 100])
        );

        let lags = feed_lags(&droid).await;
        println!(
            "  post to change-feed delivery at 1,000 events/s (batches of 10 every 10 ms, {} events): p50 {:.0} us, p99 {:.0} us, max {:.0} us",
            lags.len(),
            us(lags[lags.len() / 2]),
            us(lags[lags.len() * 99 / 100]),
            us(lags[lags.len() - 1])
        );

        let (lags, early) = sidecar_lags(&droid, &droid).await;
        println!(
            "  acknowledgement to sidecar visibility at 1,000 events/s ({} updates of held keys; {early} visible before their acknowledgement, counted as 0): p50 {:.0} us, p99 {:.0} us, max {:.0} us",
            lags.len(),
            us(lags[lags.len() / 2]),
            us(lags[lags.len() * 99 / 100]),
            us(lags[lags.len() - 1])
        );
    });
}

/// Posts batches of 10 events every 10 ms for 5 s while a follower reads the
/// change feed; returns, sorted, each event's time from its post being sent
/// to the follower receiving its change.
async fn feed_lags(droid: &Arc<TestDroid>) -> Vec<Duration> {
    use futures::StreamExt;
    let since = droid.app().service.home_store().records.last_seq().unwrap();
    let response = reqwest::Client::new()
        .get(droid.url(&format!("/v1/changes?since={since}")))
        .send()
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let follower = tokio::spawn(async move {
        let mut stream = response.bytes_stream();
        let mut pending = String::new();
        while let Some(chunk) = stream.next().await {
            let at = Instant::now();
            pending.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
            while let Some(i) = pending.find('\n') {
                let line: String = pending.drain(..=i).collect();
                let change: serde_json::Value = serde_json::from_str(&line).unwrap();
                if let Some(seq) = change["seq"].as_u64()
                    && tx.send((seq, at)).is_err()
                {
                    return;
                }
            }
        }
    });
    let mut sent_at = std::collections::HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    for round in 0..500u64 {
        ticker.tick().await;
        let first = 20_000_000 + round * 10;
        let body = format!(
            "[{}]",
            (first..first + 10).map(event).collect::<Vec<_>>().join(",")
        );
        let sent = Instant::now();
        let r = droid.post("/v1/ingest/tracker", &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        for result in r.json()["results"].as_array().unwrap() {
            sent_at.insert(result["seqs"][0].as_u64().unwrap(), sent);
        }
    }
    let mut lags = Vec::new();
    while lags.len() < sent_at.len() {
        let (seq, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the follower received every change")
            .unwrap();
        if let Some(sent) = sent_at.get(&seq) {
            lags.push(at.duration_since(*sent));
        }
    }
    follower.abort();
    lags.sort();
    lags
}
