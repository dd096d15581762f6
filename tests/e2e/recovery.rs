//! Recovery: continuous backups, point-in-time restore of chosen tenants
//! into the live system (others writing throughout; a sidecar and a second
//! node following), its dry run and its undo, and damaged backups detected,
//! named and never restored from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use droid_e2e::load::ticket;
use droid_e2e::{TestDroid, eventually};
use serde_json::{Value, json};

/// Backups into `dir`, sealed with the master key in `key`: segments every
/// 100 ms, a chain restarting after `snapshot_changes` changes.
fn backup_config(dir: &Path, key: &Path, snapshot_changes: u64) -> String {
    format!(
        "[backup]\npath = \"{}\"\nmaster_key_file = \"{}\"\nsegment_interval_ms = 100\nsnapshot_max_changes = {snapshot_changes}\nverify_interval_s = 3600\n",
        dir.display(),
        key.display()
    )
}

/// A folder for backups and a master key file, apart from droid's own.
struct Vault {
    _dir: tempfile::TempDir,
    backups: PathBuf,
    key: PathBuf,
}

fn vault() -> Vault {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    std::fs::write(
        &key,
        format!("{}\n", droid_host::backup::MasterKey::generate()),
    )
    .unwrap();
    Vault {
        backups: dir.path().join("backups"),
        key,
        _dir: dir,
    }
}

fn event(tenant: &str, key: usize, version: u64, kind: &str, marker: &str) -> Value {
    let mut e = ticket(
        &format!("{tenant}-{key}-v{version}-{kind}"),
        kind,
        &format!("T-{key}"),
        version,
        &format!("{marker}-{tenant}-{key}-v{version}"),
    );
    e["tenant"] = json!(tenant);
    e
}

async fn ingest_ok(droid: &TestDroid, events: &[Value]) {
    for chunk in events.chunks(500) {
        let r = droid
            .post(
                "/v1/ingest/tracker",
                &Value::from(chunk.to_vec()).to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["applied"], chunk.len(), "{}", r.body);
    }
}

/// What the store holds of `tenant`: key → (body, version), tombstones as `None`.
type Held = BTreeMap<String, (Option<String>, u64)>;

async fn held(droid: &TestDroid, tenant: &str) -> Held {
    let store = droid
        .app()
        .service
        .realms
        .of_tenant(tenant)
        .stores
        .records
        .clone();
    let tenant = tenant.to_owned();
    tokio::task::spawn_blocking(move || {
        store
            .tenant_records("ticket", &tenant, None, 1_000_000)
            .unwrap()
            .into_iter()
            .map(|(k, r)| (k, (r.body, r.version)))
            .collect()
    })
    .await
    .unwrap()
}

/// Live records only: what a reader sees.
fn live(held: &Held) -> BTreeMap<String, (String, u64)> {
    held.iter()
        .filter_map(|(k, (b, v))| b.clone().map(|b| (k.clone(), (b, *v))))
        .collect()
}

async fn restore(droid: &TestDroid, body: Value) -> droid_e2e::TestResponse {
    droid.post("/v1/admin/restores", &body.to_string()).await
}

