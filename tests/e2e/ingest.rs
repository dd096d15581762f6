//! Ingestion over HTTP with the real ticket transformer: events in, records out
//! on `/v1/entity`, durably, idempotently and in version order.

use droid_e2e::TestDroid;
use droid_e2e::load::{summary, ticket};
use serde_json::{Value, json};

use droid_e2e::droid::TICKETS;

async fn ingest(droid: &TestDroid, events: &[Value]) -> Value {
    ingest_to(droid, "tracker", events).await
}

async fn ingest_to(droid: &TestDroid, source: &str, events: &[Value]) -> Value {
    let r = droid
        .post(
            &format!("/v1/ingest/{source}"),
            &Value::from(events.to_vec()).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[tokio::test]
async fn events_become_records_and_deletes_remove_them() {
    let droid = TestDroid::start(TICKETS).await;
    let answer = ingest(
        &droid,
        &[
            ticket("e1", "ticket.created", "OPS-1", 1, "Disk full"),
            ticket("e2", "ticket.created", "OPS-2", 1, "Fan noise"),
        ],
    )
    .await;
    assert_eq!(answer["applied"], 2, "{answer}");
    assert_eq!(answer["results"][0]["status"], "applied");
    assert_eq!(answer["results"][0]["seqs"], json!([1]));
    assert_eq!(summary(&droid, "OPS-1").await.as_deref(), Some("Disk full"));
    let r = droid.get("/v1/entity/ticket/OPS-1?tenant=acme").await;
    assert!(!r.body.contains("secret words") && !r.body.contains("grace@example.com"));
    assert_eq!(r.header("etag"), Some("\"v1\""));

    ingest(&droid, &[ticket("e3", "ticket.deleted", "OPS-1", 2, "")]).await;
    assert_eq!(summary(&droid, "OPS-1").await, None);
    assert_eq!(summary(&droid, "OPS-2").await.as_deref(), Some("Fan noise"));
    // Another tenant sees nothing of acme's.
    let r = droid.get("/v1/entity/ticket/OPS-2?tenant=globex").await;
    assert_eq!(r.error_code(), "not_found");
}

#[tokio::test]
async fn resent_and_out_of_order_events_change_nothing() {
    let droid = TestDroid::start(TICKETS).await;
    ingest(
        &droid,
        &[ticket("e5", "ticket.updated", "OPS-1", 5, "Five")],
    )
    .await;
    let again = ingest(
        &droid,
        &[ticket("e5", "ticket.updated", "OPS-1", 5, "Five")],
    )
    .await;
    assert_eq!(again["duplicate"], 1, "{again}");
    let late = ingest(
        &droid,
        &[ticket("e4", "ticket.updated", "OPS-1", 4, "Four")],
    )
    .await;
    assert_eq!(late["results"][0]["status"], "applied");
    assert_eq!(late["results"][0]["stale"], 1);
    assert_eq!(summary(&droid, "OPS-1").await.as_deref(), Some("Five"));
    // A deletion as of version 6, then a late version-3 update: still deleted.
    ingest(&droid, &[ticket("d6", "ticket.deleted", "OPS-1", 6, "")]).await;
    ingest(
        &droid,
        &[ticket("e3", "ticket.updated", "OPS-1", 3, "Three")],
    )
    .await;
    assert_eq!(summary(&droid, "OPS-1").await, None);
    assert_eq!(
        droid.app().service.home_store().records.last_seq().unwrap(),
        2,
        "two changes applied"
    );
}

#[tokio::test]
async fn bad_events_fail_alone_and_bad_requests_write_nothing() {
    let droid = TestDroid::start(TICKETS).await;
    let answer = ingest(
        &droid,
        &[
            ticket("ok", "ticket.created", "OPS-7", 1, "Fine"),
            json!({"id": "no-tenant", "kind": "ticket.created", "occurred_at": 1, "payload": {}}),
            json!({"id": "bad-tenant", "kind": "x", "tenant": "a/b", "occurred_at": 1, "payload": {}}),
            json!({"id": "poison", "kind": "ticket.created", "tenant": "acme", "occurred_at": 1, "payload": {"nonsense": true}}),
            json!("not an object"),
            json!({"id": "elsewhere", "source": "crm", "kind": "ticket.created", "tenant": "acme", "occurred_at": 1, "payload": {}}),
        ],
    )
    .await;
    let statuses: Vec<&str> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "applied", "invalid", "invalid", "rejected", "invalid", "invalid"
        ],
        "{answer}"
    );
    assert!(
        answer["results"][5]["reason"]
            .as_str()
            .unwrap()
            .contains("names source \"crm\"")
    );
    assert!(
        answer["results"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("missing field `tenant`")
    );
    assert!(
        answer["results"][3]["reason"]
            .as_str()
            .unwrap()
            .contains("transformer 0.1.0+")
    );
    assert_eq!(summary(&droid, "OPS-7").await.as_deref(), Some("Fine"));

    let before = droid.app().service.home_store().records.last_seq().unwrap();
    for (body, status, code) in [
        ("{not json", 400, "invalid_body"),
        ("[{\"id\":1}", 400, "invalid_body"),
    ] {
        let r = droid.post("/v1/ingest/tracker", body).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (status, code),
            "{body}"
        );
    }
    let r = droid.post("/v1/ingest/nowhere", "[]").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "unknown_source"));
    assert_eq!(
        droid.app().service.home_store().records.last_seq().unwrap(),
        before,
        "nothing half-written"
    );

    // JSON lines work too.
    let lines = format!(
        "{}\n{}\n",
        ticket("l1", "ticket.created", "OPS-8", 1, "Line one"),
        ticket("l2", "ticket.created", "OPS-9", 1, "Line two")
    );
    let r = droid.post("/v1/ingest/tracker", &lines).await;
    assert_eq!(r.json()["applied"], 2, "{}", r.body);
    assert_eq!(summary(&droid, "OPS-9").await.as_deref(), Some("Line two"));
}

