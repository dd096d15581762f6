//! Ingestion throughput over loopback HTTP: ticket events (about 300 bytes of
//! payload each) posted to `POST /v1/ingest/{source}`, through the wasm ticket
//! transformer, committed durably to the embedded store before each answer.
//! Batches of 1, 100 and 1,000 events, 4 requests in flight. Then the time from
//! an acknowledgement to the record being readable.
//!
//! Run with `cargo bench -p droid-e2e --bench ingest`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use droid_e2e::TestDroid;

use droid_e2e::droid::TICKETS;
const IN_FLIGHT: u64 = 4;

fn event(n: u64) -> String {
    format!(
        r#"{{"id":"ev-{n}","kind":"ticket.updated","tenant":"tenant-{}","occurred_at":1763633700000,"payload":{{"ticket":{{"key":"OPS-{n}","summary":"Checkout latency above SLO","description":"Customers report slow checkouts.","status":"open","priority":"high","labels":["payments"],"updated_at":"2026-11-20T10:15:00Z","version":1}},"project":{{"key":"OPS","name":"Operations"}},"assignee":null,"reporter":{{"account_id":"u-7","display_name":"Grace Hopper","email":"grace@example.com"}}}}}}"#,
        n % 50
    )
}

fn main() {
    let rt = droid_e2e::bench::tokio_runtime();
    rt.block_on(async {
        let droid = Arc::new(TestDroid::start(TICKETS).await);
        println!(
            "ingestion, ~{} byte events, {IN_FLIGHT} requests in flight",
            event(1).len()
        );
        let next = Arc::new(AtomicU64::new(0));
        for (batch, total) in [(1u64, 2_000u64), (100, 20_000), (1_000, 60_000)] {
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..IN_FLIGHT {
                let (droid, next) = (droid.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    let mut sent = 0;
                    while sent < total / IN_FLIGHT {
                        let first = next.fetch_add(batch, Ordering::Relaxed);
                        let body = format!(
                            "[{}]",
                            (first..first + batch).map(event).collect::<Vec<_>>().join(",")
                        );
                        let r = droid.post("/v1/ingest/tracker", &body).await;
                        assert_eq!(r.status, 200, "{}", r.body);
                        assert_eq!(r.json()["applied"], batch, "{}", r.body);
                        sent += batch;
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let elapsed = started.elapsed();
            println!(
                "  batch {batch:>5}: {:>8.0} events/s ({total} events in {:.2} s)",
                total as f64 / elapsed.as_secs_f64(),
                elapsed.as_secs_f64()
            );
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
    });
}