/// Waits until `droid` has backed up its change log to its end.
async fn backed_up(droid: &TestDroid) {
    eventually(Duration::from_secs(20), "the backups catch up", || async {
        let status = droid.get("/v1/admin/backups").await.json();
        let realms = status["realms"].as_array()?.clone();
        realms
            .iter()
            .all(|r| r["lag_changes"] == 0 && r["shipped_seq"] == r["last_seq"])
            .then_some(())
    })
    .await;
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

const TENANTS: usize = 1_000;
const KEYS: usize = 5;
const CHOSEN: [&str; 3] = ["t-0007", "t-0420", "t-0999"];

fn tenant(n: usize) -> String {
    format!("t-{n:04}")
}

/// The scenario on `nodes` (the first takes backups and restores; the
/// others share its store) with a sidecar following the first.
async fn restore_three_of_a_thousand(nodes: &[TestDroid]) {
    let first = &nodes[0];
    // Every tenant's records, version 1.
    let all: Vec<Value> = (0..TENANTS)
        .flat_map(|t| (0..KEYS).map(move |k| event(&tenant(t), k, 1, "ticket.created", "one")))
        .collect();
    ingest_ok(first, &all).await;
    backed_up(first).await;
    let mut then = BTreeMap::new();
    for t in CHOSEN {
        then.insert(t, held(first, t).await);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let at = now_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Then every tenant changes: the chosen three lose T-0, gain T-5 and
    // T-6, and T-1 and T-2 move on.
    let mut after = Vec::new();
    for t in 0..TENANTS {
        let t = tenant(t);
        if CHOSEN.contains(&t.as_str()) {
            after.push(event(&t, 0, 2, "ticket.deleted", "two"));
            after.push(event(&t, 1, 2, "ticket.updated", "two"));
            after.push(event(&t, 2, 3, "ticket.updated", "two"));
            after.push(event(&t, 5, 1, "ticket.created", "two"));
            after.push(event(&t, 6, 1, "ticket.created", "two"));
        } else {
            after.push(event(&t, 3, 2, "ticket.updated", "two"));
        }
    }
    ingest_ok(first, &after).await;
    let mut before_restore = BTreeMap::new();
    for t in CHOSEN {
        before_restore.insert(t, held(first, t).await);
    }

    // A sidecar holding the chosen tenants' keys.
    let sidecar_config = format!("{}[record_types.ticket]\n", droid_e2e::sidecar::FAST_FEED);
    let sidecar = droid_e2e::TestSidecar::start(&first.url(""), &sidecar_config).await;
    sidecar.wait_in_sync().await;
    for t in CHOSEN {
        for k in [0, 1, 5] {
            let _ = sidecar
                .get(&format!("/v1/entity/ticket/T-{k}?tenant={t}"))
                .await;
        }
    }

    // The dry run says what the restore will do, and does nothing.
    let request = json!({ "tenants": CHOSEN, "at": at, "dry_run": true });
    let dry = restore(first, request).await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    let dry = dry.json();
    assert_eq!(dry["state"], "dry_run", "{dry}");
    for count in dry["counts"].as_array().unwrap() {
        assert_eq!(
            (
                count["upserts"].as_u64(),
                count["deletes"].as_u64(),
                count["unchanged"].as_u64()
            ),
            (Some(3), Some(2), Some(2)),
            "T-0 back, T-1 and T-2 back; T-5 and T-6 go; T-3 and T-4 stay: {count}"
        );
    }
    for t in CHOSEN {
        assert_eq!(
            held(first, t).await,
            before_restore[t],
            "a dry run writes nothing"
        );
    }

    // Others keep writing throughout the restore.
    let stop = Arc::new(AtomicBool::new(false));
    let version = Arc::new(AtomicU64::new(3));
    let writer = {
        let (stop, version) = (stop.clone(), version.clone());
        let url = first.url("/v1/ingest/tracker");
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let v = version.fetch_add(1, Ordering::SeqCst);
                let batch: Vec<Value> = (0..TENANTS)
                    .step_by(10)
                    .map(tenant)
                    .filter(|t| !CHOSEN.contains(&t.as_str()))
                    .map(|t| event(&t, 4, v, "ticket.updated", "busy"))
                    .collect();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(Value::from(batch).to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "another tenant's write during the restore");
            }
        })
    };
    let request = json!({ "tenants": CHOSEN, "at": at });
    let running = {
        let url = first.url("/v1/admin/restores");
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(&url)
                .header("content-type", "application/json")
                .body(request.to_string())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    // While it runs, the chosen tenants' writes are refused with a code.
    eventually(Duration::from_secs(10), "the restore under way", || async {
        let list = first.get("/v1/admin/restores").await.json();
        list["restores"]
            .as_array()?
            .iter()
            .any(|r| r["state"] == "fencing" || r["state"] == "writing")
            .then_some(())
    })
    .await;
    let refused = first
        .post(
            "/v1/ingest/tracker",
            &json!([event(CHOSEN[0], 3, 9, "ticket.updated", "fenced")]).to_string(),
        )
        .await;
    refused.assert_error(409, "tenant_restoring", "a restored tenant's write");
    assert!(refused.header("retry-after").is_some());
    let done: Value = serde_json::from_str(&running.await.unwrap()).unwrap();
    assert_eq!(done["state"], "restored", "{done}");
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert_eq!(
        done["counts"], dry["counts"],
        "the dry run said what the restore did"
    );

    // The three are as they were at the instant: records, versions, deletions.
    for t in CHOSEN {
        assert_eq!(
            live(&held(first, t).await),
            live(&then[t]),
            "{t} at the instant"
        );
    }
    // Every other tenant is as it is now.
    let last = version.load(Ordering::SeqCst) - 1;
    for n in (0..TENANTS).step_by(37) {
        let t = tenant(n);
        if CHOSEN.contains(&t.as_str()) {
            continue;
        }
        let now = live(&held(first, &t).await);
        assert_eq!(now.len(), KEYS, "{t}");
        assert_eq!(now["T-3"].1, 2, "{t} kept its later write");
        if n % 10 == 0 {
            assert_eq!(
                now["T-4"].1, last,
                "{t} kept the writes made during the restore"
            );
        }
    }
    // Every node and the sidecar show the restored state.
    for node in nodes {
        for t in CHOSEN {
            let r = node.get(&format!("/v1/entity/ticket/T-0?tenant={t}")).await;
            assert_eq!(r.status, 200, "{t}'s T-0 is back: {}", r.body);
            assert!(r.body.contains(&format!("one-{t}-0-v1")), "{}", r.body);
            node.get(&format!("/v1/entity/ticket/T-5?tenant={t}"))
                .await
                .assert_error(404, "not_found", "a record made after the instant");
        }
    }
    for t in CHOSEN {
        let path = format!("/v1/entity/ticket/T-1?tenant={t}");
        eventually(
            Duration::from_secs(10),
            "the sidecar shows the restore",
            || async {
                let r = sidecar.get(&path).await;
                (r.status == 200 && r.body.contains(&format!("one-{t}-1-v1"))).then_some(())
            },
        )
        .await;
        let path = format!("/v1/entity/ticket/T-5?tenant={t}");
        eventually(
            Duration::from_secs(10),
            "the sidecar drops what came later",
            || async { (sidecar.get(&path).await.status == 404).then_some(()) },
        )
        .await;
    }

    // Undoing the restore brings back the state before it.
    let id = done["id"].as_str().unwrap();
    let undone = first
        .post(&format!("/v1/admin/restores/{id}/undo"), "{}")
        .await;
    assert_eq!(undone.status, 200, "{}", undone.body);
    assert_eq!(undone.json()["undoes"], id);
    for t in CHOSEN {
        assert_eq!(
            live(&held(first, t).await),
            live(&before_restore[t]),
            "{t} before the restore"
        );
    }
    // Both are in the audit log, with who asked.
    let audit = first.get("/v1/admin/audit").await.json();
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["entry"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["restore", "restore_undo"], "{audit}");
    let entry = &audit["entries"][0]["entry"];
    assert_eq!(entry["outcome"], "restored");
    assert!(
        entry["by"].as_str().is_some_and(|by| !by.is_empty()),
        "{entry}"
    );
    sidecar.stop().await;
}

