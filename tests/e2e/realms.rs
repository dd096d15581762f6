//! Realms and realm migration: tenants' data only in their realm's store
//! file, `421` from a node that does not serve the realm, the migration
//! lifecycle end to end (copy, verify, commit, rollback, failures, restarts)
//! and every refusal with its code.

use std::time::Duration;

use droid_e2e::load::ticket;
use droid_e2e::{TestDroid, eventually};
use droid_host::store::{EventWrite, Op, RecordId};
use serde_json::{Value, json};

/// Tickets, realms `us` (the default) and `eu` (tenants starting `eu-`).
fn config(tenancy: &str) -> String {
    format!(
        "{}\n[realms.us]\npublic_url = \"https://us.droid.example\"\n[realms.eu]\npublic_url = \"https://eu.droid.example\"\n[tenancy]\ndefault_realm = \"us\"\nrefresh_ms = 50\nrules = [{{ tenant_prefix = \"eu-\", realm = \"eu\" }}]\n{tenancy}\n",
        droid_e2e::droid::TICKETS
    )
}

/// `count` ticket events of `tenant`, keys `T-0..`, summaries naming `marker`.
fn events(tenant: &str, from: usize, count: usize, version: u64, marker: &str) -> Vec<Value> {
    (from..from + count)
        .map(|n| {
            let mut event = ticket(
                &format!("{tenant}-{n}-v{version}"),
                "ticket.updated",
                &format!("T-{n}"),
                version,
                &format!("{marker}-{n}"),
            );
            event["tenant"] = json!(tenant);
            event
        })
        .collect()
}

async fn ingest(droid: &TestDroid, events: &[Value]) -> droid_e2e::TestResponse {
    droid
        .post(
            "/v1/ingest/tracker",
            &Value::from(events.to_vec()).to_string(),
        )
        .await
}

async fn ingest_ok(droid: &TestDroid, events: &[Value]) {
    for chunk in events.chunks(500) {
        let r = ingest(droid, chunk).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["applied"], chunk.len(), "{}", r.body);
    }
}

/// The records (with versions, bodies and sequence numbers) `realm`'s store
/// holds of `tenant`.
fn held(droid: &TestDroid, realm: &str, tenant: &str) -> Vec<(String, Option<String>, u64, u64)> {
    let realms = &droid.app().service.realms;
    let store = &realms.get(realm).expect("realm").stores.records;
    store
        .tenant_records("ticket", tenant, None, 1_000_000)
        .unwrap()
        .into_iter()
        .map(|(k, r)| (k, r.body, r.version, r.seq))
        .collect()
}

/// `PUT /v1/admin/tenants/{tenant}` with `{"realm": realm}`.
async fn pin(droid: &TestDroid, tenant: &str, realm: &str) -> droid_e2e::TestResponse {
    let body = json!({ "realm": realm }).to_string();
    droid
        .call(
            reqwest::Method::PUT,
            &format!("/v1/admin/tenants/{tenant}"),
            Some(&body),
        )
        .await
}

async fn step(droid: &TestDroid, name: &str, body: Value) -> droid_e2e::TestResponse {
    droid
        .post(&format!("/v1/admin/migrations/{name}"), &body.to_string())
        .await
}

fn window(from_s: i64, to_s: i64) -> (String, String) {
    let now = std::time::SystemTime::now();
    let at = |s: i64| {
        let t = if s >= 0 {
            now + Duration::from_secs(s as u64)
        } else {
            now - Duration::from_secs((-s) as u64)
        };
        humantime::format_rfc3339_seconds(t).to_string()
    };
    (at(from_s), at(to_s))
}

