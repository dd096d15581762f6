//! Batch reads: many keys in one request, each with its own outcome.

use std::time::Duration;

use droid_e2e::{Setup, TestBackend, TestDroid};

async fn droid(backend: &TestBackend, extra: &str) -> TestDroid {
    Setup::new()
        .server("max_batch_keys = 5")
        .site(backend, extra)
        .start()
        .await
}

#[tokio::test]
async fn a_batch_answers_every_key_in_order() {
    let backend = TestBackend::start().await;
    backend.put("a", r#"{"n":"a"}"#);
    backend.put("b", r#"{"n":"b"}"#);
    let droid = droid(&backend, "").await;
    droid.get("/v1/entity/site/a").await;

    let r = droid
        .post(
            "/v1/entity/site/batch",
            r#"{"keys":["a","b","missing","..","a"]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0]["key"], "a");
    assert_eq!(
        (results[0]["status"].as_u64(), results[0]["cache"].as_str()),
        (Some(200), Some("hit"))
    );
    assert_eq!(results[0]["record"]["n"], "a");
    assert!(results[0]["etag"].as_str().unwrap().starts_with("\"h"));
    assert_eq!(results[1]["record"]["n"], "b");
    assert_eq!(results[1]["cache"], "miss");
    assert_eq!(
        (
            results[2]["status"].as_u64(),
            results[2]["error"]["code"].as_str()
        ),
        (Some(404), Some("not_found"))
    );
    assert_eq!(
        (
            results[3]["status"].as_u64(),
            results[3]["error"]["code"].as_str()
        ),
        (Some(400), Some("invalid_key"))
    );
    assert_eq!(results[4]["record"]["n"], "a");
}

/// Misses in a batch are fetched concurrently, and share the in-flight limit
/// rather than failing past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_misses_are_fetched_concurrently_within_the_limit() {
    let backend = TestBackend::start().await;
    for k in ["a", "b", "c", "d", "e"] {
        backend.put(k, "{}");
    }
    backend.set_delay(Duration::from_millis(300));
    let droid = droid(&backend, "max_in_flight = 2").await;

    let r = droid
        .post("/v1/entity/site/batch", r#"{"keys":["a","b","c","d","e"]}"#)
        .await;
    let results = r.json()["results"].as_array().unwrap().clone();
    assert!(results.iter().all(|x| x["status"] == 200), "{}", r.body);
    // Five 300 ms fetches: two at a time, never more, never one by one.
    assert_eq!(
        backend.peak_in_flight(),
        2,
        "the fetches run concurrently within the limit"
    );
    assert_eq!(backend.hits("a") + backend.hits("e"), 2);
}

#[tokio::test]
async fn bad_batches_get_clear_errors() {
    let backend = TestBackend::start().await;
    let droid = droid(&backend, "").await;

    let r = droid
        .post(
            "/v1/entity/site/batch",
            r#"{"keys":["1","2","3","4","5","6"]}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (413, "batch_too_large"),
        "{}",
        r.body
    );
    let r = droid
        .post("/v1/entity/site/batch", r#"{"keys":["1","#)
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_body"),
        "{}",
        r.body
    );
    let r = droid
        .post("/v1/entity/site/batch", r#"{"kees":["1"]}"#)
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "invalid_body"));
    assert!(r.body.contains("unknown field `kees`"), "{}", r.body);
    let r = droid
        .post("/v1/entity/site/batch", r#"{"keys":["1"],"tenant":"a b"}"#)
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "invalid_tenant"));
    let r = droid
        .post("/v1/entity/nosuch/batch", r#"{"keys":["1"]}"#)
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "unknown_record_type")
    );
    let huge = format!(r#"{{"keys":["{}"]}}"#, "k".repeat(3 << 20));
    let r = droid.post("/v1/entity/site/batch", &huge).await;
    assert_eq!((r.status, r.error_code().as_str()), (413, "body_too_large"));
}

/// A key called `batch` can still be read with GET.
#[tokio::test]
async fn a_key_named_batch_is_still_readable() {
    let backend = TestBackend::start().await;
    backend.put("batch", r#"{"odd":true}"#);
    let droid = droid(&backend, "").await;
    let r = droid.get("/v1/entity/site/batch").await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"odd":true}"#));
}

#[tokio::test]
async fn bad_invalidations_get_clear_errors_and_change_nothing() {
    let backend = TestBackend::start().await;
    backend.put("k", "{}");
    let droid = droid(&backend, "").await;
    droid.get("/v1/entity/site/k").await;

    let r = droid.post("/v1/invalidate", "not json").await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "invalid_body"));
    let r = droid
        .post(
            "/v1/invalidate",
            r#"[{"record_type":"site","key":"k"},{"record_type":"site"}]"#,
        )
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "invalid_body"));
    assert!(
        r.body.contains("event 1: missing field `key`"),
        "{}",
        r.body
    );
    assert_eq!(
        droid.get("/v1/entity/site/k").await.cache(),
        "hit",
        "a malformed batch applies nothing"
    );
    let r = droid.post("/v1/invalidate", "42").await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "invalid_body"));
}