#[tokio::test]
async fn three_tenants_of_a_thousand_go_back_to_an_instant_while_the_others_keep_writing() {
    let vault = vault();
    let droid = TestDroid::start(&format!(
        // Restores hold their tenants for two refreshes: long enough to see.
        "{}\n{}[tenancy]\nrefresh_ms = 200\n",
        droid_e2e::droid::TICKETS,
        backup_config(&vault.backups, &vault.key, 1_000_000)
    ))
    .await;
    restore_three_of_a_thousand(std::slice::from_ref(&droid)).await;
}

#[tokio::test]
async fn on_postgres_a_second_node_shows_the_restored_tenants() {
    let pg = droid_test_servers::PostgresServer::start();
    let vault = vault();
    let node = |extra: String| {
        droid_e2e::Setup::new()
            .postgres(&pg.url(), "recovery")
            .tickets()
            .raw(&format!("[tenancy]\nrefresh_ms = 200\n{extra}"))
            .start()
    };
    let first = node(format!(
        "\n{}",
        backup_config(&vault.backups, &vault.key, 1_000_000)
    ))
    .await;
    let second = node(String::new()).await;
    restore_three_of_a_thousand(&[first, second]).await;
}

/// The chain manifests of realm `default` in `backups`, oldest first, as JSON.
fn chains(backups: &Path) -> Vec<(PathBuf, Value)> {
    let dir = backups.join("realms/default/chains");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .filter_map(|p| {
            let json = serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
            Some((p, json))
        })
        .collect()
}

/// Damages `file` with `how`, runs `check`, and puts the file back.
async fn damaged<F: std::future::Future<Output = ()>>(
    file: &Path,
    how: fn(&mut Vec<u8>),
    check: impl FnOnce() -> F,
) {
    let original = std::fs::read(file).unwrap();
    let mut bytes = original.clone();
    how(&mut bytes);
    if bytes.is_empty() {
        std::fs::remove_file(file).unwrap();
    } else {
        std::fs::write(file, &bytes).unwrap();
    }
    check().await;
    std::fs::write(file, original).unwrap();
}

#[expect(
    clippy::ptr_arg,
    reason = "every way of damaging a file has one signature; some change its length"
)]
fn flip(bytes: &mut Vec<u8>) {
    let at = bytes.len() - 7;
    bytes[at] ^= 0x20;
}

