//! Recovery across crashes (SIGKILL of the `droid` process): backups taken
//! through repeated kills restore every acknowledged event onto a new
//! disk; a restore and an erasure killed half-way are carried through by
//! the restarted droid, their tenants' writes held off until then.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::support::{
    Serving, http, http_as, run_against, ticket_change, ticket_config_dir, ticket_event,
};

/// Appends `toml` to the configuration at `path`.
fn append(path: &Path, toml: &str) {
    let mut text = std::fs::read_to_string(path).unwrap();
    text.push_str(toml);
    std::fs::write(path, text).unwrap();
}

/// Backups of the folder `dir` into `dir/vault` (a disk apart, in spirit),
/// segments every 50 ms, a new chain every `chain` changes.
fn with_backups(dir: &Path, config: &Path, chain: u64) -> PathBuf {
    let vault = dir.join("vault");
    std::fs::create_dir_all(&vault).unwrap();
    let key = vault.join("master.key");
    if !key.exists() {
        std::fs::write(&key, droid_host::backup::MasterKey::generate()).unwrap();
    }
    append(
        config,
        &format!(
            "\n[backup]\npath = {:?}\nmaster_key_file = {:?}\nsegment_interval_ms = 50\nsnapshot_max_changes = {chain}\n",
            vault.join("backups").display().to_string(),
            key.display().to_string()
        ),
    );
    vault.join("backups")
}

/// Waits for `check` to hold, for at most `limit`.
fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_default()
}

fn backed_up(address: &str) {
    wait_for(Duration::from_secs(30), "the backups catch up", || {
        let (status, body) = http(address, "GET", "/v1/admin/backups", "")?;
        let status_ok = status == 200;
        let realms = json(&body)["realms"].as_array()?.clone();
        (status_ok && !realms.is_empty() && realms.iter().all(|r| r["lag_changes"] == 0))
            .then_some(())
    });
}

/// A write of acme's after the restart: refused with `code` while the
/// operation the kill interrupted is not over.
fn refused_while_held(address: &str, token: Option<&str>, code: &str) {
    let late = format!("[{}]", ticket_change("late", 1, "ticket.updated", 9));
    let (status, body) = http_as(address, "POST", "/v1/ingest/tracker", &late, token).unwrap();
    assert_eq!(
        status, 409,
        "held off while the operation is not over: {body}"
    );
    assert!(body.contains(code), "{body}");
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[test]
fn backups_taken_through_repeated_sigkills_restore_every_acknowledged_event_onto_a_new_disk() {
    let (dir, path) = ticket_config_dir();
    with_backups(dir.path(), &path, 300);
    const BATCH: u64 = 50;
    let mut acknowledged: Vec<u64> = Vec::new();
    let mut next = 0u64;
    for round in 0..4u64 {
        let serving = Serving::start(&path);
        let address = serving.address.clone();
        let pid = serving.child.id();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200 + 90 * round));
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        });
        loop {
            let events: Vec<String> = (next..next + BATCH).map(ticket_event).collect();
            match http(
                &address,
                "POST",
                "/v1/ingest/tracker",
                &format!("[{}]", events.join(",")),
            ) {
                Some((200, _)) => {
                    acknowledged.extend(next..next + BATCH);
                    next += BATCH;
                }
                _ => break,
            }
        }
        killer.join().unwrap();
        serving.crash();
    }
    assert!(acknowledged.len() >= 200, "ingested {}", acknowledged.len());

    // Restarted, droid ships what the kills left unshipped; every file verifies.
    let serving = Serving::start(&path);
    backed_up(&serving.address);
    let (status, body) = http(&serving.address, "POST", "/v1/admin/backups/verify", "").unwrap();
    assert_eq!(status, 200, "{body}");
    let verified = json(&body);
    assert_eq!(
        verified["verifications"][0]["problems"],
        serde_json::json!([]),
        "{body}"
    );
    assert!(
        verified["verifications"][0]["chains"].as_u64().unwrap() >= 2,
        "{body}"
    );
    let before_the_loss = now_rfc3339();
    assert!(serving.stop().success());

    // The store's disk is lost: a new, empty store, and a restore from the backups.
    std::fs::remove_dir_all(dir.path().join(".droid")).unwrap();
    let serving = Serving::start(&path);
    let server = format!("http://{}", serving.address);
    let out = run_against(
        &server,
        &[
            "restore",
            "--tenants",
            "acme",
            "--at",
            &before_the_loss,
            "--json",
        ],
    );
    let restore = json(&out);
    assert_eq!(restore["state"], "restored", "{out}");
    assert_eq!(
        restore["counts"][0]["upserts"].as_u64(),
        Some(acknowledged.len() as u64),
        "every acknowledged event came back: {out}"
    );
    assert!(
        restore["sources"]["default"]
            .as_str()
            .unwrap()
            .contains("of an earlier store"),
        "{out}"
    );
    for n in acknowledged.iter().step_by(11) {
        let (status, body) = http(
            &serving.address,
            "GET",
            &format!("/v1/entity/ticket/OPS-{n}?tenant=acme"),
            "",
        )
        .unwrap();
        assert_eq!(status, 200, "OPS-{n}: {body}");
    }
    assert!(serving.stop().success());
}

