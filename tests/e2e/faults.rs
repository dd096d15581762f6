//! Fault isolation: a plugin that loops, hoards memory or panics fails its own
//! call, within its limits, every time; other record types keep answering.

use std::time::{Duration, Instant};

use droid_e2e::{TestBackend, TestDroid};

async fn setup() -> (TestBackend, TestDroid) {
    let backend = TestBackend::start().await;
    backend.put("g-1", r#"{"good":1}"#);
    backend.set_key_delay("slow", Duration::from_millis(100));
    let base = backend.url("/records");
    // Errors are not cached here: every call must reach the plugin.
    let droid = TestDroid::start(&format!(
        r#"
[defaults.cache]
error = {{ enabled = false }}

[record_types.spin]
mode = "read-through"
adapter = "looping.wasm"
base_url = "{base}"
limits = {{ deadline_ms = 300 }}
http = {{ request_timeout_ms = 250 }}

[record_types.chatty]
mode = "read-through"
adapter = "looping.wasm"
base_url = "{base}"
limits = {{ deadline_ms = 500 }}
http = {{ request_timeout_ms = 400 }}

[record_types.bomb]
mode = "read-through"
adapter = "memory_bomb.wasm"
base_url = "{base}"
limits = {{ memory_mib = 16 }}

[record_types.crash]
mode = "read-through"
adapter = "panicking.wasm"
base_url = "{base}"

[record_types.good]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "{base}"
"#
    ))
    .await;
    (backend, droid)
}

/// A CPU loop is stopped at its deadline, on every call, not only the first.
#[tokio::test]
async fn a_looping_plugin_fails_within_its_deadline_on_every_call() {
    let (_backend, droid) = setup().await;
    for attempt in 1..=3 {
        let started = Instant::now();
        let r = droid.get("/v1/entity/spin/spin").await;
        let took = started.elapsed();
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (504, "plugin_timeout"),
            "attempt {attempt}: {}",
            r.body
        );
        // It never ends by itself: a timeout is the deadline stopping it.
        assert!(
            took >= Duration::from_millis(300),
            "attempt {attempt} ended early: {took:?}"
        );
    }
    let r = droid.get("/v1/entity/spin/other").await;
    assert_eq!(
        r.status, 200,
        "the same plugin answers other keys: {}",
        r.body
    );
}

/// The deadline also covers time spent waiting on host calls: a plugin that keeps
/// making (individually quick enough) requests is stopped at its deadline.
#[tokio::test]
async fn the_deadline_covers_time_waiting_on_host_calls() {
    let (backend, droid) = setup().await;
    let r = droid.get("/v1/entity/chatty/http").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (504, "plugin_timeout"),
        "{}",
        r.body
    );
    assert!(
        backend.hits("slow") >= 2,
        "the plugin was waiting on HTTP: {} requests",
        backend.hits("slow")
    );
}

/// A memory bomb fails at its cap, again and again, and the plugin still works after.
#[tokio::test]
async fn a_memory_bomb_fails_at_its_cap() {
    let (_backend, droid) = setup().await;
    for _ in 0..2 {
        let r = droid.get("/v1/entity/bomb/bomb").await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (502, "plugin_memory_exhausted"),
            "{}",
            r.body
        );
        assert!(
            r.body.contains("16777216"),
            "the message names the cap: {}",
            r.body
        );
    }
    let r = droid.get("/v1/entity/bomb/fine").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A panic fails the call cleanly; the answer names an error id, never the
/// panic's text or where in the provider's code it happened.
#[tokio::test]
async fn a_panic_fails_the_call_cleanly_without_its_message() {
    let (_backend, droid) = setup().await;
    let r = droid.get("/v1/entity/crash/panic").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (502, "plugin_crashed"),
        "{}",
        r.body
    );
    assert!(
        !r.body.contains("hit a bug") && !r.body.contains("src/"),
        "{}",
        r.body
    );
    let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
    let id = message
        .split_once("error id ")
        .map(|(_, rest)| rest[..16].to_owned())
        .unwrap_or_else(|| panic!("no error id in {message}"));
    // The operator finds the detail under that id, in the admin API.
    let detail = droid.get(&format!("/v1/admin/errors/{id}")).await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    let logged = &detail.json()["error"];
    assert_eq!(logged["id"], id.as_str());
    assert_eq!(
        (logged["record_type"].as_str(), logged["key"].as_str()),
        (Some("crash"), Some("panic"))
    );
    assert!(
        logged["detail"].as_str().unwrap().contains("hit a bug"),
        "{}",
        detail.body
    );
    assert!(
        logged["plugin_version"].as_str().is_some(),
        "{}",
        detail.body
    );
    for unknown in ["0000000000000000", "not-an-id"] {
        droid
            .get(&format!("/v1/admin/errors/{unknown}"))
            .await
            .assert_error(404, "unknown_error_id", unknown);
    }
    let r = droid.get("/v1/entity/crash/fine").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// While misbehaving plugins run (concurrently), a well-behaved record type keeps
/// answering correctly, and does after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_behaved_record_types_keep_answering_during_and_after() {
    let (_backend, droid) = setup().await;
    let droid = std::sync::Arc::new(droid);
    let mut trouble = Vec::new();
    for path in [
        "/v1/entity/spin/spin",
        "/v1/entity/spin/spin",
        "/v1/entity/chatty/http",
        "/v1/entity/bomb/bomb",
        "/v1/entity/crash/panic",
    ] {
        let droid = droid.clone();
        trouble.push(tokio::spawn(async move { droid.get(path).await.status }));
    }
    let mut answered = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(400) {
        let r = droid.get("/v1/entity/good/g-1").await;
        assert_eq!((r.status, r.body.as_str()), (200, r#"{"good":1}"#));
        answered += 1;
    }
    let statuses: Vec<u16> = futures_join(trouble).await;
    assert_eq!(statuses, vec![504, 504, 504, 502, 502]);
    assert!(
        answered >= 5,
        "only {answered} good answers while plugins misbehaved"
    );
    let r = droid.get("/v1/entity/good/g-1").await;
    assert_eq!(r.status, 200);
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<u16>>) -> Vec<u16> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("request task"));
    }
    out
}

/// Failures are counted per plugin and outcome.
#[tokio::test]
async fn failures_are_counted_by_outcome() {
    let (_backend, droid) = setup().await;
    droid.get("/v1/entity/crash/panic").await;
    droid.get("/v1/entity/bomb/bomb").await;
    let metrics = droid.get("/metrics").await.body;
    for needle in [
        r#"plugin="panicking""#,
        r#"outcome="panic""#,
        r#"plugin="memory_bomb""#,
        r#"outcome="memory_exhausted""#,
    ] {
        assert!(metrics.contains(needle), "missing {needle}");
    }
}
