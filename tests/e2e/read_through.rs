//! The read-through path through the real http-json-adapter: every outcome of the
//! backing store has its status and stable error code.

use std::time::Duration;

use droid_e2e::{Setup, TestBackend, TestDroid};
use reqwest::Method;

/// A droid with one read-through record type, `site`, on `backend`.
async fn droid_for(backend: &TestBackend, extra: &str) -> TestDroid {
    Setup::new().site(backend, extra).start().await
}

/// A found record is served with the backing store's JSON body, unchanged.
#[tokio::test]
async fn a_found_record_is_served_as_the_store_returned_it() {
    let backend = TestBackend::start().await;
    backend.put("site-1", r#"{"name":"Acme","plan":"premium"}"#);
    let droid = droid_for(&backend, "").await;

    let r = droid.get("/v1/entity/site/site-1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, r#"{"name":"Acme","plan":"premium"}"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(backend.hits("site-1"), 1);
}

/// `HEAD` answers like `GET` without a body.
#[tokio::test]
async fn head_answers_without_a_body() {
    let backend = TestBackend::start().await;
    backend.put("site-1", r#"{"name":"Acme"}"#);
    let droid = droid_for(&backend, "").await;

    let r = droid.request(Method::HEAD, "/v1/entity/site/site-1").await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
}

/// Keys are percent-decoded by droid and encoded again as one path segment by the adapter.
#[tokio::test]
async fn keys_with_spaces_and_symbols_reach_the_store_intact() {
    let backend = TestBackend::start().await;
    backend.put("a b@c", r#"{"odd":true}"#);
    let droid = droid_for(&backend, "").await;

    let r = droid.get("/v1/entity/site/a%20b%40c").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(backend.seen()[0].path, "/records/a b@c");
}

#[tokio::test]
async fn a_missing_record_is_a_404_not_found() {
    let backend = TestBackend::start().await;
    let droid = droid_for(&backend, "").await;

    let r = droid.get("/v1/entity/site/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "not_found");
}

#[tokio::test]
async fn a_backing_store_500_is_a_502_backing_store_error() {
    let backend = TestBackend::start().await;
    backend.put("site-1", "{}");
    backend.set_status(Some(500));
    let droid = droid_for(&backend, "").await;

    let r = droid.get("/v1/entity/site/site-1").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.error_code(), "backing_store_error");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_backing_store_that_is_down_is_a_502_backing_store_unavailable() {
    // Bind a port, then free it: nothing listens there any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let droid = TestDroid::start(&format!(
        r#"
[record_types.site]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "http://127.0.0.1:{port}/records"
"#
    ))
    .await;

    let r = droid.get("/v1/entity/site/site-1").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.error_code(), "backing_store_unavailable");
}

/// A store slower than the request timeout is cut off at the timeout, not later.
#[tokio::test]
async fn a_backing_store_slower_than_the_timeout_is_a_504() {
    let backend = TestBackend::start().await;
    backend.put("site-1", "{}");
    backend.set_delay(Duration::from_secs(3));
    let droid = droid_for(
        &backend,
        "[record_types.site.http]\nrequest_timeout_ms = 200",
    )
    .await;

    // The store would answer 200 after 3 s: a 504 is the timeout cutting it off.
    let r = droid.get("/v1/entity/site/site-1").await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.error_code(), "backing_store_timeout");
}

#[tokio::test]
async fn an_unknown_record_type_is_a_404_unknown_record_type() {
    let backend = TestBackend::start().await;
    let droid = droid_for(&backend, "").await;

    let r = droid.get("/v1/entity/nosuchtype/k").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "unknown_record_type");
}

/// Every malformed key is refused before any plugin runs.
#[tokio::test]
async fn invalid_keys_are_400_invalid_key_and_never_reach_the_store() {
    let backend = TestBackend::start().await;
    let droid = droid_for(&backend, "").await;

    let long = "k".repeat(513);
    for path in [
        "/v1/entity/site/..".to_owned(),
        "/v1/entity/site/%2E%2E".to_owned(),
        "/v1/entity/site/a%2Fb".to_owned(),
        "/v1/entity/site/a/b".to_owned(),
        "/v1/entity/site/a%00b".to_owned(),
        "/v1/entity/site/a%0Ab".to_owned(),
        "/v1/entity/site/%FF%FE".to_owned(),
        format!("/v1/entity/site/{long}"),
    ] {
        let r = droid.raw_get(&path).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "invalid_key"),
            "{path}: {}",
            r.body
        );
    }
    assert!(backend.seen().is_empty());
}