#[tokio::test]
async fn a_source_over_its_agreed_rate_is_told_when_to_come_back() {
    let droid = TestDroid::start(&TICKETS.replace(
        "record_type = \"ticket\"\n",
        "record_type = \"ticket\"\nrate_limit = 1\nburst = 20\n",
    ))
    .await;
    let batch = |from: u64, n: u64| {
        let events: Vec<Value> = (from..from + n)
            .map(|i| {
                ticket(
                    &format!("r{i}"),
                    "ticket.created",
                    &format!("OPS-{i}"),
                    1,
                    "x",
                )
            })
            .collect();
        Value::from(events).to_string()
    };
    let r = droid.post("/v1/ingest/tracker", &batch(0, 20)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = droid.post("/v1/ingest/tracker", &batch(20, 5)).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (429, "rate_limited"),
        "{}",
        r.body
    );
    // Five events at one per second: a few seconds' wait, however slow the machine.
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&wait), "Retry-After {wait}");
    assert!(r.body.contains("1 events per second"), "{}", r.body);
    let r = droid.post("/v1/ingest/tracker", &batch(30, 21)).await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (413, "batch_too_large"),
        "{}",
        r.body
    );
    // Nothing of the refused requests was written.
    assert_eq!(
        droid.app().service.home_store().records.last_seq().unwrap(),
        20
    );
}

fn poison(id: &str) -> Value {
    json!({"id": id, "kind": "ticket.created", "tenant": "acme", "occurred_at": 1, "payload": {"nonsense": true}})
}

