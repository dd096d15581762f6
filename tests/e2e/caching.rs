//! Read-through caching over real HTTP with the real adapter and a controllable
//! backing store: the three caches, coalescing, the in-flight limit, stale
//! windows, HTTP caching semantics, invalidation and retries.

use std::sync::Arc;
use std::time::Duration;

use droid_e2e::{Setup, TestBackend, TestDroid, eventually};
use reqwest::Method;

/// A droid whose record type `site` reads from `backend`, with extra TOML lines
/// for the record type (a `cache = {...}` table, `max_in_flight`, ...).
async fn droid(backend: &TestBackend, extra: &str) -> TestDroid {
    droid_named("site", backend, extra).await
}

/// Like [`droid`], with another record type name: metrics are process-wide, so
/// tests that read them use a name of their own.
async fn droid_named(name: &str, backend: &TestBackend, extra: &str) -> TestDroid {
    Setup::new()
        .read_through(name, backend, extra)
        .start()
        .await
}

/// 100 concurrent requests for one cold key reach the backing store once; every
/// one of them gets the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_for_one_key_make_one_fetch() {
    let backend = TestBackend::start().await;
    backend.put("hot", r#"{"n":1}"#);
    backend.set_delay(Duration::from_millis(300));
    let droid = Arc::new(droid(&backend, "").await);

    let requests: Vec<_> = (0..100)
        .map(|_| {
            let droid = droid.clone();
            tokio::spawn(async move { droid.get("/v1/entity/site/hot").await })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for r in requests {
        let r = r.await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, r#"{"n":1}"#));
        *statuses.entry(r.cache().to_owned()).or_insert(0) += 1;
    }
    assert_eq!(
        backend.hits("hot"),
        1,
        "the backing store was asked more than once"
    );
    assert_eq!(statuses.get("miss"), Some(&1), "{statuses:?}");
    assert_eq!(
        statuses.get("coalesced").copied().unwrap_or(0) + statuses.get("hit").copied().unwrap_or(0),
        99
    );
}

/// With a limit of 4 and a slow store, a fifth concurrent distinct miss is refused
/// at once with 429, Retry-After and a JSON error; cache hits are never limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misses_past_the_in_flight_limit_get_429_at_once() {
    let backend = TestBackend::start().await;
    for k in ["warm", "a", "b", "c", "d", "e"] {
        backend.put(k, r#"{"ok":true}"#);
    }
    let droid = Arc::new(droid_named(
            "limited",
            &backend,
            // A slow store, not a timeout: the fetches hold their slots.
            "max_in_flight = 4\nlimits = { deadline_ms = 20000 }\nhttp = { request_timeout_ms = 20000 }",
        ).await);
    assert_eq!(droid.get("/v1/entity/limited/warm").await.status, 200);
    backend.set_delay(Duration::from_secs(3));

    let slow: Vec<_> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|k| {
            let droid = droid.clone();
            tokio::spawn(async move { droid.get(&format!("/v1/entity/limited/{k}")).await.status })
        })
        .collect();
    eventually(
        Duration::from_secs(30),
        "the four fetches in flight",
        || async { (backend.in_flight() == 4).then_some(()) },
    )
    .await;

    let r = droid.get("/v1/entity/limited/e").await;
    // Answered while the four fetches still hold their slots: it did not wait.
    assert_eq!(backend.in_flight(), 4, "the 429 waited for a slot");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (429, "too_many_fetches"),
        "{}",
        r.body
    );
    assert_eq!(r.header("retry-after"), Some("1"));

    let hit = droid.get("/v1/entity/limited/warm").await;
    assert_eq!((hit.status, hit.cache()), (200, "hit"));

    for s in slow {
        assert_eq!(s.await.unwrap(), 200);
    }
    assert_eq!(backend.hits("e"), 0);
    assert!(
        droid
            .metric(r#"droid_fetches_rejected_total{record_type="limited"}"#)
            .await
            >= Some(1.0)
    );
}

/// Each cache has its own TTL: found, not found and error entries expire
/// independently.
#[tokio::test]
async fn each_cache_expires_after_its_own_ttl() {
    let backend = TestBackend::start().await;
    backend.put("here", r#"{"n":1}"#);
    let droid = droid(
        &backend,
        "cache = { found = { ttl_ms = 400 }, not_found = { ttl_ms = 800 }, error = { ttl_ms = 1200 } }",
    )
    .await;

    // Found and not found.
    assert_eq!(droid.get("/v1/entity/site/here").await.cache(), "miss");
    assert_eq!(droid.get("/v1/entity/site/gone").await.status, 404);
    assert_eq!(droid.get("/v1/entity/site/here").await.cache(), "hit");
    let r = droid.get("/v1/entity/site/gone").await;
    assert_eq!((r.status, r.cache()), (404, "hit"));

    // Errors.
    backend.fail_next(&[500]);
    let r = droid.get("/v1/entity/site/broken").await;
    assert_eq!(
        (r.status, r.error_code().as_str(), r.cache()),
        (502, "backing_store_error", "miss")
    );
    let r = droid.get("/v1/entity/site/broken").await;
    assert_eq!((r.status, r.cache()), (502, "hit"), "errors are cached too");

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        droid.get("/v1/entity/site/here").await.cache(),
        "miss",
        "found expired after 400 ms"
    );
    assert_eq!(
        droid.get("/v1/entity/site/gone").await.cache(),
        "hit",
        "not found lasts 800 ms"
    );
    assert_eq!(
        droid.get("/v1/entity/site/broken").await.cache(),
        "hit",
        "errors last 1200 ms"
    );

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(droid.get("/v1/entity/site/gone").await.cache(), "miss");
    assert_eq!(droid.get("/v1/entity/site/broken").await.cache(), "hit");

    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = droid.get("/v1/entity/site/broken").await;
    assert_eq!(
        (r.status, r.cache()),
        (404, "miss"),
        "the store recovered; the key simply does not exist"
    );
    assert_eq!(
        (
            backend.hits("here"),
            backend.hits("gone"),
            backend.hits("broken")
        ),
        (2, 2, 2)
    );
}

/// Caching 404s and errors can each be switched off.
#[tokio::test]
async fn not_found_and_error_caching_can_be_switched_off() {
    let backend = TestBackend::start().await;
    let droid = droid(
        &backend,
        "cache = { not_found = { enabled = false }, error = { enabled = false } }",
    )
    .await;

    droid.get("/v1/entity/site/gone").await;
    assert_eq!(droid.get("/v1/entity/site/gone").await.cache(), "miss");
    backend.set_status(Some(503));
    droid.get("/v1/entity/site/broken").await;
    assert_eq!(droid.get("/v1/entity/site/broken").await.cache(), "miss");
    assert_eq!(backend.hits("gone"), 2);
}

/// The found cache never holds more than its byte capacity: filling it with far
/// more than fits evicts entries, and the weighed total stays under the bound.
#[tokio::test]
async fn the_byte_capacity_is_respected() {
    let backend = TestBackend::start().await;
    let record = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1000));
    for i in 0..200 {
        backend.put(&format!("k{i}"), &record);
    }
    let capacity = 40_000;
    let droid = droid_named(
        "sized",
        &backend,
        &format!("cache = {{ found = {{ capacity_bytes = {capacity} }} }}"),
    )
    .await;
    for i in 0..200 {
        assert_eq!(
            droid.get(&format!("/v1/entity/sized/k{i}")).await.status,
            200
        );
    }

    let bytes = droid
        .metric(r#"droid_cache_bytes{record_type="sized",cache="found"}"#)
        .await
        .expect("cache bytes are published");
    let entries = droid
        .metric(r#"droid_cache_entries{record_type="sized",cache="found"}"#)
        .await
        .expect("cache entries are published");
    assert!(
        bytes <= capacity as f64,
        "{bytes} bytes cached; the bound is {capacity}"
    );
    assert!(
        bytes > capacity as f64 / 2.0,
        "the cache is used: {bytes} bytes"
    );
    assert!(
        (10.0..=40.0).contains(&entries),
        "{entries} entries of ~1 KiB in 40 KB"
    );
    let evictions = droid
        .metric(r#"droid_cache_evictions_total{record_type="sized",cache="found",cause="size"}"#)
        .await;
    assert!(evictions >= Some(100.0), "evictions: {evictions:?}");
}

/// Stale-if-error: when the store turns to 500, the last good record is served
/// (marked stale) within the window.
#[tokio::test]
async fn stale_if_error_serves_the_last_good_record_when_the_store_fails() {
    let backend = TestBackend::start().await;
    backend.put("k", r#"{"good":true}"#);
    let droid = droid(&backend, "cache = { found = { ttl_ms = 200 }, error = { enabled = false }, stale_if_error_ms = 60000 }").await;
    assert_eq!(droid.get("/v1/entity/site/k").await.status, 200);

    backend.set_status(Some(500));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = droid.get("/v1/entity/site/k").await;
    assert_eq!(
        (r.status, r.body.as_str(), r.cache()),
        (200, r#"{"good":true}"#, "stale")
    );
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=0, stale-if-error=60")
    );
    assert_eq!(backend.hits("k"), 2, "it did try the store");

    // And when the store times out.
    backend.set_status(None);
    backend.set_delay(Duration::from_secs(3));
    let r = droid.get("/v1/entity/site/k").await;
    assert_eq!((r.status, r.cache()), (200, "stale"));
}

/// Stale-while-revalidate: an expired record is served at once while one
/// background fetch refreshes it; later reads get the new record.
#[tokio::test]
async fn stale_while_revalidate_refreshes_once_in_the_background() {
    let backend = TestBackend::start().await;
    backend.put("k", r#"{"v":1}"#);
    let droid = droid(
        &backend,
        "cache = { found = { ttl_ms = 1000 }, stale_while_revalidate_ms = 60000 }\nlimits = { deadline_ms = 20000 }\nhttp = { request_timeout_ms = 20000 }",
    )
    .await;
    droid.get("/v1/entity/site/k").await;

    backend.put("k", r#"{"v":2}"#);
    backend.set_delay(Duration::from_secs(3));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = droid.get("/v1/entity/site/k").await;
    assert_eq!((r.body.as_str(), r.cache()), (r#"{"v":1}"#, "stale"));
    eventually(
        Duration::from_secs(30),
        "the background refresh",
        || async { (backend.in_flight() == 1).then_some(()) },
    )
    .await;
    for _ in 0..5 {
        let r = droid.get("/v1/entity/site/k").await;
        assert_eq!((r.body.as_str(), r.cache()), (r#"{"v":1}"#, "stale"));
        // The refresh is still in flight: the stale answer did not wait for it.
        assert_eq!(backend.in_flight(), 1, "stale answers do not wait");
    }
    eventually(Duration::from_secs(30), "the refreshed record", || async {
        let r = droid.get("/v1/entity/site/k").await;
        (r.body == r#"{"v":2}"# && r.cache() == "hit").then_some(())
    })
    .await;
    assert_eq!(backend.hits("k"), 2, "one refresh, not one per stale read");
}

/// ETag, If-None-Match, Cache-Control, Age and HEAD.
#[tokio::test]
async fn http_caching_semantics() {
    let backend = TestBackend::start().await;
    backend.put("k", r#"{"rev":7,"name":"Acme"}"#);
    let droid = droid(
        &backend,
        "cache = { found = { ttl_ms = 60000 } }\n[record_types.site.config]\nversion_field = \"rev\"",
    )
    .await;

    let r = droid.get("/v1/entity/site/k").await;
    assert_eq!(r.header("etag"), Some("\"v7\""));
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=59").or(r.header("cache-control"))
    );
    let max_age: u64 = r
        .header("cache-control")
        .unwrap()
        .trim_start_matches("max-age=")
        .parse()
        .unwrap();
    assert!(
        (58..=60).contains(&max_age),
        "{:?}",
        r.header("cache-control")
    );
    assert_eq!(r.header("age"), Some("0"));

    let r = droid
        .get_with("/v1/entity/site/k", &[("if-none-match", "\"v7\"")])
        .await;
    assert_eq!((r.status, r.body.as_str(), r.cache()), (304, "", "hit"));
    assert_eq!(r.header("etag"), Some("\"v7\""));
    let r = droid
        .get_with(
            "/v1/entity/site/k",
            &[("if-none-match", "W/\"v6\", W/\"v7\"")],
        )
        .await;
    assert_eq!(r.status, 304);
    let r = droid
        .get_with("/v1/entity/site/k", &[("if-none-match", "\"v6\"")])
        .await;
    assert_eq!(r.status, 200);

    let r = droid.request(Method::HEAD, "/v1/entity/site/k").await;
    assert_eq!((r.status, r.body.as_str(), r.cache()), (200, "", "hit"));
    assert_eq!(r.header("etag"), Some("\"v7\""));

    let r = droid.get("/v1/entity/site/none").await;
    assert_eq!((r.status, r.cache()), (404, "miss"));
    assert!(
        r.header("cache-control")
            .is_some_and(|v| v.starts_with("max-age="))
    );
    assert_eq!(backend.hits("k"), 1);
}

/// An invalidation during an in-flight fetch leaves no stale entry behind: the
/// fetch that started before it does not write back, and the next read fetches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_a_fetch_leaves_no_stale_entry() {
    let backend = TestBackend::start().await;
    backend.put("k", r#"{"v":1}"#);
    backend.set_delay(Duration::from_millis(600));
    let droid = Arc::new(droid(&backend, "").await);

    let in_flight = {
        let droid = droid.clone();
        tokio::spawn(async move { droid.get("/v1/entity/site/k").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    backend.put("k", r#"{"v":2}"#);
    let r = droid
        .post(
            "/v1/invalidate",
            r#"{"record_type":"site","key":"k","version":2,"timestamp":1763633700000}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["invalidated"], 1);
    assert_eq!(
        in_flight.await.unwrap().body,
        r#"{"v":1}"#,
        "the waiter still gets what it waited for"
    );

    backend.set_delay(Duration::ZERO);
    let r = droid.get("/v1/entity/site/k").await;
    assert_eq!((r.body.as_str(), r.cache()), (r#"{"v":2}"#, "miss"));
    assert_eq!(backend.hits("k"), 2);
}

/// Invalidation removes a key from all three caches; an event older than what the
/// cache already saw is ignored.
#[tokio::test]
async fn invalidation_removes_keys_and_ignores_older_events() {
    let backend = TestBackend::start().await;
    backend.put("k", r#"{"rev":5}"#);
    let droid = droid(
        &backend,
        "[record_types.site.config]\nversion_field = \"rev\"",
    )
    .await;
    droid.get("/v1/entity/site/k").await;
    droid.get("/v1/entity/site/gone").await;

    let r = droid
        .post(
            "/v1/invalidate",
            r#"[{"record_type":"site","key":"k","version":4},
                {"record_type":"site","key":"gone","timestamp":100},
                {"record_type":"site","key":"gone","timestamp":50},
                {"record_type":"nosuch","key":"x"},
                {"record_type":"site","key":".."}]"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(
        (
            body["invalidated"].as_u64(),
            body["ignored"].as_u64(),
            body["failed"].as_u64()
        ),
        (Some(1), Some(2), Some(2))
    );
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["outcome"], "ignored");
    assert_eq!(results[0]["reason"], "the cache already holds version 5");
    assert_eq!(results[1]["outcome"], "invalidated");
    assert_eq!(results[1]["removed"], true);
    assert_eq!(results[2]["outcome"], "ignored");
    assert_eq!(results[3]["error"]["code"], "unknown_record_type");
    assert_eq!(results[4]["error"]["code"], "invalid_key");

    assert_eq!(
        droid.get("/v1/entity/site/k").await.cache(),
        "hit",
        "an older version leaves the entry"
    );
    assert_eq!(droid.get("/v1/entity/site/gone").await.cache(), "miss");

    let r = droid
        .post(
            "/v1/invalidate",
            r#"{"record_type":"site","key":"k","version":6}"#,
        )
        .await;
    assert_eq!(r.json()["invalidated"], 1);
    assert_eq!(droid.get("/v1/entity/site/k").await.cache(), "miss");
}

/// Idempotent failures are retried with backoff, up to the configured count.
#[tokio::test]
async fn idempotent_failures_are_retried_up_to_the_limit() {
    let backend = TestBackend::start().await;
    backend.put("k", r#"{"ok":1}"#);
    let droid = droid(
        &backend,
        "http = { retries = 2, retry_backoff_ms = 10 }\ncache = { error = { enabled = false } }",
    )
    .await;

    backend.fail_next(&[503, 502]);
    let r = droid.get("/v1/entity/site/k").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(backend.hits("k"), 3);

    backend.fail_next(&[503, 503, 503, 503]);
    let r = droid.get("/v1/entity/site/other").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (502, "backing_store_error")
    );
    assert_eq!(backend.hits("other"), 3, "one attempt and two retries");

    // A 500 is the store's answer, not a transient failure: not retried.
    backend.fail_next(&[500]);
    droid.get("/v1/entity/site/third").await;
    assert_eq!(backend.hits("third"), 1);
}

/// Each attempt is bounded by the request timeout; a slow store is retried and
/// then reported as a timeout.
#[tokio::test]
async fn attempts_time_out_and_are_retried() {
    let backend = TestBackend::start().await;
    backend.put("k", "{}");
    backend.set_delay(Duration::from_millis(500));
    let droid = droid(
        &backend,
        "http = { request_timeout_ms = 100, retries = 2, retry_backoff_ms = 10 }\ncache = { error = { enabled = false } }",
    )
    .await;
    let r = droid.get("/v1/entity/site/k").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (504, "backing_store_timeout"),
        "{}",
        r.body
    );
    // Each attempt was cut at its timeout (the store would answer in time
    // otherwise), and no more were made than configured.
    assert_eq!(backend.hits("k"), 3);
}

/// The cache metrics: results, hit ratio, sizes, in-flight, backing-store latency.
#[tokio::test]
async fn cache_metrics_are_exported() {
    let backend = TestBackend::start().await;
    backend.put("k", "{}");
    let droid = droid_named("metered", &backend, "").await;
    droid.get("/v1/entity/metered/k").await;
    droid.get("/v1/entity/metered/k").await;
    droid.get("/v1/entity/metered/k").await;

    assert_eq!(
        droid
            .metric(r#"droid_cache_requests_total{record_type="metered",result="miss"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        droid
            .metric(r#"droid_cache_requests_total{record_type="metered",result="hit"}"#)
            .await,
        Some(2.0)
    );
    let ratio = droid
        .metric(r#"droid_cache_hit_ratio{record_type="metered"}"#)
        .await
        .unwrap();
    assert!((ratio - 2.0 / 3.0).abs() < 1e-9, "{ratio}");
    assert_eq!(
        droid
            .metric(r#"droid_cache_entries{record_type="metered",cache="found"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        droid
            .metric(r#"droid_fetches_in_flight{record_type="metered"}"#)
            .await,
        Some(0.0)
    );
    let text = droid.get("/metrics").await.body;
    for needle in [
        r#"droid_backing_store_duration_seconds_bucket{record_type="metered""#,
        r#"droid_backing_store_requests_total{record_type="metered",outcome="2xx"}"#,
        r#"droid_cache_capacity_bytes{record_type="metered",cache="found"} 268435456"#,
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
}
