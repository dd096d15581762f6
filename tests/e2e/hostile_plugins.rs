//! Plugins that try to hurt something beyond their own call: reach another
//! tenant's data, stop droid from loading, take the whole instance pool, or
//! hand back more than droid should keep. Each is refused with its code and
//! metric, and the healthy record types beside them keep answering.

use std::time::Duration;

use droid_e2e::{TestBackend, TestDroid, eventually};
use serde_json::{Value, json};

/// A read-through record type with the healthy example adapter, an ingested
/// one with the hostile transformer behind source `hostile`, and `extra`.
async fn droid_with(backend: &TestBackend, extra: &str) -> TestDroid {
    let base = backend.url("/records");
    TestDroid::start(&format!(
        r#"
[record_types.site]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "{base}"
max_in_flight = 8

[record_types.spy]
mode = "ingested"
transformer = "hostile_transformer.wasm"
max_in_flight = 8

[sources.hostile]
record_type = "spy"

{extra}
"#
    ))
    .await
}

fn event(id: &str, tenant: &str, kind: &str, payload: Value) -> Value {
    json!({ "id": id, "kind": kind, "tenant": tenant, "occurred_at": 1_000, "payload": payload })
}

async fn post_events(droid: &TestDroid, events: &[Value]) -> Value {
    let r = droid
        .post(
            "/v1/ingest/hostile",
            &Value::from(events.to_vec()).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// The status and reason of each event's result.
fn outcomes(answer: &Value) -> Vec<(String, String)> {
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap_or_default().to_owned(),
                r["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A transformer that keeps what it saw in one instance can only copy it
/// into records of the same tenant: one call never holds two tenants' events.
#[tokio::test]
async fn one_transformer_call_never_sees_two_tenants_events() {
    let backend = TestBackend::start().await;
    let droid = droid_with(&backend, "").await;
    let answer = post_events(
        &droid,
        &[
            event(
                "a1",
                "alice",
                "spy",
                json!({"key": "r1", "secret": "ALICE-SECRET"}),
            ),
            event(
                "b1",
                "bob",
                "spy",
                json!({"key": "r1", "secret": "bob-data"}),
            ),
            event(
                "a2",
                "alice",
                "spy",
                json!({"key": "r2", "secret": "ALICE-2"}),
            ),
        ],
    )
    .await;
    assert_eq!(answer["applied"], 3, "{answer}");
    let bob = droid.get("/v1/entity/spy/r1?tenant=bob").await;
    assert_eq!(bob.json()["seen"], json!(["bob:bob-data"]), "{}", bob.body);
    // Alice's events went through one call together: nothing of bob's there.
    let alice = droid.get("/v1/entity/spy/r2?tenant=alice").await;
    assert_eq!(
        alice.json()["seen"],
        json!(["alice:ALICE-SECRET", "alice:ALICE-2"]),
        "{}",
        alice.body
    );
    // The change log keeps the request's order whatever the grouping.
    let seqs: Vec<u64> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seqs"][0].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

/// A component that waits in a host call while it starts is refused at load
/// with the reason, within the start-up deadline: droid does not start on it,
/// and never panics or hangs.
#[tokio::test]
async fn a_plugin_that_waits_while_starting_is_refused_at_load() {
    let backend = TestBackend::start().await;
    let base = backend.url("/records");
    let refused = TestDroid::try_start(&format!(
        r#"
[runtime]
max_instances = 64
startup_deadline_ms = 300

[record_types.sleepy]
mode = "read-through"
adapter = "hostile_adapter_sleepy.wasm"
base_url = "{base}"
"#
    ))
    .await
    .expect_err("a plugin that cannot start within the deadline is refused");
    // It would start after 2 s: refused, it was cut at the deadline.
    assert!(
        refused.contains("hostile_adapter_sleepy.wasm")
            && refused.contains("runtime.startup_deadline_ms (300 ms)"),
        "{refused}"
    );
}

/// Dropped into a watched plugin folder, the same file is a load failure with
/// its reason; the running version stays, the watcher goes on picking up
/// files, and the admin API answers.
#[tokio::test]
async fn a_plugin_that_waits_while_starting_leaves_the_watcher_and_admin_api_working() {
    let backend = TestBackend::start().await;
    backend.put("s-1", r#"{"site":1}"#);
    let base = backend.url("/records");
    let droid = TestDroid::start_with_plugin_settings(
        "watch = true\n",
        &format!(
            r#"
[runtime]
max_instances = 64
startup_deadline_ms = 300

[record_types.echo]
mode = "read-through"
adapter = "version_echo.wasm"
base_url = "{base}"
"#
        ),
        &[(
            "version_echo.wasm",
            &std::fs::read(droid_e2e::plugins::VERSION_ECHO_V1).unwrap(),
        )],
    )
    .await;
    assert_eq!(
        droid.get("/v1/entity/echo/k").await.json()["version"],
        "1.0.0"
    );
    let sleepy = std::fs::read(droid_e2e::plugins::HOSTILE_ADAPTER_SLEEPY).unwrap();
    std::fs::write(droid.plugin_dir().join("version_echo@9.0.0.wasm"), sleepy).unwrap();
    let failures = eventually(
        Duration::from_secs(10),
        "the load failure is listed",
        || async {
            let list = droid.get("/v1/admin/plugins").await.json();
            let failures = list["load_failures"].clone();
            failures
                .as_array()
                .is_some_and(|f| !f.is_empty())
                .then_some(failures)
        },
    )
    .await;
    assert!(
        failures.to_string().contains("startup_deadline_ms"),
        "{failures}"
    );
    assert_eq!(
        droid.get("/v1/entity/echo/k2").await.json()["version"],
        "1.0.0"
    );
    // The watcher is alive: a good file dropped now is picked up.
    let v2 = std::fs::read(droid_e2e::plugins::VERSION_ECHO_V2).unwrap();
    std::fs::write(droid.plugin_dir().join("version_echo@2.0.0.wasm"), v2).unwrap();
    let attempt = std::sync::atomic::AtomicU32::new(0);
    eventually(Duration::from_secs(10), "version 2 serves", || async {
        // A new key each time: answers are cached.
        let n = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = droid.get(&format!("/v1/entity/echo/fresh-{n}")).await;
        (r.json()["version"] == "2.0.0").then_some(())
    })
    .await;
    let reload = droid.post("/v1/admin/reload", "").await;
    assert_eq!(reload.status, 200, "{}", reload.body);
    let rollback = droid
        .post("/v1/admin/plugins/version_echo/rollback", "")
        .await;
    assert_eq!(rollback.status, 200, "{}", rollback.body);
}

/// A source whose transformer is slow cannot hold more than its share of
/// calls: past its `max_in_flight`, its posts are refused at once, and the
/// other record types keep their instances.
#[tokio::test]
async fn one_slow_source_cannot_take_the_instance_pool() {
    let backend = TestBackend::start().await;
    for i in 0..40 {
        backend.put(&format!("s-{i}"), r#"{"site":true}"#);
    }
    let droid = std::sync::Arc::new(
        droid_with(
            &backend,
            r#"
[record_types.ticket]
mode = "ingested"
transformer = "ticket_transformer.wasm"
max_in_flight = 8

[sources.tracker]
record_type = "ticket"
"#,
        )
        .await,
    );
    let slow = (0..40).map(|i| {
        let droid = droid.clone();
        tokio::spawn(async move {
            let body = Value::from(vec![event(
                &format!("slow-{i}"),
                "t",
                "sleep",
                json!({"n": 1500}),
            )]);
            droid.post("/v1/ingest/hostile", &body.to_string()).await
        })
    });
    let slow: Vec<_> = slow.collect();
    // While the slow calls hold the source's slots: site misses and ticket
    // events are served as usual.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..40 {
        let r = droid.get(&format!("/v1/entity/site/s-{i}")).await;
        assert_eq!(r.status, 200, "site miss {i}: {}", r.body);
    }
    let tickets = droid
        .post(
            "/v1/ingest/tracker",
            &json!([ticket_event("t-1")]).to_string(),
        )
        .await;
    assert_eq!(tickets.json()["applied"], 1, "{}", tickets.body);
    let mut applied = 0;
    let mut busy = 0;
    for task in slow {
        let r = task.await.unwrap();
        match r.status {
            200 => applied += 1,
            429 => {
                r.assert_error(429, "source_busy", "a slow source past its share");
                assert_eq!(r.header("retry-after"), Some("1"));
                busy += 1;
            }
            other => panic!("{other}: {}", r.body),
        }
    }
    assert!((1..=8).contains(&applied), "applied {applied}");
    assert_eq!(applied + busy, 40);
    assert!(
        droid
            .metric("droid_ingest_busy_total{source=\"hostile\"}")
            .await
            >= Some(1.0),
        "counted"
    );
}

fn ticket_event(id: &str) -> Value {
    json!({
        "id": id, "kind": "ticket.created", "tenant": "acme", "occurred_at": 1_000,
        "payload": {
            "ticket": {"key": "OPS-1", "summary": "s", "description": "d", "status": "open",
                       "priority": "high", "labels": [], "updated_at": "2026-11-20T10:00:00Z", "version": 1},
            "project": {"key": "OPS", "name": "Operations"},
            "assignee": null,
            "reporter": {"account_id": "u-1", "display_name": "Grace", "email": "grace@example.com"}
        }
    })
}

/// A configuration whose record types could together take more instances
/// than the pool holds is refused, naming the numbers.
#[tokio::test]
async fn record_types_must_fit_in_the_instance_pool() {
    let backend = TestBackend::start().await;
    let base = backend.url("/records");
    let refused = TestDroid::try_start(&format!(
        r#"
[record_types.a]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "{base}"
max_in_flight = 40

[record_types.b]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "{base}"
max_in_flight = 40
"#
    ))
    .await
    .expect_err("80 calls do not fit in a pool of 64");
    assert!(
        refused.contains("runtime.max_instances")
            && refused.contains("add up to 80")
            && refused.contains("holds 64"),
        "{refused}"
    );
}

async fn hostile_adapter(backend: &TestBackend) -> TestDroid {
    droid_with_adapter(backend, "").await
}

/// Like [`hostile_adapter`], with `extra` lines in the `bad` record type's table.
async fn droid_with_adapter(backend: &TestBackend, extra: &str) -> TestDroid {
    let base = backend.url("/records");
    TestDroid::start(&format!(
        r#"
[defaults.cache]
error = {{ enabled = false }}

[record_types.bad]
mode = "read-through"
adapter = "hostile_adapter.wasm"
base_url = "{base}"
max_in_flight = 8
{extra}

[record_types.site]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "{base}"
max_in_flight = 8
"#
    ))
    .await
}

/// What an adapter hands back is bounded: a huge or deep record, a flood of
/// outbound requests, a huge error. (Its key and tenant are the ones asked
/// for: the WIT's `fetched` carries only body and version.)
#[tokio::test]
async fn an_adapter_cannot_hand_back_more_than_its_limits() {
    let backend = TestBackend::start().await;
    backend.put("ping", r#"{"pong":true}"#);
    backend.put("s-1", r#"{"site":1}"#);
    let droid = hostile_adapter(&backend).await;
    for (key, status, code) in [
        ("big-2000000", 502, "plugin_limit_exceeded"),
        ("deep-100000", 502, "plugin_limit_exceeded"),
        ("requests-200", 502, "plugin_limit_exceeded"),
    ] {
        let r = droid.get(&format!("/v1/entity/bad/{key}")).await;
        r.assert_error(status, code, key);
    }
    // The request flood stopped at the per-call budget (16 by default).
    assert_eq!(backend.hits("ping"), 16);
    let long = droid.get("/v1/entity/bad/long-error-1000000").await;
    long.assert_error(502, "plugin_error", "a huge error message");
    assert!(long.body.len() < 2_000, "{} bytes", long.body.len());
    assert!(!long.body.contains("eeee"), "{}", &long.body[..200]);
    // Within the limits, the same plugin answers; the healthy type beside it too.
    assert_eq!(droid.get("/v1/entity/bad/big-1000").await.status, 200);
    assert_eq!(droid.get("/v1/entity/bad/deep-60").await.status, 200);
    assert_eq!(droid.get("/v1/entity/site/s-1").await.status, 200);
    for limit in [
        "max_record_bytes",
        "max_json_depth",
        "max_requests_per_call",
    ] {
        let series =
            format!("droid_plugin_limits_exceeded_total{{record_type=\"bad\",limit=\"{limit}\"}}");
        assert_eq!(droid.metric(&series).await, Some(1.0), "{series}");
    }
}

/// What a transformer writes is bounded too, and each refusal names the
/// limit: the event is rejected (kept as a dead letter), the rest go on.
#[tokio::test]
async fn a_transformer_cannot_write_more_than_its_limits() {
    let backend = TestBackend::start().await;
    let droid = droid_with(&backend, "").await;
    let answer = post_events(
        &droid,
        &[
            event("ops", "t", "ops", json!({"n": 1_001})),
            event("big", "t", "big", json!({"n": 2_000_000})),
            event("deep", "t", "deep", json!({"n": 65})),
            event("max", "t", "version", json!({"n": "max"})),
            event("twice", "t", "twice", json!({})),
            event("long", "t", "long-error", json!({"n": 1_000_000})),
            event("fine", "t", "ops", json!({"key": "ok", "n": 1_000})),
        ],
    )
    .await;
    let outcomes = outcomes(&answer);
    let expect = [
        ("rejected", "max_ops_per_event"),
        ("rejected", "more than the 1048576 bytes allowed"),
        ("rejected", "more than 64 deep"),
        ("rejected", "version above 9007199254740991"),
        ("rejected", "changes key \"r1\" more than once"),
        ("rejected", "bytes cut"),
        ("applied", ""),
    ];
    for ((status, reason), (want_status, want)) in outcomes.iter().zip(expect) {
        assert_eq!(status, want_status, "{reason}");
        assert!(reason.contains(want), "{reason:?} should say {want:?}");
        assert!(reason.len() < 2_000, "{} bytes of reason", reason.len());
    }
    let letters = droid
        .get("/v1/admin/dead-letters?source=hostile")
        .await
        .json();
    assert_eq!(letters["dead_letters"].as_array().unwrap().len(), 6);
    assert!(
        letters.to_string().len() < 20_000,
        "dead letters keep short reasons"
    );
    // A version at the bound is kept, and later changes at higher versions
    // still apply: nothing froze the record.
    let at_bound = post_events(
        &droid,
        &[event(
            "v1",
            "t",
            "version",
            json!({"key": "v", "n": 9_007_199_254_740_990u64}),
        )],
    )
    .await;
    assert_eq!(at_bound["applied"], 1, "{at_bound}");
}

/// A batch whose changes together go past `max_ops_per_call` fails as a
/// whole: every event of the call is a dead letter naming the limit.
#[tokio::test]
async fn a_transformer_call_cannot_write_more_than_its_batch_limit() {
    let backend = TestBackend::start().await;
    let base = backend.url("/records");
    let droid = TestDroid::start(&format!(
        r#"
[record_types.site]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "{base}"

[record_types.spy]
mode = "ingested"
transformer = "hostile_transformer.wasm"
limits = {{ max_ops_per_event = 40, max_ops_per_call = 50 }}

[sources.hostile]
record_type = "spy"
"#
    ))
    .await;
    let answer = post_events(
        &droid,
        &[
            event("x1", "t", "ops", json!({"key": "a", "n": 30})),
            event("x2", "t", "ops", json!({"key": "b", "n": 30})),
            event("y1", "other", "ops", json!({"key": "c", "n": 30})),
        ],
    )
    .await;
    let outcomes = outcomes(&answer);
    assert_eq!(outcomes[0].0, "failed");
    assert!(
        outcomes[0].1.contains("max_ops_per_call"),
        "{}",
        outcomes[0].1
    );
    assert_eq!(outcomes[1].0, "failed");
    // Another tenant's events are another call, within the limit.
    assert_eq!(outcomes[2].0, "applied", "{}", outcomes[2].1);
}

/// Busy plugins run on threads of their own: while CPU-bound calls fill
/// them, cache hits are still answered at once.
#[tokio::test]
async fn cache_hits_are_answered_while_plugins_burn_cpu() {
    let backend = TestBackend::start().await;
    backend.put("s-1", r#"{"site":1}"#);
    let droid =
        std::sync::Arc::new(droid_with_adapter(&backend, "limits = { deadline_ms = 20000 }").await);
    assert_eq!(droid.get("/v1/entity/site/s-1").await.status, 200);
    let burners: Vec<_> = (0..4)
        .map(|i| {
            let droid = droid.clone();
            tokio::spawn(async move {
                droid
                    .get(&format!("/v1/entity/bad/spin-{}", 6000 + i))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..20 {
        let r = droid.get("/v1/entity/site/s-1").await;
        assert_eq!((r.status, r.cache()), (200, "hit"));
    }
    // Twenty hits answered while every burner still spins (6 s each): a hit
    // waiting behind a plugin call would have waited for a whole call.
    assert!(
        burners.iter().all(|b| !b.is_finished()),
        "the hits waited for the plugin calls"
    );
    for burner in burners {
        assert_eq!(burner.await.unwrap().status, 200);
    }
}