async fn schedule(droid: &TestDroid, tenant: &str, target: &str) -> String {
    let (start, end) = window(-60, 3600);
    let r = step(
        droid,
        "schedule",
        json!({"tenant": tenant, "target_realm": target, "start": start, "end": end}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "Scheduled");
    r.json()["migration_id"].as_str().unwrap().to_owned()
}

async fn status(droid: &TestDroid, id: &str) -> Value {
    let r = droid
        .get(&format!("/v1/admin/migrations/status?migration_id={id}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

async fn wait_status(droid: &TestDroid, id: &str, wanted: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(droid, id).await;
        if s["status"] == wanted {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not {wanted} within a minute: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn each_realms_data_stays_in_its_file_and_another_realms_node_answers_421() {
    let mut droid = TestDroid::start(&config("")).await;
    let pinned = pin(&droid, "acme", "us").await;
    assert_eq!(pinned.status, 200, "{}", pinned.body);
    ingest_ok(&droid, &events("acme", 0, 1000, 1, "USONLYVALUE")).await;
    ingest_ok(&droid, &events("eu-globex", 0, 1000, 1, "EUONLYVALUE")).await;
    assert_eq!(held(&droid, "us", "acme").len(), 1000);
    assert_eq!(held(&droid, "eu", "eu-globex").len(), 1000);
    assert!(held(&droid, "us", "eu-globex").is_empty());
    let tenant = droid.get("/v1/admin/tenants/eu-globex").await.json();
    assert_eq!(tenant["realm"], "eu", "{tenant}");
    assert_eq!(tenant["pinned"], true, "its first write pinned it");

    // Each realm's change log holds its own tenants only.
    for (realm, tenant) in [("us", "acme"), ("eu", "eu-globex")] {
        let log = droid
            .app()
            .service
            .realms
            .get(realm)
            .unwrap()
            .stores
            .records
            .changes(0, 10_000)
            .unwrap();
        assert_eq!(log.len(), 1000);
        assert!(log.iter().all(|c| c.tenant == tenant), "{realm}'s log");
    }

    let dir = droid.config_path().parent().unwrap().join(".droid");
    droid.halt().await;
    let file = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let contains =
        |bytes: &[u8], needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    let (us, eu, base) = (
        file("store.us.redb"),
        file("store.eu.redb"),
        file("store.redb"),
    );
    assert!(contains(&us, "USONLYVALUE-999") && contains(&eu, "EUONLYVALUE-999"));
    assert!(!contains(&us, "EUONLYVALUE"), "an eu value in the us file");
    assert!(!contains(&eu, "USONLYVALUE"), "a us value in the eu file");
    assert!(!contains(&base, "USONLYVALUE") && !contains(&base, "EUONLYVALUE"));

    // The same stores, now a node serving us only.
    let path = droid.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("[tenancy]\n", "[tenancy]\nserve = [\"us\"]\n"),
    )
    .unwrap();
    droid.resume().await;
    let r = droid.get("/v1/entity/ticket/T-1?tenant=eu-globex").await;
    r.assert_error(421, "tenant_elsewhere", "an eu tenant on a us node");
    assert_eq!(r.json()["error"]["realm_url"], "https://eu.droid.example/");
    assert_eq!(
        r.header("droid-realm-url"),
        Some("https://eu.droid.example/")
    );
    assert_eq!(
        droid.get("/v1/entity/ticket/T-1?tenant=acme").await.status,
        200
    );
    let r = ingest(&droid, &events("eu-globex", 0, 1, 2, "x")).await;
    r.assert_error(421, "tenant_elsewhere", "an eu tenant's write on a us node");
    droid.get("/v1/changes?realm=eu").await.assert_error(
        421,
        "tenant_elsewhere",
        "the eu feed on a us node",
    );
    droid.get("/v1/changes?realm=mars").await.assert_error(
        422,
        "unknown_realm",
        "a realm no one declared",
    );
}

#[tokio::test]
async fn a_migration_copies_verifies_commits_and_leaves_other_tenants_alone() {
    let droid = TestDroid::start(&config("max_concurrent_migrations = 1")).await;
    ingest_ok(&droid, &events("acme", 0, 300, 1, "acme")).await;
    // A tombstone travels too.
    ingest_ok(
        &droid,
        &[{
            let mut e = ticket("acme-del", "ticket.deleted", "T-0", 2, "");
            e["tenant"] = json!("acme");
            e
        }],
    )
    .await;
    ingest_ok(&droid, &events("initech", 0, 50, 1, "initech")).await;
    ingest_ok(&droid, &events("eu-x", 0, 50, 1, "eux")).await;
    let (initech, eux) = (held(&droid, "us", "initech"), held(&droid, "eu", "eu-x"));
    // An event the transformer refuses is kept as a dead letter: the
    // tenant's data too.
    let poison = json!([{"id": "p1", "kind": "ticket.created", "tenant": "acme", "occurred_at": 1, "payload": {"nonsense": true}}]);
    let r = ingest(&droid, poison.as_array().unwrap()).await;
    assert_eq!(r.json()["rejected"], 1, "{}", r.body);
    let letters = |realm: &str| {
        let realms = &droid.app().service.realms;
        let store = &realms.get(realm).unwrap().stores.dead_letters;
        store.dead_letters(None, 100).unwrap().len()
    };
    assert_eq!((letters("us"), letters("eu")), (1, 0));

    let id = schedule(&droid, "acme", "eu").await;
    // Writes go on while it is only scheduled.
    ingest_ok(&droid, &events("acme", 300, 1, 1, "acme")).await;
    let r = step(
        &droid,
        "start",
        json!({"migration_id": id, "target_realm": "us"}),
    )
    .await;
    r.assert_error(409, "migration_mismatch", "a start that does not match");
    let r = step(&droid, "commit", json!({"migration_id": id})).await;
    r.assert_error(409, "migration_state", "a commit before the copy");
    let r = step(
        &droid,
        "start",
        json!({"migration_id": id, "tenant": "acme"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "Copying");

    // During the window: the tenant's writes are refused, its reads served.
    let refused = eventually(Duration::from_secs(10), "a refused write", || async {
        let r = ingest(&droid, &events("acme", 0, 1, 9, "late")).await;
        (r.status == 409).then_some(r)
    })
    .await;
    refused.assert_error(409, "tenant_migrating", "a write during the window");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(
        droid.get("/v1/entity/ticket/T-1?tenant=acme").await.status,
        200
    );
    ingest_ok(&droid, &events("hooli", 0, 5, 1, "hooli")).await;

    let ready = wait_status(&droid, &id, "Ready-to-commit").await;
    assert_eq!(ready["verified"][0], 301, "{ready}");
    assert_eq!(
        held(&droid, "eu", "acme").len(),
        301,
        "copied, tombstone included"
    );
    assert_eq!(
        held(&droid, "us", "acme").len(),
        301,
        "the source still serves"
    );
    let r = step(&droid, "commit", json!({"migration_id": id})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let done = wait_status(&droid, &id, "Committed").await;
    let states: Vec<&str> = done["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "Scheduled",
            "Copying",
            "Ready-to-commit",
            "Committing",
            "Committed"
        ]
    );

    // The tenant is in exactly one realm; nothing of it is left in the source.
    assert!(held(&droid, "us", "acme").is_empty());
    assert_eq!(
        (letters("us"), letters("eu")),
        (0, 1),
        "its dead letters moved"
    );
    let moved = held(&droid, "eu", "acme");
    assert_eq!(moved.len(), 301);
    assert!(
        moved
            .iter()
            .any(|(k, body, v, _)| k == "T-0" && body.is_none() && *v == 2)
    );
    let us_log = droid
        .app()
        .service
        .realms
        .get("us")
        .unwrap()
        .stores
        .records
        .changes(0, 100_000)
        .unwrap();
    assert!(
        us_log
            .iter()
            .filter(|c| c.tenant == "acme")
            .all(|c| matches!(c.kind, droid_host::store::ChangeKind::Invalidate)),
        "the source log keeps no value of the tenant"
    );
    assert_eq!(
        droid.get("/v1/admin/tenants/acme").await.json()["realm"],
        "eu"
    );
    let r = droid.get("/v1/entity/ticket/T-5?tenant=acme").await;
    assert_eq!(r.status, 200, "{}", r.body);
    ingest_ok(&droid, &events("acme", 0, 1, 10, "after")).await;
    assert_eq!(held(&droid, "us", "initech"), initech, "others untouched");
    assert_eq!(held(&droid, "eu", "eu-x"), eux, "others untouched");
}

#[tokio::test]
async fn every_refusal_has_its_code() {
    let droid = TestDroid::start(&config("max_concurrent_migrations = 1")).await;
    ingest_ok(&droid, &events("acme", 0, 3, 1, "a")).await;
    let (start, end) = window(-60, 3600);
    let ask = |body: Value| step(&droid, "schedule", body);
    ask(json!({"tenant": "acme", "target_realm": "mars", "start": start, "end": end}))
        .await
        .assert_error(422, "unknown_realm", "an unknown realm");
    ask(json!({"tenant": "acme", "target_realm": "us", "start": start, "end": end}))
        .await
        .assert_error(409, "same_realm", "the realm it is in");
    ask(json!({"tenant": "acme", "target_realm": "eu", "start": "yesterday", "end": end}))
        .await
        .assert_error(400, "invalid_window", "a malformed window");
    ask(json!({"tenant": "acme", "target_realm": "eu", "start": end, "end": start}))
        .await
        .assert_error(400, "invalid_window", "an end before the start");
    let (old_start, old_end) = window(-7200, -3600);
    ask(json!({"tenant": "acme", "target_realm": "eu", "start": old_start, "end": old_end}))
        .await
        .assert_error(422, "window_in_past", "a window in the past");
    let id = schedule(&droid, "acme", "eu").await;
    ask(json!({"tenant": "acme", "target_realm": "eu", "start": start, "end": end}))
        .await
        .assert_error(409, "tenant_already_migrating", "twice");
    ask(json!({"tenant": "initech", "target_realm": "eu", "start": start, "end": end}))
        .await
        .assert_error(409, "too_many_migrations", "past the limit");
    step(&droid, "start", json!({"migration_id": "m-nope"}))
        .await
        .assert_error(404, "unknown_migration", "an unknown migration");
    pin(&droid, "acme", "eu").await.assert_error(
        409,
        "tenant_already_migrating",
        "a pin during a migration",
    );
    // A rollback before the start cancels at once.
    let r = step(&droid, "rollback", json!({"migration_id": id})).await;
    assert_eq!(r.json()["status"], "Rolled back", "{}", r.body);
    pin(&droid, "acme", "eu").await.assert_error(
        409,
        "tenant_has_data",
        "a pin that would strand data",
    );
    pin(&droid, "acme", "mars").await.assert_error(
        422,
        "unknown_realm",
        "a pin to an unknown realm",
    );
    droid
        .call(reqwest::Method::PUT, "/v1/admin/tenants/acme", Some("eu"))
        .await
        .assert_error(400, "invalid_body", "a pin that is not JSON");
    droid.get("/v1/admin/tenants/a%20b").await.assert_error(
        400,
        "invalid_tenant",
        "a tenant id that is not one",
    );
    step(&droid, "land", json!({"migration_id": id}))
        .await
        .assert_error(404, "unknown_migration", "a step that does not exist");
}

#[tokio::test]
async fn a_failed_copy_and_a_rollback_after_ready_leave_the_source_serving() {
    let droid = TestDroid::start(&config("copy_page_records = 5")).await;
    ingest_ok(&droid, &events("acme", 0, 400, 1, "acme")).await;
    let before = held(&droid, "us", "acme");

    // A record appears in the target behind the copy's back: the copy does
    // not verify, and the migration fails.
    let id = schedule(&droid, "acme", "eu").await;
    step(&droid, "start", json!({"migration_id": id})).await;
    eventually(Duration::from_secs(30), "copying", || async {
        let s = status(&droid, &id).await;
        (s["records"].as_u64() > Some(0)).then_some(())
    })
    .await;
    let eu = droid.app().service.realms.get("eu").unwrap().clone();
    eu.stores
        .records
        .apply(&[EventWrite {
            overwrite: false,
            source: "intruder".into(),
            event_id: "x".into(),
            occurred_at_ms: 1,
            ops: vec![Op::Upsert {
                id: RecordId {
                    record_type: "ticket".into(),
                    tenant: "acme".into(),
                    key: "ZZZ-stray".into(),
                },
                body: "{}".into(),
                version: 1,
            }],
        }])
        .unwrap();
    let failed = wait_status(&droid, &id, "Failed").await;
    assert!(
        failed["error"].as_str().unwrap().contains("does not match"),
        "{failed}"
    );
    ingest_ok(&droid, &events("hooli", 0, 1, 1, "writes go on")).await;
    let r = step(&droid, "rollback", json!({"migration_id": id})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    wait_status(&droid, &id, "Rolled back").await;
    assert!(
        held(&droid, "eu", "acme").is_empty(),
        "the target is cleared"
    );
    assert_eq!(
        held(&droid, "us", "acme"),
        before,
        "the source is as it was"
    );

    // Again, rolled back once ready to commit.
    let id = schedule(&droid, "acme", "eu").await;
    step(&droid, "start", json!({"migration_id": id})).await;
    wait_status(&droid, &id, "Ready-to-commit").await;
    let r = step(&droid, "rollback", json!({"migration_id": id})).await;
    assert_eq!(r.json()["status"], "Rolling back", "{}", r.body);
    wait_status(&droid, &id, "Rolled back").await;
    assert!(held(&droid, "eu", "acme").is_empty());
    assert_eq!(held(&droid, "us", "acme"), before);
    ingest_ok(&droid, &events("acme", 0, 1, 5, "writable again")).await;
    assert_eq!(
        droid.get("/v1/admin/tenants/acme").await.json()["realm"],
        "us"
    );
}

#[tokio::test]
async fn a_restart_while_copying_or_committing_carries_the_migration_through() {
    let mut droid = TestDroid::start(&config("copy_page_records = 5")).await;
    ingest_ok(&droid, &events("acme", 0, 1500, 1, "acme")).await;
    let before: Vec<_> = held(&droid, "us", "acme")
        .into_iter()
        .map(|(k, b, v, _)| (k, b, v))
        .collect();
    let id = schedule(&droid, "acme", "eu").await;
    step(&droid, "start", json!({"migration_id": id})).await;
    eventually(Duration::from_secs(30), "copying", || async {
        let s = status(&droid, &id).await;
        (s["status"] == "Copying" && s["records"].as_u64() > Some(50)).then_some(())
    })
    .await;
    droid.restart().await;
    let after_restart = status(&droid, &id).await;
    assert_eq!(after_restart["status"], "Copying", "{after_restart}");
    wait_status(&droid, &id, "Ready-to-commit").await;
    let copied: Vec<_> = held(&droid, "eu", "acme")
        .into_iter()
        .map(|(k, b, v, _)| (k, b, v))
        .collect();
    assert_eq!(copied, before, "the resumed copy is whole and exact");

    step(&droid, "commit", json!({"migration_id": id})).await;
    eventually(Duration::from_secs(30), "committing", || async {
        let s = status(&droid, &id).await;
        (s["status"] == "Committing").then_some(())
    })
    .await;
    droid.restart().await;
    wait_status(&droid, &id, "Committed").await;
    assert!(held(&droid, "us", "acme").is_empty());
    assert_eq!(held(&droid, "eu", "acme").len(), 1500);
    assert_eq!(
        droid.get("/v1/admin/tenants/acme").await.json()["realm"],
        "eu"
    );
}

/// Two nodes on one PostgreSQL server, one per realm (a schema each, the
/// directory in the shared one), each with a sidecar of its realm: a moved
/// tenant leaves the source realm's sidecar and node, and the target's serve it.
#[tokio::test]
async fn on_postgres_the_source_realms_sidecar_lets_a_moved_tenant_go_and_the_targets_serves_it() {
    let pg = droid_test_servers::PostgresServer::start();
    let node = |realm: &str| {
        droid_e2e::Setup::new()
            .postgres(&pg.url(), "fleet")
            .raw(&config(&format!("serve = [\"{realm}\"]")))
            .start()
    };
    let us = node("us").await;
    let eu = node("eu").await;
    ingest_ok(&us, &events("acme", 0, 20, 1, "acme")).await;
    ingest_ok(&eu, &events("eu-globex", 0, 5, 1, "globex")).await;
    // The schemas are the realms' own.
    let url = pg.url();
    let schemas: Vec<String> = tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let rows = client
            .query(
                "SELECT table_schema::text FROM information_schema.tables \
                 WHERE table_name = 'records' ORDER BY 1",
                &[],
            )
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    })
    .await
    .unwrap();
    assert_eq!(schemas, ["fleet", "fleet_eu", "fleet_us"]);

    let sidecar = |droid: &TestDroid, realm: &str| {
        let config = format!(
            "{}[upstream]\nrealm = \"{realm}\"\n[record_types.ticket]\n",
            droid_e2e::sidecar::FAST_FEED
        );
        let url = droid.url("");
        async move {
            let sidecar = droid_e2e::TestSidecar::start(&url, &config).await;
            sidecar.wait_in_sync().await;
            sidecar
        }
    };
    let (near_us, near_eu) = (sidecar(&us, "us").await, sidecar(&eu, "eu").await);
    let path = "/v1/entity/ticket/T-1?tenant=acme";
    assert_eq!(
        near_us.get(path).await.status,
        200,
        "cached in the us sidecar"
    );
    near_eu.get(path).await.assert_error(
        421,
        "tenant_elsewhere",
        "an us tenant through the eu sidecar",
    );

    let id = schedule(&eu, "acme", "eu").await;
    step(&eu, "start", json!({"migration_id": id})).await;
    wait_status(&us, &id, "Ready-to-commit").await;
    step(&us, "commit", json!({"migration_id": id})).await;
    wait_status(&eu, &id, "Committed").await;

    eventually(
        Duration::from_secs(15),
        "the us sidecar lets acme go",
        || async { (near_us.get(path).await.status == 421).then_some(()) },
    )
    .await;
    us.get(path)
        .await
        .assert_error(421, "tenant_elsewhere", "the us node after the move");
    eventually(
        Duration::from_secs(15),
        "the eu sidecar serves acme",
        || async {
            let r = near_eu.get(path).await;
            (r.status == 200 && r.body.contains("acme-1")).then_some(())
        },
    )
    .await;
    assert_eq!(eu.get(path).await.status, 200);
    // The eu realm's feed carried the tenant's records in.
    let eu_log = eu
        .app()
        .service
        .realms
        .get("eu")
        .unwrap()
        .stores
        .records
        .clone();
    let log = tokio::task::spawn_blocking(move || eu_log.changes(0, 10_000).unwrap())
        .await
        .unwrap();
    assert_eq!(log.iter().filter(|c| c.tenant == "acme").count(), 20);
    near_us.stop().await;
    near_eu.stop().await;
}

/// The platform's hooks are admin calls: a caller without the admin grant is
/// refused, and a token is good for one call.
#[tokio::test]
async fn the_migration_hooks_want_an_admin_and_a_fresh_token() {
    use droid_e2e::tokens::Issuers;
    let issuers = Issuers::new(&["platform", "tracker"]);
    let toml = format!("{}\n{}", config(""), issuers.auth_table(&["platform"], "")).replace(
        "[sources.tracker]\nrecord_type = \"ticket\"\n",
        "[sources.tracker]\nrecord_type = \"ticket\"\npublishers = [\"tracker\"]\n",
    );
    let droid = TestDroid::start(&toml).await;
    let (start, end) = window(-60, 3600);
    let body =
        json!({"tenant": "acme", "target_realm": "eu", "start": start, "end": end}).to_string();
    let call = |token: String| {
        let (droid, body) = (&droid, body.clone());
        async move {
            droid
                .send_with(
                    reqwest::Method::POST,
                    "/v1/admin/migrations/schedule",
                    Some(&body),
                    &[("authorization", &format!("Bearer {token}"))],
                )
                .await
        }
    };
    call(issuers.token("tracker")).await.assert_error(
        403,
        "forbidden",
        "a hook call without the admin grant",
    );
    let token = issuers.token("platform");
    let first = call(token.clone()).await;
    assert_eq!(first.status, 200, "{}", first.body);
    call(token)
        .await
        .assert_error(401, "replayed_token", "a replayed hook call");
    let r = droid.get("/v1/admin/tenants").await;
    r.assert_error(401, "missing_token", "the directory without a token");
}

/// A read-through record type with a base URL per realm: a tenant's miss
/// reaches its provider in the tenant's realm, and nowhere else.
#[tokio::test]
async fn a_read_through_miss_reaches_the_provider_in_the_tenants_realm() {
    let (us_store, eu_store) = (
        droid_e2e::TestBackend::start().await,
        droid_e2e::TestBackend::start().await,
    );
    us_store.put("a", r#"{"where":"us"}"#);
    eu_store.put("a", r#"{"where":"eu"}"#);
    let toml = droid_e2e::Setup::new()
        .site(
            &us_store,
            &format!(
                "realm_base_urls = {{ eu = \"{}\" }}",
                eu_store.url("/records")
            ),
        )
        .raw(&config(""))
        .toml()
        .to_owned();
    let droid = TestDroid::start(&toml).await;
    let r = droid.get("/v1/entity/site/a?tenant=eu-globex").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"eu\""), "{}", r.body);
    let r = droid.get("/v1/entity/site/a?tenant=acme").await;
    assert!(r.body.contains("\"us\""), "{}", r.body);
    assert_eq!(us_store.hits("a"), 1, "the us store saw the us tenant only");
    assert_eq!(eu_store.hits("a"), 1, "the eu store saw the eu tenant only");

    // Moved to eu, the tenant's cached answer from us is dropped, and its
    // next miss reaches the eu store.
    let id = schedule(&droid, "acme", "eu").await;
    step(&droid, "start", json!({"migration_id": id})).await;
    wait_status(&droid, &id, "Ready-to-commit").await;
    step(&droid, "commit", json!({"migration_id": id})).await;
    wait_status(&droid, &id, "Committed").await;
    let r = eventually(Duration::from_secs(10), "the eu answer", || async {
        let r = droid.get("/v1/entity/site/a?tenant=acme").await;
        r.body.contains("\"eu\"").then_some(r)
    })
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(us_store.hits("a"), 1, "nothing more from the old realm");
    assert_eq!(eu_store.hits("a"), 2);
}

/// A request's new tenants are pinned at once where the rules and the
/// default place them, and stay there when the rules change.
#[tokio::test]
async fn new_tenants_are_pinned_where_placed_and_stay_when_the_rules_change() {
    let mut droid = TestDroid::start(&config("")).await;
    let batch: Vec<Value> = (0..40)
        .flat_map(|n| {
            let tenant = if n % 2 == 0 {
                format!("eu-t{n}")
            } else {
                format!("t{n}")
            };
            events(&tenant, 0, 1, 1, "x")
        })
        .collect();
    ingest_ok(&droid, &batch).await;
    let list = droid.get("/v1/admin/tenants").await.json();
    let pins = list["tenants"].as_array().unwrap();
    assert_eq!(pins.len(), 40, "{list}");
    for pin in pins {
        let tenant = pin["tenant"].as_str().unwrap();
        let want = if tenant.starts_with("eu-") {
            "eu"
        } else {
            "us"
        };
        assert_eq!(pin["realm"], want, "{pin}");
    }
    // The default moves to eu: pinned tenants stay, new ones go there.
    let path = droid.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("default_realm = \"us\"", "default_realm = \"eu\""),
    )
    .unwrap();
    droid.restart().await;
    ingest_ok(&droid, &events("t1", 1, 1, 1, "y")).await;
    ingest_ok(&droid, &events("newcomer", 0, 1, 1, "z")).await;
    assert_eq!(held(&droid, "us", "t1").len(), 2, "t1 stays in us");
    assert_eq!(held(&droid, "eu", "newcomer").len(), 1);
}

/// A snapshot batch staged in a realm cannot land a tenant's events there
/// once the tenant moved away: the commit is refused, nothing is written.
#[tokio::test]
async fn a_snapshot_staged_before_a_move_is_refused_at_its_commit() {
    let droid = TestDroid::start(&config("")).await;
    ingest_ok(&droid, &events("acme", 0, 3, 1, "acme")).await;
    let opened = droid.post("/v1/ingest/tracker/snapshots", "{}").await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let batch = opened.json()["snapshot"]["id"].as_str().unwrap().to_owned();
    let part = droid
        .post(
            &format!("/v1/ingest/tracker/snapshots/{batch}"),
            &Value::from(events("acme", 10, 2, 1, "staged")).to_string(),
        )
        .await;
    assert_eq!(part.json()["staged"], 2, "{}", part.body);

    let id = schedule(&droid, "acme", "eu").await;
    step(&droid, "start", json!({"migration_id": id})).await;
    wait_status(&droid, &id, "Ready-to-commit").await;
    let refused = droid
        .post(&format!("/v1/ingest/tracker/snapshots/{batch}/commit"), "")
        .await;
    refused.assert_error(
        409,
        "snapshot_refused",
        "a commit while the tenant migrates",
    );
    step(&droid, "commit", json!({"migration_id": id})).await;
    wait_status(&droid, &id, "Committed").await;
    let refused = droid
        .post(&format!("/v1/ingest/tracker/snapshots/{batch}/commit"), "")
        .await;
    refused.assert_error(409, "snapshot_refused", "a commit after the tenant moved");
    assert!(refused.body.contains("moved to realm"), "{}", refused.body);
    assert!(
        held(&droid, "us", "acme").is_empty(),
        "nothing landed in us"
    );
    assert_eq!(held(&droid, "eu", "acme").len(), 3);
}
