//! Sidecars (`droid sidecar`): droid's read API next to consumers, kept current
//! by the change feed. Changes reach a sidecar in order; invalidations drop
//! keys; an unreachable droid leaves the sidecar answering stale, and it
//! catches up without gaps or repeats; a sidecar the log has moved past starts
//! over and ends with the droid's content; sidecars authenticate with their
//! own key.

use std::time::{Duration, Instant};

use droid_e2e::eventually;
use droid_e2e::proxy::FreezingProxy;
use droid_e2e::sidecar::FAST_FEED;
use droid_e2e::tokens::{AUDIENCE, Issuers};
use droid_e2e::{Setup, TestBackend, TestDroid, TestResponse, TestSidecar};

/// How long a change may take to become visible in a sidecar here: generous,
/// for a loaded test machine (the benchmark measures the real figure).
const VISIBLE_WITHIN: Duration = Duration::from_secs(3);

fn ticket(n: u64, version: u64, kind: &str, summary: &str) -> String {
    format!(
        r#"{{"id":"e{n}-{version}-{kind}","kind":"{kind}","tenant":"acme","occurred_at":{},"payload":{{"ticket":{{"key":"OPS-{n}","summary":"{summary}","status":"open","priority":"low","updated_at":"t","version":{version}}},"project":{{"key":"OPS","name":"Ops"}},"assignee":null,"reporter":{{"account_id":"u","display_name":"U"}}}}}}"#,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    )
}

async fn ingest(droid: &TestDroid, events: &[String]) -> u64 {
    let r = droid
        .post("/v1/ingest/tracker", &format!("[{}]", events.join(",")))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    droid.app().service.home_store().records.last_seq().unwrap()
}

async fn droid(backend: &TestBackend) -> TestDroid {
    Setup::new()
        .tickets()
        .site(backend, "[record_types.site.cache.found]\nttl_ms = 60000")
        .start()
        .await
}

const SIDECAR: &str = "[record_types.ticket]\n[record_types.site]\n";

async fn sidecar(droid: &TestDroid, extra: &str) -> TestSidecar {
    let sidecar = TestSidecar::start(&droid.url(""), &format!("{FAST_FEED}{extra}{SIDECAR}")).await;
    sidecar.wait_in_sync().await;
    sidecar
}

/// Reads ticket `OPS-{n}` through the sidecar and from droid, asserts the
/// same answer (status, body, version), and returns the sidecar's.
async fn same_as_droid(sidecar: &TestSidecar, droid: &TestDroid, n: u64) -> TestResponse {
    let path = format!("/v1/entity/ticket/OPS-{n}?tenant=acme");
    let (ours, theirs) = (sidecar.get(&path).await, droid.get(&path).await);
    assert_eq!(
        (ours.status, &ours.body),
        (theirs.status, &theirs.body),
        "{path}"
    );
    assert_eq!(ours.header("etag"), theirs.header("etag"), "{path}");
    ours
}

fn summary(r: &TestResponse) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["summary"].as_str().unwrap_or_default().to_owned()
}