#[tokio::test]
async fn refused_events_become_dead_letters_trip_thresholds_and_replay_after_a_fix() {
    let droid = droid_e2e::TestDroid::start_with_plugin_settings(
        "",
        &TICKETS
            .replace(
                "record_type = \"ticket\"\n",
                "record_type = \"ticket\"\nwarn_above = 0\npage_above = 2\n",
            )
            // Its own source name: the state gauge is process-wide.
            .replace("[sources.tracker]", "[sources.dl_tracker]"),
        &[],
    )
    .await;
    let answer = ingest_to(
        &droid,
        "dl_tracker",
        &[
            poison("p1"),
            ticket("ok", "ticket.created", "OPS-1", 1, "Fine"),
        ],
    )
    .await;
    assert_eq!(
        (answer["rejected"].as_u64(), answer["applied"].as_u64()),
        (Some(1), Some(1))
    );

    let letters = droid
        .get("/v1/admin/dead-letters?source=dl_tracker")
        .await
        .json();
    let letter = &letters["dead_letters"][0];
    assert_eq!(letter["event_id"], "p1");
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("missing field `ticket`"),
        "{letter}"
    );
    assert!(
        letter["plugin_version"]
            .as_str()
            .unwrap()
            .starts_with("0.1.0+")
    );
    assert_eq!(letter["payload"], "{\"nonsense\":true}");
    assert_eq!(state(&droid).await, ("warning".to_owned(), 1));
    ingest_to(&droid, "dl_tracker", &[poison("p2")]).await;
    assert_eq!(state(&droid).await, ("warning".to_owned(), 2));
    ingest_to(&droid, "dl_tracker", &[poison("p3")]).await;
    assert_eq!(state(&droid).await, ("incident".to_owned(), 3));
    assert_eq!(
        droid
            .metric("droid_ingest_source_state{source=\"dl_tracker\"}")
            .await,
        Some(2.0)
    );

    // Replaying with the plugin unchanged: still failing, attempts counted.
    let r = droid
        .post(
            "/v1/admin/dead-letters/dl_tracker/replay",
            r#"{"ids": ["p1"]}"#,
        )
        .await;
    assert_eq!(r.json()["still_failing"], 1, "{}", r.body);
    let letters = droid
        .get("/v1/admin/dead-letters?source=dl_tracker")
        .await
        .json();
    let p1 = letters["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["event_id"] == "p1")
        .unwrap()
        .clone();
    assert_eq!(p1["attempts"], 2);

    // The provider ships a transformer that accepts these events: replay works.
    droid_e2e::land(
        &droid.plugin_dir().join("ticket_transformer.wasm"),
        &std::fs::read(droid_e2e::plugins::NOOP_TRANSFORMER).unwrap(),
        droid_e2e::Landing::Atomic,
    );
    droid_e2e::eventually(
        std::time::Duration::from_secs(20),
        "the fixed transformer",
        || async {
            let list = droid.get("/v1/admin/plugins").await.json();
            let current = list["plugins"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == "ticket_transformer")?["versions"][0]["file"]
                .clone();
            let sha_changed = list["plugins"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == "ticket_transformer")?["versions"]
                .as_array()?
                .len()
                > 1;
            (current == "ticket_transformer.wasm" && sha_changed).then_some(())
        },
    )
    .await;
    let r = droid
        .post("/v1/admin/dead-letters/dl_tracker/replay", "")
        .await;
    assert_eq!(
        (
            r.json()["replayed"].as_u64(),
            r.json()["still_failing"].as_u64()
        ),
        (Some(3), Some(0)),
        "{}",
        r.body
    );
    let letters = droid
        .get("/v1/admin/dead-letters?source=dl_tracker")
        .await
        .json();
    assert!(letters["dead_letters"].as_array().unwrap().is_empty());
}

async fn state(droid: &TestDroid) -> (String, u64) {
    let sources = droid.get("/v1/admin/sources").await.json();
    (
        sources["sources"][0]["state"].as_str().unwrap().to_owned(),
        sources["sources"][0]["failures"].as_u64().unwrap(),
    )
}

