//! Realm migration on the embedded store (realms `us` and `eu`, one node
//! serving both): the copy rate of a tenant with 100,000 records (copied,
//! verified on both sides, then committed: the source cleared), and what it
//! does to other tenants meanwhile, against the same load with no migration:
//! the p50/p99 of reads of another tenant's records, and of ingestion
//! requests (batches of 100) of a third.
//!
//! Run with `cargo bench -p droid-e2e --bench realms` (`RECORDS=N` for
//! another size).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use droid_e2e::TestDroid;
use serde_json::{Value, json};

fn event(tenant: &str, n: u64, version: u64) -> String {
    let mut event: Value =
        serde_json::from_str(&droid_e2e::load::ticket_event(n, version)).unwrap();
    event["tenant"] = json!(tenant);
    event["id"] = json!(format!("{tenant}-{n}-{version}"));
    event.to_string()
}

async fn ingest(droid: &TestDroid, tenant: &str, from: u64, count: u64, version: u64) -> Duration {
    let body = format!(
        "[{}]",
        (from..from + count)
            .map(|n| event(tenant, n, version))
            .collect::<Vec<_>>()
            .join(",")
    );
    let started = Instant::now();
    let r = droid.post("/v1/ingest/tracker", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    started.elapsed()
}

fn percentiles(name: &str, mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at =
        |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)].as_secs_f64() * 1e3;
    let (p50, p99) = (at(50), at(99));
    println!(
        "  {name}: p50 {p50:.2} ms, p99 {p99:.2} ms ({} requests)",
        samples.len()
    );
    (p50, p99)
}

/// Reads of `initech` and ingestion of `hooli` until `stop`; their latencies.
async fn other_tenants(
    droid: Arc<TestDroid>,
    stop: Arc<AtomicBool>,
) -> (Vec<Duration>, Vec<Duration>) {
    let next = Arc::new(AtomicU64::new(0));
    let reader = {
        let (droid, stop) = (droid.clone(), stop.clone());
        tokio::spawn(async move {
            let mut lats = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let r = droid
                    .get(&format!(
                        "/v1/entity/ticket/OPS-{}?tenant=initech",
                        n % 1000
                    ))
                    .await;
                assert_eq!(r.status, 200, "{}", r.body);
                lats.push(started.elapsed());
                n += 1;
            }
            lats
        })
    };
    let writer = tokio::spawn(async move {
        let mut lats = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let from = next.fetch_add(100, Ordering::Relaxed);
            lats.push(ingest(&droid, "hooli", from, 100, 1).await);
        }
        lats
    });
    (reader.await.unwrap(), writer.await.unwrap())
}

fn main() {
    let records: u64 = std::env::var("RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = droid_e2e::bench::tokio_runtime();
    rt.block_on(async {
        let config = format!(
            "{}\n[realms.us]\n[realms.eu]\n[tenancy]\ndefault_realm = \"us\"\n",
            droid_e2e::droid::TICKETS
        );
        let droid = Arc::new(TestDroid::start(&config).await);
        for from in (0..records).step_by(1000) {
            ingest(&droid, "acme", from, 1000.min(records - from), 1).await;
        }
        ingest(&droid, "initech", 0, 1000, 1).await;
        println!("realm migration of a tenant with {records} records (embedded store, pages of 500)");

        // The same load with no migration, for as long as a copy takes.
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(other_tenants(droid.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop.store(true, Ordering::Relaxed);
        let (reads, writes) = load.await.unwrap();
        println!("other tenants, no migration (5 s):");
        let (_, read_p99) = percentiles("reads of another tenant", reads);
        let (_, write_p99) = percentiles("ingestion of a third (100 events)", writes);

        let now = std::time::SystemTime::now();
        let at = |t| humantime::format_rfc3339_seconds(t).to_string();
        let r = droid
            .post(
                "/v1/admin/migrations/schedule",
                &json!({"tenant": "acme", "target_realm": "eu", "start": at(now - Duration::from_secs(60)), "end": at(now + Duration::from_secs(3600))}).to_string(),
            )
            .await;
        let id = r.json()["migration_id"].as_str().unwrap().to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(other_tenants(droid.clone(), stop.clone()));
        let started = Instant::now();
        droid
            .post("/v1/admin/migrations/start", &json!({"migration_id": id}).to_string())
            .await;
        let status = |wanted: &'static str| {
            let (droid, id) = (droid.clone(), id.clone());
            async move {
                loop {
                    let s = droid
                        .get(&format!("/v1/admin/migrations/status?migration_id={id}"))
                        .await
                        .json();
                    if s["status"] == wanted {
                        return s;
                    }
                    assert_ne!(s["status"], "Failed", "{s}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let ready = status("Ready-to-commit").await;
        let copied = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let (reads, writes) = load.await.unwrap();
        assert_eq!(ready["verified"][0], records);
        // The copy waits two directory refreshes (0.5 s) before it reads.
        let copying = copied.saturating_sub(Duration::from_millis(500));
        println!(
            "copy and verify: {:.2} s, {:.0} records/s",
            copying.as_secs_f64(),
            records as f64 / copying.as_secs_f64()
        );
        println!("other tenants, during the copy:");
        let (_, read_p99_during) = percentiles("reads of another tenant", reads);
        let (_, write_p99_during) = percentiles("ingestion of a third (100 events)", writes);
        println!(
            "  p99 during / without: reads {:.2}x, ingestion {:.2}x",
            read_p99_during / read_p99,
            write_p99_during / write_p99
        );
        let started = Instant::now();
        droid
            .post("/v1/admin/migrations/commit", &json!({"migration_id": id}).to_string())
            .await;
        status("Committed").await;
        let committed = started.elapsed().saturating_sub(Duration::from_millis(500));
        println!(
            "commit (verify, flip, clear the source): {:.2} s, {:.0} records/s removed",
            committed.as_secs_f64(),
            records as f64 / committed.as_secs_f64()
        );
    });
}