/// Waits until `path` on the sidecar answers as `check` wants; returns how
/// long it took.
async fn visible(
    sidecar: &TestSidecar,
    path: &str,
    check: impl Fn(&TestResponse) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let r = sidecar.get(path).await;
        if check(&r) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < VISIBLE_WITHIN,
            "not visible within {VISIBLE_WITHIN:?}: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_ingested_change_reaches_the_sidecar_then_its_update_then_its_delete_in_order() {
    let backend = TestBackend::start().await;
    let droid = droid(&backend).await;
    ingest(&droid, &[ticket(1, 1, "ticket.created", "first")]).await;
    let sidecar = sidecar(&droid, "").await;
    let path = "/v1/entity/ticket/OPS-1?tenant=acme";

    // The first read goes through to droid; the next is answered from memory.
    let r = sidecar.get(path).await;
    assert_eq!((summary(&r), r.cache()), ("first".to_owned(), "miss"));
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert_eq!(r.header("droid-sync"), Some("in-sync"));
    let r = sidecar.get(path).await;
    assert_eq!((summary(&r), r.cache()), ("first".to_owned(), "hit"));

    // An update is pushed into the held entry: it is a hit, with the new version.
    let seq = ingest(&droid, &[ticket(1, 2, "ticket.updated", "second")]).await;
    visible(&sidecar, path, |r| {
        r.status == 200 && summary(r) == "second"
    })
    .await;
    sidecar.wait_position(seq).await;
    let r = sidecar.get(path).await;
    assert_eq!(
        (r.cache(), r.header("etag")),
        ("hit", Some("\"v2\"")),
        "refreshed in place, not fetched again"
    );

    // A delete turns it into a not-found answer, also from memory.
    let seq = ingest(&droid, &[ticket(1, 3, "ticket.deleted", "second")]).await;
    visible(&sidecar, path, |r| r.status == 404).await;
    sidecar.wait_position(seq).await;
    let r = sidecar.get(path).await;
    assert_eq!(
        (r.status, r.error_code(), r.cache()),
        (404, "not_found".to_owned(), "hit")
    );

    // In order: a burst of versions of one key ends at the last one, and each
    // step was applied in sequence (the follower's position only grows, and
    // every change was applied once).
    ingest(&droid, &[ticket(2, 1, "ticket.created", "v1")]).await;
    let path2 = "/v1/entity/ticket/OPS-2?tenant=acme";
    visible(&sidecar, path2, |r| r.status == 200).await;
    let burst: Vec<String> = (2..=30)
        .map(|v| ticket(2, v, "ticket.updated", &format!("v{v}")))
        .collect();
    let mut last = 0;
    for event in &burst {
        last = ingest(&droid, std::slice::from_ref(event)).await;
    }
    sidecar.wait_position(last).await;
    let r = sidecar.get(path2).await;
    assert_eq!(
        (summary(&r), r.header("etag")),
        ("v30".to_owned(), Some("\"v30\""))
    );
    let report = sidecar.sidecar().sync().report();
    assert_eq!(
        report.applied,
        last - 1,
        "every change after the first, once: {report:?}"
    );

    // Each change carries when it occurred; the sidecar records the time to
    // visibility.
    let count = sidecar
        .metric("droid_sidecar_propagation_seconds_count")
        .await
        .unwrap_or_default();
    assert!(count >= report.applied as f64, "{count}");
    assert!(
        sidecar.metric("droid_sidecar_lag_changes").await.is_some(),
        "lag in changes is exported"
    );
}

