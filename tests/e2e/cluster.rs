//! Several droid nodes on one PostgreSQL store (a server of the test's own):
//! what one node commits, the others serve; an invalidation posted to one
//! reaches every node's caches through the shared change log; a sidecar
//! moves from a node that went away to another without a gap or a repeat.

use std::time::{Duration, Instant};

use droid_e2e::load::summary;
use droid_e2e::sidecar::FAST_FEED;
use droid_e2e::{Setup, TestBackend, TestDroid, TestSidecar};
use droid_test_servers::PostgresServer;
use serde_json::{Value, json};

/// A ticket update event for `key` at `version`.
fn ticket(id: &str, key: &str, version: u64, summary: &str) -> Value {
    droid_e2e::load::ticket(id, "ticket.updated", key, version, summary)
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
        let records = node.app().service.home_store().records.clone();
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

#[tokio::test]
async fn a_sidecar_follows_one_node_and_fails_over_to_another_without_a_gap_or_a_repeat() {
    let pg = PostgresServer::start();
    let setup = Setup::new().tickets().postgres(&pg.url(), "shared");
    let [a, mut b, c] = three_nodes(&setup).await;
    let ingest = async |node: &TestDroid, events: Vec<Value>| {
        let r = node
            .post("/v1/ingest/tracker", &Value::from(events).to_string())
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    };
    ingest(&a, vec![ticket("e1", "OPS-1", 1, "one")]).await;
    let upstreams = format!("{},{}", b.url(""), c.url(""));
    let sidecar =
        TestSidecar::start(&upstreams, &format!("{FAST_FEED}[record_types.ticket]\n")).await;
    sidecar.wait_in_sync().await;
    let joined = sidecar.sidecar().sync().position().unwrap();
    assert_eq!(
        sidecar.sidecar().upstream_base(),
        b.url("").trim_end_matches('/')
    );

    // Written through A, seen through the sidecar following B.
    ingest(&a, vec![ticket("e2", "OPS-2", 1, "two")]).await;
    sidecar.wait_position(2).await;
    let r = sidecar.get("/v1/entity/ticket/OPS-2?tenant=acme").await;
    assert_eq!(r.json()["summary"], "two", "{}", r.body);

    // B goes away; what A commits meanwhile arrives through C.
    b.halt().await;
    for n in 3..=12 {
        ingest(
            &a,
            vec![ticket(&format!("e{n}"), &format!("OPS-{n}"), 1, "later")],
        )
        .await;
    }
    sidecar.wait_position(12).await;
    sidecar.wait_in_sync().await;
    assert_eq!(
        sidecar.sidecar().upstream_base(),
        c.url("").trim_end_matches('/')
    );
    let report = sidecar.sidecar().sync().report();
    assert_eq!(
        report.applied,
        12 - joined,
        "every change after joining applied once: {report:?}"
    );
    assert_eq!(report.resyncs, 0, "{report:?}");
    for n in 1..=12 {
        let r = sidecar
            .get(&format!("/v1/entity/ticket/OPS-{n}?tenant=acme"))
            .await;
        assert_eq!(r.status, 200, "OPS-{n}: {}", r.body);
    }
}

#[tokio::test]
async fn with_postgres_down_cached_reads_go_on_the_rest_says_503_and_all_resumes_when_it_is_back() {
    let mut pg = PostgresServer::start();
    let backend = TestBackend::start().await;
    backend.put("s1", r#"{"name":"one","version":1}"#);
    let droid = Setup::new()
        .tickets()
        .site(&backend, "[record_types.site.cache.found]\nttl_ms = 600000")
        .postgres(&pg.url(), "outage")
        .start()
        .await;
    let post = async |events: Vec<Value>| {
        droid
            .post("/v1/ingest/tracker", &Value::from(events).to_string())
            .await
    };
    assert_eq!(
        post(vec![ticket("e1", "OPS-1", 1, "kept")]).await.status,
        200
    );
    assert_eq!(summary(&droid, "OPS-1").await.as_deref(), Some("kept"));
    assert_eq!(droid.get("/v1/entity/site/s1").await.status, 200);

    pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    // What the caches hold is still served.
    assert_eq!(droid.get("/v1/entity/site/s1").await.cache(), "hit");
    assert_eq!(summary(&droid, "OPS-1").await.as_deref(), Some("kept"));
    // What needs the store is refused, to be sent again.
    let r = droid.get("/v1/entity/ticket/OPS-2?tenant=acme").await;
    r.assert_error(503, "store_unavailable", "a read the store must answer");
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = post(vec![ticket("e2", "OPS-2", 1, "after")]).await;
    r.assert_error(503, "store_unavailable", "ingestion with the store down");
    assert_eq!(r.header("retry-after"), Some("1"));

    // Back on the same port: everything resumes, nothing was lost.
    pg = tokio::task::spawn_blocking(move || {
        pg.resume();
        pg
    })
    .await
    .unwrap();
    let r = post(vec![ticket("e2", "OPS-2", 1, "after")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["applied"], 1, "{}", r.body);
    assert_eq!(summary(&droid, "OPS-2").await.as_deref(), Some("after"));
    let r = post(vec![ticket("e1", "OPS-1", 1, "kept")]).await;
    assert_eq!(r.json()["results"][0]["status"], "duplicate", "{}", r.body);
    drop(pg);
}

#[tokio::test]
async fn a_store_that_cannot_be_used_stops_droid_at_start_naming_the_field_and_why() {
    let pg = PostgresServer::start();
    let closed = droid_test_servers::free_port();
    let e = Setup::new()
        .tickets()
        .postgres(&format!("postgresql://droid@127.0.0.1:{closed}/droid"), "s")
        .try_start()
        .await
        .unwrap_err();
    assert!(
        e.contains("store.url") && e.contains(&closed.to_string()),
        "{e}"
    );
    assert!(e.to_lowercase().contains("connect"), "{e}");

    let e = Setup::new()
        .tickets()
        .postgres(&pg.url().replace("droid@", "intruder@"), "s")
        .try_start()
        .await
        .unwrap_err();
    assert!(e.contains("store.url") && e.contains("intruder"), "{e}");

    // A schema a newer droid migrated is refused, not misread.
    Setup::new()
        .tickets()
        .postgres(&pg.url(), "ahead")
        .start()
        .await;
    pg.execute(
        "INSERT INTO ahead.refinery_schema_history (version, name, applied_on, checksum) \
         VALUES (999, 'from_the_future', '2030-01-01', '0')",
    );
    let e = Setup::new()
        .tickets()
        .postgres(&pg.url(), "ahead")
        .try_start()
        .await
        .unwrap_err();
    assert!(
        e.contains("\"ahead\" is at version 999, newer than this droid knows"),
        "{e}"
    );
}

/// Reads a fresh key of `echo` from `node` (nothing cached for it) and says
/// which version answered.
async fn echo_version(node: &TestDroid, n: &std::sync::atomic::AtomicUsize) -> String {
    let key = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    crate::reload::serving(node, &format!("fresh-{key}"), "acme").await
}

#[tokio::test]
async fn a_plugin_pushed_through_one_node_serves_on_all_and_a_rollback_on_one_applies_to_all() {
    let pg = PostgresServer::start();
    let record_types = format!(
        "{}\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\nschema = \"plugins\"\nconnect_timeout_ms = 2000\npoll_interval_ms = 200\n",
        crate::reload::ECHO,
        pg.url()
    );
    let v1 = crate::reload::bytes(droid_e2e::plugins::VERSION_ECHO_V1);
    let mut nodes = Vec::new();
    for n in 0..3 {
        nodes.push(
            TestDroid::start_with_plugin_settings(
                "watch = false\n",
                &format!("{record_types}\n[server]\nnode_name = \"node-{n}\"\n"),
                &[("echo.wasm", &v1)],
            )
            .await,
        );
    }
    let fresh = std::sync::atomic::AtomicUsize::new(0);
    for node in &nodes {
        assert_eq!(echo_version(node, &fresh).await, "1.0.0");
    }

    // Pushed to A, kept in the store, loaded by B and C from there.
    let v2 = crate::reload::bytes(droid_e2e::plugins::VERSION_ECHO_V2);
    let r = reqwest::Client::new()
        .post(nodes[0].url("/v1/admin/plugins/files/echo@2.0.0.wasm"))
        .header("content-type", "application/wasm")
        .body(v2)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["shared"], true, "{body}");
    assert_eq!(body["serving"], "current", "{body}");
    for node in &nodes {
        eventually("the pushed version serves on every node", async || {
            echo_version(node, &fresh).await == "2.0.0"
        })
        .await;
    }
    // Every node says what it holds.
    eventually("every node reports both versions", async || {
        let fleet = nodes[1].get("/v1/admin/fleet").await.json();
        fleet["nodes"].as_array().is_some_and(|all| {
            all.len() == 3
                && all
                    .iter()
                    .all(|n| n["plugins"][0]["versions"].as_array().map(Vec::len) == Some(2))
        })
    })
    .await;

    // Rolled back on C: A and B take it back too.
    let r = nodes[2]
        .post(
            "/v1/admin/plugins/echo/rollback",
            r#"{"reason":"fleet test"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for node in &nodes {
        eventually("the rollback applies on every node", async || {
            echo_version(node, &fresh).await == "1.0.0"
        })
        .await;
    }
    let list = crate::reload::admin_plugins(&nodes[0]).await;
    assert!(
        list.to_string().contains("fleet test"),
        "the rollback's reason reached A: {list}"
    );

    // A file that does not load is refused and kept nowhere.
    let r = reqwest::Client::new()
        .post(nodes[0].url("/v1/admin/plugins/files/echo@3.0.0.wasm"))
        .body(b"not a component".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "plugin_refused", "{body}");
    assert!(!nodes[0].plugin_dir().join("echo@3.0.0.wasm").exists());
    // A name that is not a plugin file's, and a signature that is not base64.
    for (path, header, code) in [
        (
            "/v1/admin/plugins/files/echo.txt",
            None,
            "invalid_plugin_file",
        ),
        (
            "/v1/admin/plugins/files/echo@4.0.0.wasm",
            Some("not base64!"),
            "invalid_body",
        ),
    ] {
        let mut request = reqwest::Client::new()
            .post(nodes[0].url(path))
            .body(b"\0asm".to_vec());
        if let Some(value) = header {
            request = request.header("droid-plugin-signature", value);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 400);
        let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    let fleet = nodes[0].get("/v1/admin/fleet").await.json();
    assert_eq!(fleet["files"].as_array().unwrap().len(), 1, "{fleet}");
}

#[tokio::test]
async fn invalidations_published_to_a_stream_empty_every_nodes_cache() {
    let pg = PostgresServer::start();
    let nats = droid_test_servers::NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: "INVALIDATIONS".into(),
            subjects: vec!["invalidations.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let backend = TestBackend::start().await;
    backend.put("s1", r#"{"name":"one","version":1}"#);
    let setup = Setup::new()
        .site(&backend, "[record_types.site.cache.found]\nttl_ms = 600000")
        .raw(&format!(
            "[invalidations]\nstream = {{ url = \"{}\", stream = \"INVALIDATIONS\", subject = \"invalidations.sites\", durable = \"droid\", ack_wait_ms = 1000 }}\n",
            nats.url()
        ))
        .postgres(&pg.url(), "shared");
    let [a, b, c] = three_nodes(&setup).await;
    for node in [&a, &b, &c] {
        node.get("/v1/entity/site/s1").await;
        assert_eq!(node.get("/v1/entity/site/s1").await.cache(), "hit");
    }
    backend.put("s1", r#"{"name":"two","version":2}"#);
    for payload in [
        "not an invalidation",
        r#"{"record_type":"nosuch","key":"s1"}"#,
        r#"{"record_type":"site","key":"s1","version":2}"#,
    ] {
        jetstream
            .publish("invalidations.sites", payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    for node in [&a, &b, &c] {
        eventually("the streamed invalidation reaches the node", async || {
            node.get("/v1/entity/site/s1").await.json()["name"] == "two"
        })
        .await;
    }
    // The two that do not apply were dropped, not left to come again.
    let stream = jetstream.get_stream("INVALIDATIONS").await.unwrap();
    eventually("every message is done with", async || {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer("droid").await.unwrap();
        let info = consumer.info().await.unwrap();
        info.num_pending == 0 && info.num_ack_pending == 0
    })
    .await;
}

#[tokio::test]
async fn a_snapshot_staged_through_two_nodes_and_committed_by_both_at_once_applies_once() {
    let pg = PostgresServer::start();
    let setup = Setup::new().tickets().postgres(&pg.url(), "shared");
    let [a, b, _c] = three_nodes(&setup).await;
    let r = a
        .post("/v1/ingest/tracker/snapshots", r#"{"expected_count": 20}"#)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["snapshot"]["id"].as_str().unwrap().to_owned();
    let base = format!("/v1/ingest/tracker/snapshots/{id}");
    // Half staged through A, half through B: the batch is the store's.
    for (node, range) in [(&a, 0..10), (&b, 10..20)] {
        let events: Vec<Value> = range
            .map(|i| ticket(&format!("snap-{i}"), &format!("SNAP-{i}"), 1, "day"))
            .collect();
        let r = node.post(&base, &Value::from(events).to_string()).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(
        summary(&b, "SNAP-1").await,
        None,
        "invisible until committed"
    );
    let commit = format!("{base}/commit");
    let (first, second) = tokio::join!(a.post(&commit, ""), b.post(&commit, ""));
    let mut statuses = [first.status, second.status];
    statuses.sort_unstable();
    assert_eq!(
        statuses[0], 200,
        "one commit applies it: {} / {}",
        first.body, second.body
    );
    assert_ne!(
        statuses[1], 200,
        "the other finds it gone: {} / {}",
        first.body, second.body
    );
    let records = a.app().service.home_store().records.clone();
    let log = tokio::task::spawn_blocking(move || records.changes(0, 100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log.len(), 20, "every staged event applied once");
    for node in [&a, &b] {
        assert_eq!(summary(node, "SNAP-19").await.as_deref(), Some("day"));
    }
}
