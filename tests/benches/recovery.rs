//! Recovery on the embedded store, one node:
//!
//! 1. the cost of continuous backups on ingestion: events per second in
//!    batches of 1,000 (8 requests in flight, the source's default limit), with and without `[backup]`
//!    (segments every second), alternated so drift hits both;
//! 2. the recovery point: while ingesting at full speed, how many
//!    acknowledged changes are not yet backed up (sampled every 50 ms), in
//!    changes and in seconds of ingestion: what losing the store's disk at
//!    that instant would cost;
//! 3. the restore of 3 tenants out of 1,000 holding 1,000,000 records in
//!    all, to an instant before each of the 3 had 1,000 records changed:
//!    the time from the request to the answer (fence, rebuild from the
//!    backups, plan, writes), and the same as a dry run.
//!
//! Run with `cargo bench -p droid-e2e --bench recovery` (`RECORDS=N` for
//! another total in part 3).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use droid_e2e::TestDroid;
use serde_json::{Value, json};

const IN_FLIGHT: u64 = 8;
const TENANTS: u64 = 1_000;

fn event(tenant: u64, key: u64, version: u64) -> String {
    let mut event: Value =
        serde_json::from_str(&droid_e2e::load::ticket_event(key, version)).unwrap();
    event["tenant"] = json!(format!("t-{tenant:04}"));
    event["id"] = json!(format!("t{tenant}-{key}-{version}"));
    event.to_string()
}