/// The SHA-256 the snapshot API expects: event ids in order, each with a newline.
fn checksum(ids: &[String]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_snapshot_batch_is_complete_or_invisible() {
    let mut droid = TestDroid::start(TICKETS).await;
    let events: Vec<Value> = (0..30)
        .map(|i| {
            ticket(
                &format!("s{i}"),
                "ticket.created",
                &format!("SNAP-{i}"),
                1,
                "day",
            )
        })
        .collect();
    let ids: Vec<String> = (0..30).map(|i| format!("s{i}")).collect();

    // Opened with a count and a checksum, sent in three parts.
    let r = droid
        .post(
            "/v1/ingest/tracker/snapshots",
            &json!({"expected_count": 30, "checksum": checksum(&ids)}).to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["snapshot"]["id"].as_str().unwrap().to_owned();
    let part = |range: std::ops::Range<usize>| Value::from(events[range].to_vec()).to_string();
    let base = format!("/v1/ingest/tracker/snapshots/{id}");
    for range in [0..10, 10..20] {
        let r = droid.post(&base, &part(range)).await;
        assert_eq!(r.json()["staged"], 10, "{}", r.body);
    }
    assert_eq!(
        summary(&droid, "SNAP-1").await,
        None,
        "nothing visible before the commit"
    );
    // Committing early: the count does not match; refused, still open.
    let r = droid.post(&format!("{base}/commit"), "").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "snapshot_refused"),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains("20 events were staged but 30 were declared"),
        "{}",
        r.body
    );

    // A restart half-way: still invisible, still open.
    droid.restart().await;
    assert_eq!(summary(&droid, "SNAP-1").await, None);
    let r = droid.post(&base, &part(20..30)).await;
    assert_eq!(r.json()["staged"], 10, "{}", r.body);
    let r = droid.post(&format!("{base}/commit"), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["changes"], 30);
    for i in [0, 15, 29] {
        assert_eq!(
            summary(&droid, &format!("SNAP-{i}")).await.as_deref(),
            Some("day")
        );
    }
    let r = droid.post(&format!("{base}/commit"), "").await;
    assert_eq!(r.error_code(), "unknown_snapshot", "a batch commits once");

    // An aborted batch leaves no trace; a wrong checksum is refused.
    let r = droid
        .post(
            "/v1/ingest/tracker/snapshots",
            &json!({"checksum": "0".repeat(64)}).to_string(),
        )
        .await;
    let other = r.json()["snapshot"]["id"].as_str().unwrap().to_owned();
    let other_base = format!("/v1/ingest/tracker/snapshots/{other}");
    let extra = Value::from(vec![ticket("x1", "ticket.created", "GONE-1", 1, "x")]).to_string();
    droid.post(&other_base, &extra).await;
    let r = droid.post(&format!("{other_base}/commit"), "").await;
    assert!(r.body.contains("not the declared"), "{}", r.body);
    let r = droid.request(reqwest::Method::DELETE, &other_base).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(summary(&droid, "GONE-1").await, None);
    assert!(no_open_snapshots(&droid));

    // Expiry: a one-second batch is gone once it lapses.
    let r = droid
        .post("/v1/ingest/tracker/snapshots", r#"{"ttl_s": 1}"#)
        .await;
    let short = r.json()["snapshot"]["id"].as_str().unwrap().to_owned();
    droid
        .post(&format!("/v1/ingest/tracker/snapshots/{short}"), &extra)
        .await;
    droid_e2e::eventually(
        std::time::Duration::from_secs(10),
        "the batch to expire",
        || async { no_open_snapshots(&droid).then_some(()) },
    )
    .await;
    assert_eq!(summary(&droid, "GONE-1").await, None);
}

#[tokio::test]
async fn bad_snapshot_and_replay_requests_get_clear_errors() {
    let droid = TestDroid::start(TICKETS).await;
    for (path, body, status, code) in [
        (
            "/v1/ingest/tracker/snapshots",
            r#"{"ttl_s": 0}"#,
            400,
            "invalid_body",
        ),
        (
            "/v1/ingest/tracker/snapshots",
            r#"{"checksum": "abc"}"#,
            400,
            "invalid_body",
        ),
        (
            "/v1/ingest/tracker/snapshots",
            r#"{"expected": 3}"#,
            400,
            "invalid_body",
        ),
        ("/v1/ingest/nowhere/snapshots", "", 404, "unknown_source"),
        (
            "/v1/ingest/tracker/snapshots/nope",
            "[]",
            404,
            "unknown_snapshot",
        ),
        (
            "/v1/ingest/tracker/snapshots/nope/commit",
            "",
            404,
            "unknown_snapshot",
        ),
        (
            "/v1/admin/dead-letters/tracker/replay",
            "{not json",
            400,
            "invalid_body",
        ),
        (
            "/v1/admin/dead-letters/nowhere/replay",
            "",
            404,
            "unknown_source",
        ),
    ] {
        let r = droid.post(path, body).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (status, code),
            "{path} {body}: {}",
            r.body
        );
    }
    assert!(no_open_snapshots(&droid), "nothing opened");
}

/// Whether droid's store holds no open snapshot batch.
fn no_open_snapshots(droid: &TestDroid) -> bool {
    let batches = &droid.app().service.home_store().snapshots;
    batches.snapshots().unwrap().is_empty()
}
