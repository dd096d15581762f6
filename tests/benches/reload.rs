//! Plugin reload, measured end to end over loopback HTTP against a droid that
//! watches its plugin folder:
//!
//! 1. time from a new adapter file landing in the folder (atomic rename) to the
//!    first request answered by it: cold (content never seen: compiled), warm
//!    (compiled artifact cached on disk by an earlier droid), and held (a version
//!    this droid already holds, swapped back in);
//! 2. request latency (p50, p99) in steady state against a reload storm (a new
//!    version landing every 100 ms), for cache hits and for misses (every miss
//!    is a plugin call).
//!
//! Run with `cargo bench -p droid-e2e --bench reload`. Figures include the
//! watcher's settle time (`plugins.settle_ms`, 20 ms by default).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use droid_e2e::{Landing, TestDroid, land, plugins};

const ECHO: &str = r#"
[record_types.echo]
mode = "read-through"
adapter = "echo.wasm"
base_url = "http://127.0.0.1:9/"
"#;
const ROUNDS: usize = 11;

fn main() {
    let rt = droid_e2e::bench::tokio_runtime();
    rt.block_on(async {
        let v1 = std::fs::read(plugins::VERSION_ECHO_V1).unwrap();
        let v2 = std::fs::read(plugins::VERSION_ECHO_V2).unwrap();
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();

        println!("time from a file landing to the first request it answers ({ROUNDS} rounds)");
        let variants: Vec<Vec<u8>> = (0..ROUNDS)
            .map(|i| with_section(if i % 2 == 0 { &v2 } else { &v1 }, &format!("{salt}-{i}")))
            .collect();
        let cold = swap_times(&v1, &variants).await;
        report("cold (compiled)", &cold);
        // A second droid sharing the artifact cache: the same files load warm.
        let warm = swap_times(&v1, &variants).await;
        report("warm (artifact cache)", &warm);
        let held: Vec<Vec<u8>> = (0..ROUNDS)
            .map(|i| if i % 2 == 0 { v2.clone() } else { v1.clone() })
            .collect();
        let held_times = swap_times(&v1, &held).await;
        report("held (swap back)", &held_times);

        println!();
        println!("request latency, 4 clients each for hits and misses, 5 s per phase");
        let storm_variants: Vec<Vec<u8>> = (0..60)
            .map(|i| {
                with_section(
                    if i % 2 == 0 { &v2 } else { &v1 },
                    &format!("{salt}-storm-{i}"),
                )
            })
            .collect();
        latency_phases(&v1, &v2, storm_variants).await;
    });
}

/// `wasm` with a custom section holding `tag` appended: a new file content (and
/// hash) that behaves exactly like the original.
fn with_section(wasm: &[u8], tag: &str) -> Vec<u8> {
    let name = b"bench-tag";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    leb128(&mut out, payload.len());
    out.extend_from_slice(&payload);
    out
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

async fn start(v1: &[u8]) -> TestDroid {
    TestDroid::start_with_plugin_settings("", ECHO, &[("echo.wasm", v1)]).await
}

/// Lands each of `files` in turn and times until a request is answered by it.
async fn swap_times(v1: &[u8], files: &[Vec<u8>]) -> Vec<Duration> {
    let droid = start(v1).await;
    let target = droid.plugin_dir().join("echo.wasm");
    let mut times = Vec::new();
    let mut n = 0u64;
    for (i, bytes) in files.iter().enumerate() {
        let want = if i % 2 == 0 { "2.0.0" } else { "1.0.0" };
        let started = Instant::now();
        land(&target, bytes, Landing::Atomic);
        loop {
            n += 1;
            let r = droid.get(&format!("/v1/entity/echo/probe-{n}")).await;
            if r.json()["version"] == want {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no swap");
        }
        times.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    droid.stop().await;
    times
}

fn report(what: &str, times: &[Duration]) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {what:<24} median {:>7.1} ms   min {:>7.1} ms   max {:>7.1} ms",
        ms(sorted[sorted.len() / 2]),
        ms(sorted[0]),
        ms(sorted[sorted.len() - 1])
    );
}

/// Steady state, then a storm of cold reloads, then a storm of held swaps.
async fn latency_phases(v1: &[u8], v2: &[u8], storm: Vec<Vec<u8>>) {
    let droid = Arc::new(start(v1).await);
    // Warm the hit set.
    for k in 0..1000 {
        droid.get(&format!("/v1/entity/echo/hot-{k}")).await;
    }
    let target = droid.plugin_dir().join("echo.wasm");
    let phases: [(&str, Option<Vec<Vec<u8>>>); 3] = [
        ("steady state", None),
        ("storm, cold files", Some(storm)),
        (
            "storm, held versions",
            Some(
                (0..60)
                    .map(|i| if i % 2 == 0 { v2.to_vec() } else { v1.to_vec() })
                    .collect(),
            ),
        ),
    ];
    for (name, files) in phases {
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicU64::new(0));
        let mut clients = Vec::new();
        for c in 0..8 {
            let (droid, stop, counter) = (droid.clone(), stop.clone(), counter.clone());
            clients.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let path = if c % 2 == 0 {
                        format!("/v1/entity/echo/hot-{}", n % 1000)
                    } else {
                        format!("/v1/entity/echo/cold-{name}-{n}")
                    };
                    let started = Instant::now();
                    let r = droid.get(&path).await;
                    assert_eq!(r.status, 200, "{}", r.body);
                    latencies.push(started.elapsed());
                }
                (c % 2 == 0, latencies)
            }));
        }
        let phase_start = Instant::now();
        if let Some(files) = files {
            for bytes in files {
                land(&target, &bytes, Landing::Atomic);
                tokio::time::sleep(Duration::from_millis(100)).await;
                if phase_start.elapsed() > Duration::from_secs(5) {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(5).saturating_sub(phase_start.elapsed())).await;
        stop.store(true, Ordering::Relaxed);
        let (mut hits, mut misses) = (Vec::new(), Vec::new());
        for client in clients {
            let (hit, latencies) = client.await.unwrap();
            if hit {
                hits.extend(latencies);
            } else {
                misses.extend(latencies);
            }
        }
        println!(
            "  {name:<22} hits {}   misses {}",
            percentiles(&mut hits),
            percentiles(&mut misses)
        );
    }
}

fn percentiles(latencies: &mut [Duration]) -> String {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    format!(
        "p50 {:>6.0} us  p99 {:>7.0} us  ({} requests)",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        latencies.len()
    )
}