/// Posts `total` events (event `n`: tenant `n % TENANTS`, key `n /
/// TENANTS`, version `version`) from `next` on, in batches of `batch`;
/// returns events per second.
async fn ingest(droid: &TestDroid, total: u64, batch: u64, version: u64, next: &AtomicU64) -> f64 {
    let started = Instant::now();
    let end = next.load(Ordering::Relaxed) + total;
    let tasks = (0..IN_FLIGHT).map(|_| async move {
        loop {
            let first = next.fetch_add(batch, Ordering::Relaxed);
            if first >= end {
                break;
            }
            let body = format!(
                "[{}]",
                (first..(first + batch).min(end))
                    .map(|n| event(n % TENANTS, n / TENANTS, version))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let r = droid.post("/v1/ingest/tracker", &body).await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    });
    futures::future::join_all(tasks).await;
    total as f64 / started.elapsed().as_secs_f64()
}

fn config(backups: Option<&std::path::Path>, extra: &str) -> String {
    let backup = backups.map_or(String::new(), |dir| {
        let key = dir.join("master.key");
        std::fs::write(&key, droid_host::backup::MasterKey::generate()).unwrap();
        format!(
            "[backup]\npath = {:?}\nmaster_key_file = {:?}\n{extra}\n",
            dir.join("files").display().to_string(),
            key.display().to_string()
        )
    });
    format!(
        "{}\n[store]\nchange_log_retention = 10000000\ncache_bytes = 67108864\n{backup}[tenancy]\nrefresh_ms = 100\n",
        droid_e2e::droid::TICKETS
    )
}

fn main() {
    let rt = droid_e2e::bench::tokio_runtime();
    let records: u64 = std::env::var("RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    rt.block_on(async {
        println!("recovery bench (embedded store, one node)");

        // 1. Ingestion with and without backups.
        const EACH: u64 = 100_000;
        let mut rates = [Vec::new(), Vec::new()];
        for round in 0..2 {
            for (i, with) in [false, true].into_iter().enumerate() {
                let vault = tempfile::tempdir().unwrap();
                let droid =
                    TestDroid::start(&config(with.then_some(vault.path()), "")).await;
                let next = AtomicU64::new(0);
                ingest(&droid, 20_000, 1_000, 1, &next).await; // warm up
                let rate = ingest(&droid, EACH, 1_000, 1, &next).await;
                println!(
                    "  round {round}, {}: {rate:.0} events/s",
                    if with { "with backups" } else { "no backups" }
                );
                rates[i].push(rate);
                droid.stop().await;
            }
        }
        let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
        let (without, with) = (mean(&rates[0]), mean(&rates[1]));
        println!(
            "  ingestion at batch 1,000: {without:.0} events/s without backups, {with:.0} with: {:.1}% overhead (goal: under 10%)",
            (1.0 - with / without) * 100.0
        );

        // 2. The recovery point under full-speed ingestion.
        let vault = tempfile::tempdir().unwrap();
        let droid = Arc::new(TestDroid::start(&config(Some(vault.path()), "")).await);
        let stop = Arc::new(AtomicBool::new(false));
        let sampling = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (droid, stop, sampling) = (droid.clone(), stop.clone(), sampling.clone());
            tokio::spawn(async move {
                let mut lags = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let status = droid.get("/v1/admin/backups").await.json();
                    if let Some(lag) = status["realms"][0]["lag_changes"].as_u64()
                        && sampling.load(Ordering::Relaxed)
                    {
                        lags.push(lag);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                lags
            })
        };
        let next = AtomicU64::new(0);
        // Every tenant's data key made first, as on a node that has run a while.
        ingest(&droid, 20_000, 1_000, 1, &next).await;
        sampling.store(true, Ordering::Relaxed);
        let rate = ingest(&droid, 200_000, 1_000, 1, &next).await;
        stop.store(true, Ordering::Relaxed);
        let mut lags = sampler.await.unwrap();
        lags.sort_unstable();
        let at = |q: usize| lags[(lags.len() * q / 100).min(lags.len() - 1)];
        let worst = *lags.last().unwrap();
        println!(
            "  recovery point at {rate:.0} events/s ({} samples): p50 {} changes, p99 {}, worst {} = {:.2} s of ingestion (goal: at most 1 s)",
            lags.len(),
            at(50),
            at(99),
            worst,
            worst as f64 / rate
        );
        drop(droid);

        // 3. Restoring 3 tenants of 1,000.
        let vault = tempfile::tempdir().unwrap();
        let droid = TestDroid::start(&config(
            Some(vault.path()),
            &format!("snapshot_max_changes = {}\n", records / 2),
        ))
        .await;
        let next = AtomicU64::new(0);
        let started = Instant::now();
        let rate = ingest(&droid, records, 1_000, 1, &next).await;
        println!(
            "  loaded {records} records of {TENANTS} tenants in {:.1} s ({rate:.0}/s)",
            started.elapsed().as_secs_f64()
        );
        let wait_backed_up = || async {
            loop {
                let status = droid.get("/v1/admin/backups").await.json();
                if status["realms"][0]["lag_changes"] == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        wait_backed_up().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let chosen = [7u64, 420, 999];
        let per_tenant = records / TENANTS;
        for tenant in chosen {
            let body = format!(
                "[{}]",
                (0..per_tenant)
                    .map(|k| event(tenant, k, 2))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            assert_eq!(droid.post("/v1/ingest/tracker", &body).await.status, 200);
        }
        wait_backed_up().await;
        let tenants: Vec<String> = chosen.iter().map(|t| format!("t-{t:04}")).collect();
        for dry_run in [true, false] {
            let request = json!({"tenants": tenants, "at": at, "dry_run": dry_run}).to_string();
            let started = Instant::now();
            let r = droid.post("/v1/admin/restores", &request).await;
            let took = started.elapsed();
            assert_eq!(r.status, 200, "{}", r.body);
            let answer = r.json();
            let upserts: u64 = answer["counts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["upserts"].as_u64().unwrap())
                .sum();
            assert_eq!(upserts, per_tenant * 3, "{}", r.body);
            println!(
                "  restore of 3 tenants of {TENANTS} ({records} records){}: {:.2} s for {upserts} records written back, from {} (goal: under 10 s)",
                if dry_run { ", dry run" } else { "" },
                took.as_secs_f64(),
                answer["sources"]["default"]
            );
        }
    });
}