#[tokio::test]
async fn invalid_tenants_are_400_invalid_tenant() {
    let backend = TestBackend::start().await;
    let droid = droid_for(&backend, "").await;

    let r = droid.get("/v1/entity/site/k?tenant=a%20b").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_tenant"),
        "{}",
        r.body
    );
}

/// Unknown routes and methods get JSON errors too, never an empty body.
#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let backend = TestBackend::start().await;
    let droid = droid_for(&backend, "").await;

    let r = droid.get("/v2/whatever").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "no_route"));
    let r = droid.request(Method::DELETE, "/v1/entity/site/k").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (405, "method_not_allowed")
    );
}

#[tokio::test]
async fn healthz_answers_ok() {
    let backend = TestBackend::start().await;
    let droid = droid_for(&backend, "").await;

    let r = droid.get("/healthz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
}

/// `/metrics` exposes request counts and latency histograms per record type and
/// outcome, and plugin calls and durations per plugin.
#[tokio::test]
async fn metrics_count_requests_and_plugin_calls() {
    let backend = TestBackend::start().await;
    backend.put("m-1", "{}");
    let droid = droid_for(&backend, "").await;
    droid.get("/v1/entity/site/m-1").await;
    droid.get("/v1/entity/site/m-2").await;

    let r = droid.get("/metrics").await;
    assert_eq!(r.status, 200);
    let text = r.body;
    for needle in [
        r#"droid_http_requests_total{record_type="site",outcome="found"}"#,
        r#"droid_http_requests_total{record_type="site",outcome="not_found"}"#,
        r#"droid_http_request_duration_seconds_bucket{record_type="site",outcome="found",le="0.001"}"#,
        r#"droid_plugin_calls_total{plugin="http_json_adapter""#,
        "droid_plugin_call_duration_seconds_bucket{plugin=\"http_json_adapter\"",
        "droid_plugins_loaded{plugin=\"http_json_adapter\"",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
}

/// A record type with sensitive fields: an adapter's record carrying one in
/// plain text is refused with the field named; sealed or absent, it is served.
#[tokio::test]
async fn plain_pii_from_an_adapter_is_refused_and_sealed_pii_served() {
    let keys = tempfile::tempdir().unwrap();
    let key = droid_seal::parse_key(&"a1".repeat(32)).unwrap();
    let key_file = keys.path().join("site.seal");
    std::fs::write(&key_file, "a1".repeat(32)).unwrap();
    let backend = TestBackend::start().await;
    backend.put(
        "plain",
        r#"{"name":"Acme","owner":{"email":"owner@acme.example"}}"#,
    );
    let sealed = droid_seal::hash(&key, "owner@acme.example");
    backend.put(
        "sealed",
        &format!(r#"{{"name":"Acme","owner":{{"email":"{sealed}"}}}}"#),
    );
    backend.put(
        "forged",
        r#"{"name":"Acme","owner":{"email":"sealed:v1:h:AAAA:AAAA"}}"#,
    );
    backend.put("absent", r#"{"name":"Acme","owner":{}}"#);
    let droid = droid_for(
        &backend,
        &format!(
            "sensitive_fields = [\"/owner/email\"]\nseal_key_file = {:?}\n",
            key_file.display().to_string()
        ),
    )
    .await;

    let r = droid.get("/v1/entity/site/plain").await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(r.error_code(), "plugin_invalid_result");
    assert!(
        r.body
            .contains("sensitive field /owner/email is in plain text"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("owner@acme.example"), "{}", r.body);
    let r = droid.get("/v1/entity/site/forged").await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("does not verify"), "{}", r.body);
    for key in ["sealed", "absent"] {
        let r = droid.get(&format!("/v1/entity/site/{key}")).await;
        assert_eq!(r.status, 200, "{key}: {}", r.body);
    }
}
