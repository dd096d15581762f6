//! The real `droid serve` process against hostile clients and plugins where
//! the process itself matters: its open-files limit, and its log.

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use droid_test_artifacts as plugins;

use crate::support::{Serving, config_dir, config_dir_with, http, run_against};

/// Started with `ulimit -n 1024`, droid holds 1,100 idle connections
/// without running out of descriptors: the cap (derived from the limit)
/// makes each new connection close the longest-idle one, and `/healthz`
/// still answers at once.
#[test]
fn healthz_answers_under_more_idle_connections_than_open_files() {
    let (_dir, path) = config_dir(
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"http_json_adapter.wasm\"\nbase_url = \"http://127.0.0.1:9/sites\"\n",
    );
    let serving = Serving::start_with_open_files(&path, 1024);
    let mut idle = Vec::new();
    for _ in 0..1_100 {
        idle.push(TcpStream::connect(&serving.address).expect("connect"));
    }
    std::thread::sleep(Duration::from_millis(200));
    // Answered at all: past the descriptor limit, droid made room by evicting
    // idle connections (counted below) rather than failing to accept.
    let (status, body) = http(&serving.address, "GET", "/healthz", "").expect("healthz answers");
    assert_eq!(status, 200, "{body}");
    let (_, metrics) = http(&serving.address, "GET", "/metrics", "").unwrap();
    let evicted = metrics
        .lines()
        .find(|l| {
            l.starts_with("droid_connections_closed_total{listener=\"api\",reason=\"evicted\"}")
        })
        .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(evicted >= 300.0, "evicted {evicted}\n{metrics}");
    assert!(
        !serving.log().contains("Too many open files"),
        "{}",
        serving.log()
    );
    drop(idle);
    assert!(serving.stop().success());
}

/// A plugin's log is its own: a newline cannot forge another line, and a
/// flood stops at the call's budget, with one line saying how much went.
#[test]
fn a_plugin_cannot_forge_or_flood_the_log() {
    let (_dir, path) = config_dir_with(
        "[record_types.bad]\nmode = \"read-through\"\nadapter = \"hostile_adapter.wasm\"\nbase_url = \"http://127.0.0.1:9/x\"\nlimits = { deadline_ms = 20000 }\n",
        &[plugins::HOSTILE_ADAPTER],
    );
    let serving = Serving::start(Path::new(&path));
    for key in ["log-forge", "log-lines-100000", "log-big-10000000"] {
        let (status, body) = http(
            &serving.address,
            "GET",
            &format!("/v1/entity/bad/{key}"),
            "",
        )
        .expect("answered");
        assert_eq!(status, 200, "{key}: {body}");
    }
    let log = serving.log_containing(&["FORGED", "plugin log lines dropped", "bytes cut]"]);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let message = |l: &serde_json::Value| l["fields"]["message"].as_str().unwrap_or("").to_owned();
    let forged: Vec<String> = lines
        .iter()
        .map(message)
        .filter(|m| m.contains("FORGED"))
        .collect();
    assert_eq!(forged.len(), 1, "{forged:?}");
    assert!(
        !forged[0].contains('\n') && forged[0].contains("innocent\\n2026"),
        "{:?}",
        forged[0]
    );
    let flood = lines
        .iter()
        .filter(|l| message(l).starts_with("line "))
        .count();
    assert_eq!(flood, 100, "the call's budget of lines");
    let dropped: Vec<u64> = lines
        .iter()
        .filter(|l| message(l).starts_with("plugin log lines dropped"))
        .filter_map(|l| l["fields"]["dropped"].as_u64())
        .collect();
    assert_eq!(dropped, [99_900], "one line per call that went over");
    let big = lines
        .iter()
        .map(message)
        .find(|m| m.starts_with("LLLL"))
        .expect("the big line, cut");
    assert!(
        big.len() < 5_000 && big.ends_with("bytes cut]"),
        "{} bytes",
        big.len()
    );
    let (_, metrics) = http(&serving.address, "GET", "/metrics", "").unwrap();
    assert!(
        metrics.contains(
            "droid_plugin_log_lines_dropped_total{record_type=\"bad\",reason=\"call_budget\"} 99900"
        ),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("log_lines"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `droid check-config` on a plugin that waits in a host call while it
/// starts: a load failure with the reason, not a panic.
#[test]
fn check_config_refuses_a_plugin_that_waits_at_start_up() {
    let (_dir, path) = config_dir_with(
        "[runtime]\nstartup_deadline_ms = 300\n\n[record_types.sleepy]\nmode = \"read-through\"\nadapter = \"hostile_adapter_sleepy.wasm\"\nbase_url = \"http://127.0.0.1:9/x\"\n",
        &[plugins::HOSTILE_ADAPTER_SLEEPY],
    );
    let out = crate::support::droid(&["check-config", path.to_str().unwrap()]);
    let stderr = crate::support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("hostile_adapter_sleepy.wasm")
            && stderr.contains("runtime.startup_deadline_ms (300 ms)"),
        "{stderr}"
    );
}

/// A plugin's panic reaches droid's log with its text and location, under
/// the error id the consumer's answer names; the answer itself holds neither.
#[test]
fn a_plugin_panic_is_logged_under_the_id_the_answer_names() {
    let (_dir, path) = config_dir_with(
        "[record_types.crash]\nmode = \"read-through\"\nadapter = \"panicking.wasm\"\nbase_url = \"http://127.0.0.1:9/x\"\n",
        &[plugins::PANICKING],
    );
    let serving = Serving::start(Path::new(&path));
    let (status, body) = http(&serving.address, "GET", "/v1/entity/crash/panic", "").unwrap();
    assert_eq!(status, 502, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("src/") && !message.contains("bug"),
        "{message}"
    );
    let id = message
        .split("error id ")
        .nth(1)
        .and_then(|rest| rest.get(..16))
        .expect("an error id");
    let logged = serving
        .log_containing(&[id])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["error_id"] == id)
        .unwrap_or_else(|| panic!("no log line with error id {id}:\n{}", serving.log()));
    let detail = logged["fields"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("panicked") && detail.contains("src/"),
        "{detail}"
    );
    // The operator's command finds the same detail by the id.
    let printed = run_against(&format!("http://{}", serving.address), &["errors", id]);
    assert!(
        printed.contains(id) && printed.contains("crash") && printed.contains("panicked"),
        "{printed}"
    );
    let unknown = crate::support::droid(&[
        "errors",
        "0000000000000000",
        "--server",
        &format!("http://{}", serving.address),
    ]);
    assert!(!unknown.status.success());
    assert!(
        crate::support::text(&unknown.stderr).contains("unknown_error_id"),
        "{}",
        crate::support::text(&unknown.stderr)
    );
}