fn remove(bytes: &mut Vec<u8>) {
    bytes.clear();
}

fn truncate(bytes: &mut Vec<u8>) {
    bytes.truncate(bytes.len() / 2);
}

/// What a verification now reports wrong: (file, range, reason) of each.
async fn problems(droid: &TestDroid) -> Vec<(String, String, String)> {
    let r = droid.post("/v1/admin/backups/verify", "{}").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["verifications"][0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap().to_owned(),
                p["range"].as_str().unwrap().to_owned(),
                p["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_damaged_backup_is_named_and_never_restored_from() {
    let vault = vault();
    let droid = TestDroid::start(&format!(
        "{}\n{}[store]\nchange_log_retention = 50\n",
        droid_e2e::droid::TICKETS,
        backup_config(&vault.backups, &vault.key, 100)
    ))
    .await;
    let created: Vec<Value> = (0..600)
        .map(|k| event("acme", k, 1, "ticket.created", "one"))
        .collect();
    ingest_ok(&droid, &created).await;
    backed_up(&droid).await;
    // The second chain starts with a snapshot of all 600.
    eventually(Duration::from_secs(20), "a second chain", || async {
        (chains(&vault.backups).len() >= 2).then_some(())
    })
    .await;
    let updated: Vec<Value> = (0..10)
        .map(|k| event("acme", k, 2, "ticket.updated", "two"))
        .collect();
    ingest_ok(&droid, &updated).await;
    backed_up(&droid).await;
    // The log is trimmed: only the backups reach back.
    let store = droid.app().service.realms.home_store().records.clone();
    eventually(Duration::from_secs(30), "the change log trimmed", || {
        let store = store.clone();
        async move { (store.first_seq().unwrap() > 1).then_some(()) }
    })
    .await;
    assert_eq!(problems(&droid).await, [], "healthy backups");
    let last = store.last_seq().unwrap();
    let ask = json!({ "tenants": ["acme"], "at": last.to_string(), "dry_run": true });
    let healthy = restore(&droid, ask.clone()).await;
    assert_eq!(healthy.status, 200, "{}", healthy.body);
    let healthy = healthy.json();

    let all = chains(&vault.backups);
    let (newest, older) = (&all[all.len() - 1], &all[all.len() - 2]);
    let file = |entry: &Value| vault.backups.join(entry["name"].as_str().unwrap());
    let snapshot = file(&newest.1["chain"]["snapshot"][0]);
    let segment = file(&newest.1["chain"]["segments"][0]);
    let older_segment = file(&older.1["chain"]["segments"][0]);
    let name = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_owned();

    for (what, path, how) in [
        (
            "a flipped byte in a snapshot",
            &snapshot,
            flip as fn(&mut Vec<u8>),
        ),
        ("a flipped byte in a segment", &segment, flip),
        ("a missing segment", &segment, remove),
        ("a truncated manifest", &newest.0, truncate),
    ] {
        damaged(path, how, || async {
            let found = problems(&droid).await;
            assert_eq!(found.len(), 1, "{what}: {found:?}");
            let (file, range, reason) = &found[0];
            assert!(
                file.ends_with(&name(path)),
                "{what} names the file: {found:?}"
            );
            assert!(!range.is_empty() && !reason.is_empty(), "{what}: {found:?}");
            // The restore passes the damaged chain by for the older one.
            let r = restore(&droid, ask.clone()).await;
            assert_eq!(r.status, 200, "{what}: {}", r.body);
            let r = r.json();
            assert_eq!(r["counts"], healthy["counts"], "{what}");
            let source = r["sources"]["default"].as_str().unwrap();
            assert!(
                source.contains(older.0.file_name().unwrap().to_str().unwrap()),
                "{what}: restored from {source}"
            );
            // With the older chain damaged too, nothing is restored.
            damaged(&older_segment, flip, || async {
                let r = restore(&droid, ask.clone()).await;
                r.assert_error(422, "backup_corrupt", what);
                assert!(r.body.contains(&name(&older_segment)), "{}", r.body);
                let real = json!({ "tenants": ["acme"], "at": last.to_string() });
                restore(&droid, real)
                    .await
                    .assert_error(422, "backup_corrupt", what);
            })
            .await;
        })
        .await;
    }
    assert_eq!(problems(&droid).await, [], "healthy again");
    assert_eq!(
        droid
            .metric("droid_backup_problems{realm=\"default\"}")
            .await,
        Some(0.0)
    );
}

/// Tickets readable by any service, published by `tracker`, in realms `us`
/// (the default) and `eu` (tenants starting `eu-`), erasure proposals
/// open `window_s`, backups as [`backup_config`].
fn erasure_config(issuers: &droid_e2e::tokens::Issuers, vault: &Vault, window_s: u64) -> String {
    format!(
        "[record_types.ticket]\nmode = \"ingested\"\ntransformer = \"ticket_transformer.wasm\"\nreaders = [\"*\"]\n\
         [sources.tracker]\nrecord_type = \"ticket\"\npublishers = [\"tracker\"]\n\
         [realms.us]\n[realms.eu]\n\
         [tenancy]\ndefault_realm = \"us\"\nrefresh_ms = 50\nerase_approval_window_s = {window_s}\nrules = [{{ tenant_prefix = \"eu-\", realm = \"eu\" }}]\n\
         {}\n{}",
        backup_config(&vault.backups, &vault.key, 1_000_000),
        issuers.auth_table(&["alice", "bob"], "")
    )
}

/// A token of `issuer` naming `subject`.
fn token_as(issuers: &droid_e2e::tokens::Issuers, issuer: &str, subject: &str) -> String {
    droid_host::auth::mint::mint(
        &issuers.private_key(issuer),
        &droid_host::auth::mint::TokenRequest {
            kid: None,
            issuer: None,
            audience: vec![droid_e2e::tokens::AUDIENCE.to_owned()],
            subject: Some(subject.to_owned()),
            lifetime: Duration::from_secs(300),
        },
    )
    .unwrap()
}

async fn as_issuer(
    droid: &TestDroid,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
) -> droid_e2e::TestResponse {
    droid
        .send_with(
            method,
            path,
            body,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await
}

fn contains(bytes: &[u8], needle: &str) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

#[tokio::test]
async fn an_erasure_needs_two_admins_and_leaves_no_byte_of_the_tenant_anywhere() {
    use droid_e2e::tokens::Issuers;
    use reqwest::Method;
    let issuers = Issuers::new(&["alice", "bob", "tracker", "reader"]);
    let vault = vault();
    let mut droid = TestDroid::start(&erasure_config(&issuers, &vault, 2)).await;
    let publish = |events: Vec<Value>| {
        let token = issuers.token("tracker");
        let droid = &droid;
        async move {
            let r = as_issuer(
                droid,
                &token,
                Method::POST,
                "/v1/ingest/tracker",
                Some(&Value::from(events).to_string()),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r
        }
    };
    let batch = |tenant: &str, marker: &str| -> Vec<Value> {
        (0..50)
            .map(|k| event(tenant, k, 1, "ticket.created", marker))
            .collect()
    };
    publish(batch("acme", "DOOMEDVALUE")).await;
    publish(batch("globex", "KEEPVALUE")).await;
    publish(batch("eu-initech", "KEEPVALUE")).await;
    publish(vec![event("acme", 3, 2, "ticket.updated", "DOOMEDVALUE")]).await;
    publish(vec![event("acme", 4, 2, "ticket.deleted", "DOOMEDVALUE")]).await;
    // A dead letter and a staged snapshot event of acme's.
    let mut bad = event("acme", 9, 5, "ticket.bogus", "DOOMEDVALUE");
    bad["payload"]["note"] = json!("DOOMEDVALUE-letter");
    let r = publish(vec![bad]).await;
    assert_eq!(r.json()["rejected"], 1, "{}", r.body);
    let tracker = issuers.token("tracker");
    let opened = as_issuer(
        &droid,
        &tracker,
        Method::POST,
        "/v1/ingest/tracker/snapshots",
        Some("{}"),
    )
    .await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let snapshot = opened.json()["snapshot"]["id"].as_str().unwrap().to_owned();
    let staged = as_issuer(
        &droid,
        &issuers.token("tracker"),
        Method::POST,
        &format!("/v1/ingest/tracker/snapshots/{snapshot}"),
        Some(&json!([event("acme", 20, 1, "ticket.created", "DOOMEDVALUE-staged")]).to_string()),
    )
    .await;
    assert_eq!(staged.status, 200, "{}", staged.body);

    // A sidecar holding acme's records.
    let reader_key = issuers.private_key("reader");
    let sidecar = droid_e2e::TestSidecar::start(
        &droid.url(""),
        &format!(
            "{}[upstream]\nkey_file = {:?}\naudience = {:?}\n[record_types.ticket]\n",
            droid_e2e::sidecar::FAST_FEED,
            reader_key.display().to_string(),
            droid_e2e::tokens::AUDIENCE
        ),
    )
    .await;
    sidecar.wait_in_sync().await;
    for k in 0..5 {
        let r = sidecar
            .get(&format!("/v1/entity/ticket/T-{k}?tenant=acme"))
            .await;
        assert!(r.status == 200 || k == 4, "{}", r.body);
    }
    let backups_status = |token: String| {
        let droid = &droid;
        async move { as_issuer(droid, &token, Method::GET, "/v1/admin/backups", None).await }
    };
    eventually(Duration::from_secs(20), "the backups catch up", || async {
        let status = backups_status(issuers.token("alice")).await.json();
        status["realms"]
            .as_array()?
            .iter()
            .all(|r| r["lag_changes"] == 0)
            .then_some(())
    })
    .await;
    let before = now_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // Alice proposes; neither she nor another subject of her issuer may
    // approve; a proposal left too long expires.
    let proposal = as_issuer(
        &droid,
        &issuers.token("alice"),
        Method::POST,
        "/v1/admin/erasures",
        Some(&json!({"tenant": "acme", "reason": "GDPR request 42"}).to_string()),
    )
    .await;
    assert_eq!(proposal.status, 200, "{}", proposal.body);
    let id = proposal.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(proposal.json()["state"], "proposed");
    let approve = format!("/v1/admin/erasures/{id}/approve");
    as_issuer(
        &droid,
        &issuers.token("alice"),
        Method::POST,
        &approve,
        None,
    )
    .await
    .assert_error(403, "same_admin", "the proposer approving");
    as_issuer(
        &droid,
        &token_as(&issuers, "alice", "alice-ops"),
        Method::POST,
        &approve,
        None,
    )
    .await
    .assert_error(
        403,
        "same_admin",
        "the proposer's issuer under another subject",
    );
    as_issuer(
        &droid,
        &issuers.token("tracker"),
        Method::POST,
        &approve,
        None,
    )
    .await
    .assert_error(403, "forbidden", "a service that is no admin");
    assert_eq!(held(&droid, "acme").await.len(), 50, "nothing happened yet");

    // Bob approves: acme is erased, with the report of every place.
    let done = as_issuer(&droid, &issuers.token("bob"), Method::POST, &approve, None).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let done = done.json();
    assert_eq!(done["state"], "erased", "{done}");
    let report: BTreeMap<String, u64> = done["report"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                format!(
                    "{}: {}",
                    c["place"].as_str().unwrap(),
                    c["what"].as_str().unwrap()
                ),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        report["realm us: records and tombstones removed"], 50,
        "{report:?}"
    );
    assert_eq!(
        report["realm us: change log entries redacted"], 52,
        "{report:?}"
    );
    assert_eq!(report["realm us: dead letters removed"], 1, "{report:?}");
    assert_eq!(
        report["realm us: staged snapshot events removed"], 1,
        "{report:?}"
    );
    assert_eq!(
        report["realm eu: records and tombstones removed"], 0,
        "{report:?}"
    );
    assert_eq!(report["directory: pin removed"], 1, "{report:?}");
    assert_eq!(report["backups: data key destroyed"], 1, "{report:?}");
    assert!(held(&droid, "acme").await.is_empty());
    assert_eq!(held(&droid, "globex").await.len(), 50);

    // The sidecar dropped acme on the marker.
    for k in 0..4 {
        let path = format!("/v1/entity/ticket/T-{k}?tenant=acme");
        eventually(
            Duration::from_secs(10),
            "the sidecar lets acme go",
            || async {
                let r = sidecar.get(&path).await;
                (r.status == 404).then_some(())
            },
        )
        .await;
    }
    // Backups: acme's data cannot be read; others restore from the same files.
    let verified = as_issuer(
        &droid,
        &issuers.token("alice"),
        Method::POST,
        "/v1/admin/backups/verify",
        None,
    )
    .await
    .json();
    for v in verified["verifications"].as_array().unwrap() {
        assert_eq!(v["problems"], json!([]), "{v}");
    }
    assert!(
        verified["verifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["erased_frames"].as_u64().unwrap() > 0),
        "{verified}"
    );
    for (tenant, records) in [("acme", 0), ("globex", 50)] {
        let r = as_issuer(
            &droid,
            &issuers.token("alice"),
            Method::POST,
            "/v1/admin/restores",
            Some(&json!({"tenants": [tenant], "at": before, "dry_run": true}).to_string()),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let unchanged: u64 = r.json()["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["unchanged"].as_u64().unwrap() + c["upserts"].as_u64().unwrap())
            .sum();
        assert_eq!(unchanged, records, "{tenant} from the backups: {}", r.body);
    }
    for (path, bytes) in files_under(&vault.backups) {
        assert!(
            !contains(&bytes, "DOOMEDVALUE"),
            "{} holds plain text",
            path.display()
        );
        assert!(
            !contains(&bytes, "KEEPVALUE"),
            "{} holds plain text",
            path.display()
        );
    }

    // Another proposal expires unapproved.
    let late = as_issuer(
        &droid,
        &issuers.token("alice"),
        Method::POST,
        "/v1/admin/erasures",
        Some(&json!({"tenant": "eu-initech"}).to_string()),
    )
    .await
    .json();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let path = format!(
        "/v1/admin/erasures/{}/approve",
        late["id"].as_str().unwrap()
    );
    as_issuer(&droid, &issuers.token("bob"), Method::POST, &path, None)
        .await
        .assert_error(409, "erasure_expired", "a late approval");
    assert_eq!(held(&droid, "eu-initech").await.len(), 50);

    // The audit log has every step, with who.
    let audit = as_issuer(
        &droid,
        &issuers.token("bob"),
        Method::GET,
        "/v1/admin/audit",
        None,
    )
    .await
    .json();
    let steps: Vec<(String, String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let f = |k: &str| e["entry"][k].as_str().unwrap_or_default().to_owned();
            (f("action"), f("by"), f("outcome"))
        })
        .collect();
    let expect = |a: &str, b: &str, o: &str| (a.to_owned(), b.to_owned(), o.to_owned());
    assert_eq!(
        steps,
        [
            expect("erase_propose", "alice", "proposed"),
            expect("erase_approve", "alice", "refused"),
            expect("erase_approve", "alice (alice-ops)", "refused"),
            expect("erase_approve", "bob", "approved"),
            expect("erase", "bob", "erased"),
            expect("erase_propose", "alice", "proposed"),
            expect("erase_approve", "bob", "expired"),
        ]
    );

    // No byte of acme's values in any store file.
    sidecar.stop().await;
    let dir = droid.config_path().parent().unwrap().join(".droid");
    droid.halt().await;
    let mut keep = false;
    for (path, bytes) in files_under(&dir) {
        assert!(
            !contains(&bytes, "DOOMEDVALUE"),
            "{} holds acme's values",
            path.display()
        );
        keep |= contains(&bytes, "KEEPVALUE");
    }
    assert!(keep, "the other tenants' values are still there");
}

#[tokio::test]
async fn backups_go_to_an_s3_compatible_store_and_restore_from_it() {
    let s3 = droid_test_servers::S3Server::start("droid-backups");
    let vault = vault();
    let secret = vault.key.with_file_name("s3.secret");
    std::fs::write(&secret, "test-secret\n").unwrap();
    let droid = TestDroid::start(&format!(
        "{}\n[backup]\nurl = \"s3://{}/cluster-a\"\nendpoint = \"{}\"\nallow_http = true\naccess_key_id = \"test\"\nsecret_access_key_file = {:?}\nmaster_key_file = {:?}\nsegment_interval_ms = 100\nsnapshot_max_changes = 100\n",
        droid_e2e::droid::TICKETS,
        s3.bucket,
        s3.endpoint(),
        secret.display().to_string(),
        vault.key.display().to_string()
    ))
    .await;
    let created: Vec<Value> = (0..300)
        .map(|k| event("acme", k, 1, "ticket.created", "one"))
        .collect();
    ingest_ok(&droid, &created).await;
    backed_up(&droid).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let at = now_rfc3339();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let deleted: Vec<Value> = (0..100)
        .map(|k| event("acme", k, 2, "ticket.deleted", "two"))
        .collect();
    ingest_ok(&droid, &deleted).await;
    backed_up(&droid).await;

    let verified = droid.post("/v1/admin/backups/verify", "{}").await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    let report = &verified.json()["verifications"][0];
    assert_eq!(report["problems"], json!([]), "{report}");
    assert!(report["files"].as_u64().unwrap() >= 3, "{report}");
    let status = droid.get("/v1/admin/backups").await.json();
    assert!(
        status["target"]
            .as_str()
            .unwrap()
            .starts_with("s3://droid-backups/cluster-a"),
        "{status}"
    );
    let r = restore(&droid, json!({"tenants": ["acme"], "at": at})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let counts = &r.json()["counts"][0];
    assert_eq!(counts["upserts"], 100, "the deleted ones back: {counts}");
    assert_eq!(live(&held(&droid, "acme").await).len(), 300);
}

#[tokio::test]
async fn every_recovery_refusal_has_its_code() {
    // Without [backup]: backups are refused; restores use the change log.
    let plain = TestDroid::start(droid_e2e::droid::TICKETS).await;
    plain.get("/v1/admin/backups").await.assert_error(
        409,
        "backups_not_configured",
        "backups on a node without them",
    );
    plain
        .post("/v1/admin/backups/verify", "{}")
        .await
        .assert_error(
            409,
            "backups_not_configured",
            "a verification without backups",
        );
    ingest_ok(&plain, &[event("acme", 1, 1, "ticket.created", "one")]).await;
    let refusals = [
        (json!({"tenants": [], "at": "1"}), "no tenants"),
        (
            json!({"tenants": ["bad tenant!"], "at": "1"}),
            "a bad tenant id",
        ),
        (
            json!({"tenants": ["acme"], "at": "yesterday"}),
            "an instant that is not one",
        ),
        (
            json!({"tenants": ["acme"], "at": "2999-01-01T00:00:00Z"}),
            "an instant in the future",
        ),
        (
            json!({"tenants": ["acme"], "at": "99999"}),
            "a sequence number past the log",
        ),
        (
            json!({"tenants": ["acme"], "at": "1", "record_types": []}),
            "no record types",
        ),
        (json!({"tenant": "acme"}), "not a restore request"),
    ];
    for (body, what) in refusals {
        restore(&plain, body)
            .await
            .assert_error(400, "invalid_restore", what);
    }
    for path in ["/v1/admin/restores/rst-nope", "/v1/admin/erasures/era-nope"] {
        plain
            .get(path)
            .await
            .assert_error(404, "unknown_operation", path);
    }
    plain
        .post("/v1/admin/restores/rst-nope/undo", "")
        .await
        .assert_error(404, "unknown_operation", "undoing no restore");
    plain
        .post("/v1/admin/erasures", "{\"tenants\": \"acme\"}")
        .await
        .assert_error(400, "invalid_body", "not an erasure proposal");
    plain
        .post("/v1/admin/erasures", "{\"tenant\": \"bad tenant!\"}")
        .await
        .assert_error(400, "invalid_restore", "a bad tenant id");
    let proposed = plain
        .post("/v1/admin/erasures", "{\"tenant\": \"acme\"}")
        .await;
    assert_eq!(proposed.status, 200, "{}", proposed.body);
    plain
        .post("/v1/admin/erasures", "{\"tenant\": \"acme\"}")
        .await
        .assert_error(
            409,
            "operation_state",
            "a second proposal while one is open",
        );
    let id = proposed.json()["id"].as_str().unwrap().to_owned();
    plain
        .post(&format!("/v1/admin/erasures/{id}/approve"), "")
        .await
        .assert_error(403, "same_admin", "approving without authentication");
    // A restore that changed nothing still leaves restore points to undo.
    let noop = restore(&plain, json!({"tenants": ["globex"], "at": "1"})).await;
    assert_eq!(noop.status, 200, "{}", noop.body);
    let undo = format!(
        "/v1/admin/restores/{}/undo",
        noop.json()["id"].as_str().unwrap()
    );
    assert_eq!(
        plain.post(&undo, "").await.status,
        200,
        "its restore points undo it"
    );

    // A trimmed change log and no backups: out of range.
    let trimmed = TestDroid::start(&format!(
        "{}\n[store]\nchange_log_retention = 1\n",
        droid_e2e::droid::TICKETS
    ))
    .await;
    let events: Vec<Value> = (0..5)
        .map(|k| event("acme", k, 1, "ticket.created", "one"))
        .collect();
    ingest_ok(&trimmed, &events).await;
    let store = trimmed.app().service.realms.home_store().records.clone();
    eventually(Duration::from_secs(30), "the change log trimmed", || {
        let store = store.clone();
        async move { (store.first_seq().unwrap() > 1).then_some(()) }
    })
    .await;
    restore(&trimmed, json!({"tenants": ["acme"], "at": "3"}))
        .await
        .assert_error(422, "restore_out_of_range", "a trimmed log without backups");

    // A master key file that is missing, or not a key: droid does not start,
    // naming the file and why.
    let vault = vault();
    let missing = vault.key.with_file_name("nowhere.key");
    let config = |key: &Path| {
        format!(
            "{}\n[backup]\npath = {:?}\nmaster_key_file = {:?}\n",
            droid_e2e::droid::TICKETS,
            vault.backups.display().to_string(),
            key.display().to_string()
        )
    };
    let e = TestDroid::try_start(&config(&missing)).await.unwrap_err();
    assert!(e.contains("nowhere.key"), "{e}");
    std::fs::write(&vault.key, "not hex").unwrap();
    let e = TestDroid::try_start(&config(&vault.key)).await.unwrap_err();
    assert!(
        e.contains("master.key") && e.contains("expected 64 hex digits"),
        "{e}"
    );
}