#[tokio::test]
async fn a_read_through_key_invalidated_on_droid_is_dropped_in_the_sidecar() {
    let backend = TestBackend::start().await;
    backend.put("s1", r#"{"name":"one"}"#);
    let droid = droid(&backend).await;
    let sidecar = sidecar(&droid, "").await;
    let path = "/v1/entity/site/s1";
    assert_eq!(sidecar.get(path).await.cache(), "miss");
    let r = sidecar.get(path).await;
    assert_eq!((r.cache(), r.json()["name"].as_str()), ("hit", Some("one")));

    backend.put("s1", r#"{"name":"two"}"#);
    let r = droid
        .post("/v1/invalidate", r#"{"record_type":"site","key":"s1"}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seq = droid.app().service.home_store().records.last_seq().unwrap();
    sidecar.wait_position(seq).await;
    let r = sidecar.get(path).await;
    assert_eq!(
        (r.cache(), r.json()["name"].as_str()),
        ("miss", Some("two")),
        "dropped, so read through again"
    );
    assert_eq!(backend.hits("s1"), 2);
}

#[tokio::test]
async fn with_droid_down_the_sidecar_answers_stale_then_catches_up_without_gaps_or_repeats() {
    let backend = TestBackend::start().await;
    let mut droid = droid(&backend).await;
    let created: Vec<String> = (1..=5)
        .map(|n| ticket(n, 1, "ticket.created", "before"))
        .collect();
    let first = ingest(&droid, &created).await;
    let sidecar = sidecar(&droid, "").await;
    for n in 1..=5 {
        let r = sidecar
            .get(&format!("/v1/entity/ticket/OPS-{n}?tenant=acme"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    droid.halt().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = sidecar.get("/v1/entity/ticket/OPS-1?tenant=acme").await;
    assert_eq!(summary(&r), "before");
    assert_eq!(
        (r.cache(), r.header("droid-sync")),
        ("stale", Some("out-of-sync")),
        "what it holds, marked stale"
    );
    assert!(
        r.header("cache-control").unwrap().starts_with("max-age=0"),
        "{:?}",
        r.header("cache-control")
    );
    let r = sidecar.get("/v1/entity/ticket/OPS-99?tenant=acme").await;
    assert_eq!(
        (r.status, r.error_code()),
        (502, "backing_store_unavailable".to_owned()),
        "a key it never held cannot be answered: {}",
        r.body
    );
    let health = sidecar.get("/healthz").await;
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.json()["status"], "out_of_sync");

    // Back: changes made since are caught up from the sidecar's position.
    droid.resume().await;
    let updates: Vec<String> = (1..=5)
        .map(|n| ticket(n, 2, "ticket.updated", "after"))
        .collect();
    ingest(&droid, &updates[..3]).await;
    ingest(&droid, &updates[3..]).await;
    let last = ingest(&droid, &[ticket(1, 3, "ticket.deleted", "after")]).await;
    sidecar.wait_position(last).await;
    sidecar.wait_in_sync().await;
    let health = sidecar.get("/healthz").await;
    assert_eq!(health.status, 200, "{}", health.body);

    // Against droid's log: every change after the sidecar joined, each once.
    let log = droid
        .app()
        .service
        .home_store()
        .records
        .changes(first, 1000)
        .unwrap();
    let report = sidecar.sidecar().sync().report();
    assert_eq!(report.applied, log.len() as u64, "{report:?}");
    assert_eq!(report.position, Some(last));
    assert_eq!(report.resyncs, 0);
    for n in 1..=5 {
        let ours = same_as_droid(&sidecar, &droid, n).await;
        assert_eq!(ours.cache(), "hit", "kept current by the feed: OPS-{n}");
    }
}

#[tokio::test]
async fn a_sidecar_the_log_moved_past_resynchronises_and_ends_with_droids_content() {
    let backend = TestBackend::start().await;
    let mut droid = droid(&backend).await;
    let created: Vec<String> = (1..=4)
        .map(|n| ticket(n, 1, "ticket.created", "old"))
        .collect();
    ingest(&droid, &created).await;
    // Slow to come back, so the droid can move on while it is away.
    let sidecar = TestSidecar::start(
        &droid.url(""),
        &format!("[feed]\nheartbeat_ms = 100\nsync_timeout_ms = 500\nreconnect_initial_ms = 3000\nreconnect_max_ms = 3000\n{SIDECAR}"),
    )
    .await;
    sidecar.wait_in_sync().await;
    for n in 1..=4 {
        let r = sidecar
            .get(&format!("/v1/entity/ticket/OPS-{n}?tenant=acme"))
            .await;
        assert_eq!(summary(&r), "old");
    }

    droid.halt().await;
    droid.resume().await;
    let updates: Vec<String> = (1..=4)
        .map(|n| ticket(n, 2, "ticket.updated", "new"))
        .collect();
    let last = ingest(&droid, &updates).await;
    ingest(&droid, &[ticket(4, 3, "ticket.deleted", "new")]).await;
    // The droid keeps only its last change: the sidecar's position is gone.
    droid
        .app()
        .service
        .home_store()
        .records
        .trim_changes(1)
        .unwrap();
    assert!(
        droid
            .app()
            .service
            .home_store()
            .records
            .first_seq()
            .unwrap()
            > last
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    while sidecar.sidecar().sync().report().resyncs == 0 {
        assert!(Instant::now() < deadline, "no resynchronisation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sidecar.wait_in_sync().await;
    for n in 1..=4 {
        same_as_droid(&sidecar, &droid, n).await;
    }
    assert_eq!(
        sidecar
            .get("/v1/entity/ticket/OPS-4?tenant=acme")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_sidecar_refuses_what_it_does_not_serve_and_bad_keys() {
    let backend = TestBackend::start().await;
    let droid = droid(&backend).await;
    let sidecar = sidecar(&droid, "").await;
    for (path, status, code) in [
        ("/v1/entity/nope/k", 404, "unknown_record_type"),
        ("/v1/entity/ticket/a%00b", 400, "invalid_key"),
        ("/v1/entity/ticket/a/b", 400, "invalid_key"),
        ("/v1/entity/ticket/k?tenant=", 400, "invalid_tenant"),
        ("/v1/nothing", 404, "no_route"),
    ] {
        sidecar.get(path).await.assert_error(status, code, path);
    }
    // Conditional reads work as on droid.
    ingest(&droid, &[ticket(7, 4, "ticket.created", "x")]).await;
    let path = "/v1/entity/ticket/OPS-7?tenant=acme";
    assert_eq!(sidecar.get(path).await.status, 200);
    let r = sidecar.get_with(path, &[("if-none-match", "\"v4\"")]).await;
    assert_eq!((r.status, r.cache()), (304, "hit"));
}

#[tokio::test]
async fn a_sidecar_authenticates_with_its_own_key_and_follows_only_what_it_may_read() {
    let issuers = Issuers::new(&["shop", "tracker"]);
    let backend = TestBackend::start().await;
    let droid = TestDroid::start(&format!(
        "{}\n[record_types.ticket]\nmode = \"ingested\"\ntransformer = \"ticket_transformer.wasm\"\nreaders = [\"shop\"]\n[sources.tracker]\nrecord_type = \"ticket\"\npublishers = [\"tracker\"]\n[record_types.site]\nmode = \"read-through\"\nadapter = \"http_json_adapter.wasm\"\nbase_url = \"{}\"\nreaders = [\"tracker\"]\n",
        issuers.auth_table(&[], ""),
        backend.url("/records")
    ))
    .await;
    let publish = |events: Vec<String>| {
        let token = format!("Bearer {}", issuers.token("tracker"));
        let droid = &droid;
        async move {
            let r = droid
                .send_with(
                    reqwest::Method::POST,
                    "/v1/ingest/tracker",
                    Some(&format!("[{}]", events.join(","))),
                    &[("authorization", &token)],
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };
    publish(vec![ticket(1, 1, "ticket.created", "one")]).await;
    let key = issuers.private_key("shop");
    let sidecar = TestSidecar::start(
        &droid.url(""),
        &format!(
            "{FAST_FEED}[upstream]\nkey_file = {:?}\naudience = {AUDIENCE:?}\n[record_types.ticket]\n",
            key.display().to_string()
        ),
    )
    .await;
    sidecar.wait_in_sync().await;
    let path = "/v1/entity/ticket/OPS-1?tenant=acme";
    assert_eq!(summary(&sidecar.get(path).await), "one");
    publish(vec![ticket(1, 2, "ticket.updated", "two")]).await;
    visible(&sidecar, path, |r| r.status == 200 && summary(r) == "two").await;

    // A sidecar whose key may not read a record type it names cannot follow:
    // it stays out of sync, and reads of that type say why.
    let denied = TestSidecar::start(
        &droid.url(""),
        &format!(
            "{FAST_FEED}[upstream]\nkey_file = {:?}\naudience = {AUDIENCE:?}\n[record_types.site]\n",
            key.display().to_string()
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!denied.sidecar().sync().in_sync());
    let r = denied.get("/v1/entity/site/s1").await;
    assert_eq!(
        (r.status, r.error_code()),
        (502, "backing_store_error".to_owned()),
        "{}",
        r.body
    );
    assert!(r.body.contains("answered 403"), "{}", r.body);
}

#[tokio::test]
async fn droid_exports_an_ingested_record_type_a_page_at_a_time() {
    let backend = TestBackend::start().await;
    let droid = droid(&backend).await;
    let events: Vec<String> = (1..=5)
        .map(|n| ticket(n, 1, "ticket.created", "x"))
        .collect();
    ingest(&droid, &events).await;
    ingest(&droid, &[ticket(3, 2, "ticket.deleted", "x")]).await;
    let mut keys = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let r = droid.get(&format!("/v1/records/ticket?{query}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json();
        assert!(page["last_seq"].as_u64().unwrap() >= 6);
        for record in page["records"].as_array().unwrap() {
            assert_eq!(record["tenant"], "acme");
            assert_eq!(record["body"]["key"], record["key"], "the body is JSON");
            keys.push(record["key"].as_str().unwrap().to_owned());
        }
        match page["next"].as_object() {
            Some(next) => {
                query = format!(
                    "limit=2&after_tenant={}&after_key={}",
                    next["tenant"].as_str().unwrap(),
                    next["key"].as_str().unwrap()
                );
            }
            None => break,
        }
    }
    assert_eq!(
        keys,
        ["OPS-1", "OPS-2", "OPS-4", "OPS-5"],
        "in order, deleted ones left out"
    );
    for (path, status, code) in [
        ("/v1/records/site", 404, "not_ingested"),
        ("/v1/records/nope", 404, "unknown_record_type"),
        ("/v1/records/ticket?after_key=OPS-1", 400, "invalid_key"),
    ] {
        droid.get(path).await.assert_error(status, code, path);
    }
}

#[tokio::test]
async fn a_replicated_record_type_is_loaded_whole_and_kept_current() {
    let backend = TestBackend::start().await;
    let droid = droid(&backend).await;
    const TICKETS_N: u64 = 2_500;
    for chunk in (1..=TICKETS_N).collect::<Vec<_>>().chunks(500) {
        let events: Vec<String> = chunk
            .iter()
            .map(|n| ticket(*n, 1, "ticket.created", "loaded"))
            .collect();
        ingest(&droid, &events).await;
    }
    let sidecar = TestSidecar::start(
        &droid.url(""),
        &format!("{FAST_FEED}[record_types.ticket]\nreplicate = true\n"),
    )
    .await;
    // Changes while the load runs win over the pages.
    ingest(&droid, &[ticket(2_000, 2, "ticket.updated", "changed")]).await;
    ingest(&droid, &[ticket(2_001, 2, "ticket.deleted", "x")]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sidecar.sidecar().replicas().report()["ticket"].loaded {
        assert!(
            Instant::now() < deadline,
            "not loaded: {:?}",
            sidecar.sidecar().replicas().report()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The deleted one is in the export or not, depending on the race.
    let loaded = sidecar.sidecar().replicas().report()["ticket"].records;
    assert!((TICKETS_N - 1..=TICKETS_N).contains(&loaded), "{loaded}");
    // Created after the load: added though nobody asked for it.
    let last = ingest(&droid, &[ticket(9_999, 1, "ticket.created", "new")]).await;
    sidecar.wait_position(last).await;

    for n in (1..=TICKETS_N).step_by(97).chain([2_000, 2_001, 9_999]) {
        let ours = same_as_droid(&sidecar, &droid, n).await;
        if ours.status == 200 {
            assert_eq!(
                ours.cache(),
                "hit",
                "from memory, never read through: OPS-{n}"
            );
        }
    }
    let health = sidecar.get("/healthz").await.json();
    assert_eq!(health["replicas"]["ticket"]["loaded"], true, "{health}");
}

#[tokio::test]
async fn a_sidecar_answers_batches_like_droid() {
    let backend = TestBackend::start().await;
    let droid = droid(&backend).await;
    ingest(&droid, &[ticket(1, 3, "ticket.created", "one")]).await;
    let sidecar = TestSidecar::start(
        &droid.url(""),
        &format!("max_batch_keys = 3\n{FAST_FEED}{SIDECAR}"),
    )
    .await;
    sidecar.wait_in_sync().await;
    let post = |path: &str, body: &str| {
        let request = reqwest::Client::new()
            .post(sidecar.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        async move {
            let r = request.send().await.unwrap();
            let sync = r.headers()["droid-sync"].to_str().unwrap().to_owned();
            (
                r.status().as_u16(),
                sync,
                serde_json::from_slice::<serde_json::Value>(&r.bytes().await.unwrap()).unwrap(),
            )
        }
    };
    let body = r#"{"keys":["OPS-1","OPS-404","a\u0000b"],"tenant":"acme"}"#;
    let (status, sync, answer) = post("/v1/entity/ticket/batch", body).await;
    assert_eq!((status, sync.as_str()), (200, "in-sync"), "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(
        (
            results[0]["status"].as_u64(),
            results[0]["record"]["summary"].as_str(),
            results[0]["etag"].as_str()
        ),
        (Some(200), Some("one"), Some("\"v3\""))
    );
    assert_eq!(results[1]["error"]["code"], "not_found", "{answer}");
    assert_eq!(results[2]["error"]["code"], "invalid_key", "{answer}");
    // Read again: both answers now come from memory.
    let (_, _, answer) = post("/v1/entity/ticket/batch", body).await;
    assert_eq!(answer["results"][0]["cache"], "hit");
    assert_eq!(answer["results"][1]["cache"], "hit");

    for (path, body, status, code) in [
        (
            "/v1/entity/ticket/batch",
            r#"{"keys":["a","b","c","d"]}"#,
            413,
            "batch_too_large",
        ),
        (
            "/v1/entity/ticket/batch",
            r#"{"keys":"a"}"#,
            400,
            "invalid_body",
        ),
        (
            "/v1/entity/nope/batch",
            r#"{"keys":["a"]}"#,
            404,
            "unknown_record_type",
        ),
    ] {
        let (got, _, answer) = post(path, body).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    // GET of the path reads the key named "batch".
    let r = sidecar.get("/v1/entity/ticket/batch?tenant=acme").await;
    assert_eq!((r.status, r.error_code()), (404, "not_found".to_owned()));
}

/// A droid that hangs (connections open, nothing moving) rather than failing
/// cleanly: the sidecar notices by the silence, answers what it holds as
/// stale and what it does not within its request timeout, and catches up when
/// the droid moves again.
#[tokio::test]
async fn a_hung_droid_is_noticed_by_its_silence_and_caught_up_after() {
    let backend = TestBackend::start().await;
    let droid = droid(&backend).await;
    let created: Vec<String> = (1..=3)
        .map(|n| ticket(n, 1, "ticket.created", "before"))
        .collect();
    ingest(&droid, &created).await;
    let proxy = FreezingProxy::start(droid.addr()).await;
    let sidecar = TestSidecar::start(
        &proxy.url(),
        &format!("{FAST_FEED}[upstream]\nrequest_timeout_ms = 300\n{SIDECAR}"),
    )
    .await;
    sidecar.wait_in_sync().await;
    for n in 1..=3 {
        let r = sidecar
            .get(&format!("/v1/entity/ticket/OPS-{n}?tenant=acme"))
            .await;
        assert_eq!(summary(&r), "before");
    }

    proxy.freeze(true);
    eventually(
        Duration::from_secs(30),
        "the silence to be noticed",
        || async { (!sidecar.sidecar().sync().in_sync()).then_some(()) },
    )
    .await;
    let r = sidecar.get("/v1/entity/ticket/OPS-1?tenant=acme").await;
    assert_eq!(
        (summary(&r), r.cache(), r.header("droid-sync")),
        ("before".to_owned(), "stale", Some("out-of-sync"))
    );
    // The frozen upstream never answers: a 504 is the sidecar's own timeout.
    sidecar
        .get("/v1/entity/ticket/OPS-9?tenant=acme")
        .await
        .assert_error(504, "backing_store_timeout", "a key it does not hold");

    // Changes while the path is hung arrive once it moves again.
    let updates: Vec<String> = (1..=3)
        .map(|n| ticket(n, 2, "ticket.updated", "after"))
        .collect();
    let last = ingest(&droid, &updates).await;
    proxy.freeze(false);
    sidecar.wait_position(last).await;
    sidecar.wait_in_sync().await;
    for n in 1..=3 {
        let ours = same_as_droid(&sidecar, &droid, n).await;
        assert_eq!((summary(&ours), ours.cache()), ("after".to_owned(), "hit"));
    }
    assert_eq!(sidecar.sidecar().sync().report().resyncs, 0);
}
