//! Several droid nodes on one PostgreSQL store (a server of the test's own):
//! what one node commits, the others serve; an invalidation posted to one
//! reaches every node's caches through the shared change log.

use std::time::{Duration, Instant};

use droid_e2e::{Setup, TestBackend, TestDroid};
use droid_test_servers::PostgresServer;
use serde_json::{Value, json};

/// A ticket event for `key` at `version`.
fn ticket(id: &str, key: &str, version: u64, summary: &str) -> Value {
    json!({
        "id": id,
        "kind": "ticket.updated",
        "tenant": "acme",
        "occurred_at": 1_763_633_700_000u64 + version,
        "payload": {
            "ticket": {"key": key, "summary": summary, "description": "", "status": "open",
                       "priority": "high", "labels": [], "updated_at": "2026-11-20T10:00:00Z", "version": version},
            "project": {"key": "OPS", "name": "Operations"},
            "assignee": null,
            "reporter": {"account_id": "u-1", "display_name": "Grace", "email": "grace@example.com"}
        }
    })
}

async fn summary(droid: &TestDroid, key: &str) -> Option<String> {
    let r = droid
        .get(&format!("/v1/entity/ticket/{key}?tenant=acme"))
        .await;
    match r.status {
        200 => Some(r.json()["summary"].as_str().unwrap().to_owned()),
        404 => None,
        other => panic!("{other}: {}", r.body),
    }
}

/// Waits until `check` holds, for at most `patience` (a liveness bound: the
/// nodes hear of each other's commits by notification, within milliseconds).
async fn eventually<F: AsyncFn() -> bool>(what: &str, check: F) {
    let patience = Duration::from_secs(15);
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < patience,
            "{what}: not within {patience:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn three_nodes(setup: &Setup) -> [TestDroid; 3] {
    [
        setup.clone().start().await,
        setup.clone().start().await,
        setup.clone().start().await,
    ]
}

#[tokio::test]
async fn what_one_node_ingests_the_others_serve_and_their_caches_follow() {
    let pg = PostgresServer::start();
    let setup = Setup::new().tickets().postgres(&pg.url(), "shared");
    let [a, b, c] = three_nodes(&setup).await;

    let r = a
        .post(
            "/v1/ingest/tracker",
            &json!([ticket("e1", "OPS-1", 1, "Disk full")]).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for node in [&a, &b, &c] {
        assert_eq!(summary(node, "OPS-1").await.as_deref(), Some("Disk full"));
    }
    // B and C now hold version 1 in their read caches; an update through A
    // must replace it there.
    let r = b.get("/v1/entity/ticket/OPS-1?tenant=acme").await;
    assert_eq!(r.header("etag"), Some("\"v1\""));
    let r = a
        .post(
            "/v1/ingest/tracker",
            &json!([ticket("e2", "OPS-1", 2, "Disk replaced")]).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for node in [&b, &c] {
        eventually(
            "the update reaches the other node's read cache",
            async || summary(node, "OPS-1").await.as_deref() == Some("Disk replaced"),
        )
        .await;
    }
    // The same event sent to another node is a duplicate: ids are the store's.
    let r = c
        .post(
            "/v1/ingest/tracker",
            &json!([ticket("e2", "OPS-1", 2, "Disk replaced")]).to_string(),
        )
        .await;
    assert_eq!(r.json()["results"][0]["status"], "duplicate", "{}", r.body);
    // Every node reads the one log.
    for node in [&a, &b, &c] {
        let records = node.app().service.store.records.clone();
        let log = tokio::task::spawn_blocking(move || records.changes(0, 10))
            .await
            .unwrap()
            .unwrap();
        let seqs: Vec<u64> = log.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, [1, 2]);
    }
}

#[tokio::test]
async fn an_invalidation_posted_to_one_node_empties_every_nodes_cache() {
    let pg = PostgresServer::start();
    let backend = TestBackend::start().await;
    backend.put("s1", r#"{"name":"one","version":1}"#);
    let setup = Setup::new()
        .site(&backend, "")
        .postgres(&pg.url(), "shared");
    let [a, b, c] = three_nodes(&setup).await;
    for node in [&a, &b, &c] {
        let r = node.get("/v1/entity/site/s1").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = node.get("/v1/entity/site/s1").await;
        assert_eq!(r.cache(), "hit");
    }
    assert_eq!(backend.hits("s1"), 3, "each node fetched once");
    backend.put("s1", r#"{"name":"two","version":2}"#);
    let r = a
        .post("/v1/invalidate", r#"{"record_type":"site","key":"s1"}"#)
        .await;
    assert_eq!(r.json()["invalidated"], 1, "{}", r.body);
    for node in [&b, &c] {
        eventually("the invalidation reaches the other node", async || {
            node.get("/v1/entity/site/s1").await.json()["name"] == "two"
        })
        .await;
    }
    assert_eq!(a.get("/v1/entity/site/s1").await.json()["name"], "two");
}