#[test]
fn a_restore_killed_while_writing_is_carried_through_after_a_restart() {
    let (dir, path) = ticket_config_dir();
    with_backups(dir.path(), &path, 1_000_000);
    append(
        &path,
        "\n[tenancy]\nrestore_batch_records = 20\nrefresh_ms = 50\n",
    );
    const RECORDS: u64 = 3_000;
    let serving = Serving::start(&path);
    let address = serving.address.clone();
    let post = |events: Vec<String>| {
        for chunk in events.chunks(500) {
            let (status, body) = http(
                &address,
                "POST",
                "/v1/ingest/tracker",
                &format!("[{}]", chunk.join(",")),
            )
            .unwrap();
            assert_eq!(status, 200, "{body}");
        }
    };
    post((0..RECORDS).map(ticket_event).collect());
    backed_up(&address);
    std::thread::sleep(Duration::from_millis(20));
    let at = now_rfc3339();
    std::thread::sleep(Duration::from_millis(20));
    post(
        (0..RECORDS)
            .map(|n| ticket_change(&format!("v2-{n}"), n, "ticket.updated", 2))
            .collect(),
    );

    // The restore runs on; droid is killed while it writes.
    let asking = {
        let address = address.clone();
        let body = serde_json::json!({"tenants": ["acme"], "at": at}).to_string();
        std::thread::spawn(move || http(&address, "POST", "/v1/admin/restores", &body))
    };
    wait_for(Duration::from_secs(30), "the restore writing", || {
        let (_, body) = http(&address, "GET", "/v1/admin/restores", "")?;
        (json(&body)["restores"][0]["state"] == "writing").then_some(())
    });
    serving.crash();
    let _ = asking.join();

    let serving = Serving::start(&path);
    let address = serving.address.clone();
    // Still held off: the restore is not over.
    refused_while_held(&address, None, "tenant_restoring");
    let restore = wait_for(
        Duration::from_secs(60),
        "the restore carried through",
        || {
            let (_, body) = http(&address, "GET", "/v1/admin/restores", "")?;
            let restore = json(&body)["restores"][0].clone();
            (restore["state"] == "restored").then_some(restore)
        },
    );
    assert!(restore["attempt"].as_u64().unwrap() >= 2, "{restore}");
    // Released: the tenant writes again.
    let (status, body) = http(
        &address,
        "POST",
        "/v1/ingest/tracker",
        &format!("[{}]", ticket_change("after", 1, "ticket.updated", 9)),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(serving.stop().success());
    // Every record as at the instant (but the one written since).
    use droid_host::store::{Embedded, Records};
    let store = Embedded::open(&dir.path().join(".droid/store.redb")).unwrap();
    let records = store
        .tenant_records("ticket", "acme", None, 10_000)
        .unwrap();
    assert_eq!(records.len() as u64, RECORDS);
    for (key, record) in records {
        let wanted = if key == "OPS-1" { 9 } else { 1 };
        assert_eq!(record.version, wanted, "{key}");
    }
}

#[test]
fn an_erasure_killed_half_way_is_carried_through_after_a_restart() {
    use droid_host::auth::mint;
    let (dir, path) = ticket_config_dir();
    with_backups(dir.path(), &path, 1_000_000);
    let repository = dir.path().join("keys");
    let private = |issuer: &str| dir.path().join(format!("{issuer}.key"));
    for issuer in ["alice", "bob", "tracker"] {
        mint::keygen(&repository, issuer, Some("es"), &private(issuer)).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[sources.tracker]\nrecord_type = \"ticket\"\n",
        "[sources.tracker]\nrecord_type = \"ticket\"\npublishers = [\"tracker\"]\n",
    );
    std::fs::write(&path, text).unwrap();
    append(
        &path,
        &format!(
            "\n[auth]\naudience = \"crash\"\nkey_repositories = [{:?}]\nadmins = [\"alice\", \"bob\"]\n[tenancy]\nrefresh_ms = 250\n",
            repository.display().to_string()
        ),
    );
    let token = |issuer: &str| {
        mint::mint(
            &private(issuer),
            &mint::TokenRequest::new("crash", Duration::from_secs(300)),
        )
        .unwrap()
    };
    let serving = Serving::start_authenticated(&path);
    let address = serving.address.clone();
    let events: Vec<String> = (0..5_000).map(ticket_event).collect();
    for chunk in events.chunks(500) {
        let (status, body) = http_as(
            &address,
            "POST",
            "/v1/ingest/tracker",
            &format!("[{}]", chunk.join(",")),
            Some(&token("tracker")),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = http_as(
        &address,
        "POST",
        "/v1/admin/erasures",
        "{\"tenant\": \"acme\"}",
        Some(&token("alice")),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let id = json(&body)["id"].as_str().unwrap().to_owned();
    let approving = {
        let (address, bob) = (address.clone(), token("bob"));
        let path = format!("/v1/admin/erasures/{id}/approve");
        std::thread::spawn(move || http_as(&address, "POST", &path, "", Some(&bob)))
    };
    wait_for(Duration::from_secs(30), "the erasure under way", || {
        let (_, body) = http_as(
            &address,
            "GET",
            &format!("/v1/admin/erasures/{id}"),
            "",
            Some(&token("alice")),
        )?;
        (json(&body)["state"] == "erasing").then_some(())
    });
    serving.crash();
    let _ = approving.join();

    let serving = Serving::start_authenticated(&path);
    let address = serving.address.clone();
    refused_while_held(&address, Some(&token("tracker")), "tenant_erasing");
    let done = wait_for(
        Duration::from_secs(60),
        "the erasure carried through",
        || {
            let (_, body) = http_as(
                &address,
                "GET",
                &format!("/v1/admin/erasures/{id}"),
                "",
                Some(&token("alice")),
            )?;
            let erasure = json(&body);
            (erasure["state"] == "erased").then_some(erasure)
        },
    );
    assert!(done["attempt"].as_u64().unwrap() >= 2, "{done}");
    assert!(serving.stop().success());
    // Nothing of acme is left in the store.
    use droid_host::store::{Embedded, Records};
    let store = Embedded::open(&dir.path().join(".droid/store.redb")).unwrap();
    assert!(
        store
            .tenant_records("ticket", "acme", None, 10)
            .unwrap()
            .is_empty()
    );
    let bytes = std::fs::read(dir.path().join(".droid/store.redb")).unwrap();
    assert!(
        !bytes.windows(11).any(|w| w == b"\"summary\":\""),
        "a record body is left"
    );
}
