//! The `droid` binary, run as an operator or provider would run it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use droid_test_artifacts as plugins;

use crate::support::{
    Serving, config_dir, droid, http, run_against, text, ticket_config_dir, ticket_config_dir_with,
    ticket_event,
};

const SITE: &str = "[record_types.site]\nmode = \"read-through\"\nadapter = \"http_json_adapter.wasm\"\nbase_url = \"http://127.0.0.1:9/sites\"\n";

#[test]
fn check_config_accepts_a_good_config_and_loads_its_plugins() {
    let (_dir, path) = config_dir(SITE);
    let out = droid(&["check-config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ok (1 record type(s), every plugin loads)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn check_config_names_the_file_and_field_of_a_problem() {
    let (_dir, path) = config_dir(
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"http_json_adapter.wasm\"\nbase_url = \"gopher://x\"\n",
    );
    let out = droid(&["check-config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: {}: record_types.site.base_url: expected an absolute http or https URL",
            path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn check_config_reports_a_plugin_that_would_not_load() {
    let (_dir, path) = config_dir(&SITE.replace("http_json_adapter.wasm", "wrong_world.wasm"));
    let out = droid(&["check-config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("wrong_world.wasm: not a droid plugin"),
        "{stderr}"
    );
}

#[test]
fn inspect_shows_world_version_exports_imports_and_acceptance() {
    let out = droid(&["plugin", "inspect", plugins::HTTP_JSON_ADAPTER]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let version = &*droid_host::runtime::PACKAGE_VERSION;
    for needle in [
        "world:    droid:plugin/adapter".to_owned(),
        format!("package:  droid:plugin@{version}"),
        "accepted: yes".to_owned(),
        format!("droid:plugin/read-through@{version}"),
        "fetch(record-type: string, key: string, tenant: string) -> result<".to_owned(),
        format!("droid:plugin/outbound-http@{version}"),
        "sha256:   ".to_owned(),
        "size:     ".to_owned(),
    ] {
        assert!(stdout.contains(&needle), "missing {needle:?} in:\n{stdout}");
    }
}

#[test]
fn inspect_says_why_another_major_version_is_refused() {
    let out = droid(&["plugin", "inspect", plugins::WRONG_VERSION]);
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("accepted: no: "), "{stdout}");
    let accepted = &*droid_host::runtime::ACCEPTED;
    assert!(
        stdout.contains(&format!(
            "built against droid:plugin@1.0.0, but this host accepts droid:plugin@{accepted}"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("droid:plugin/read-through@1.0.0"),
        "{stdout}"
    );
}

#[test]
fn inspect_says_why_another_world_is_refused() {
    let out = droid(&["plugin", "inspect", plugins::WRONG_WORLD]);
    assert!(!out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("world:    (not a droid plugin world)"),
        "{stdout}"
    );
    assert!(stdout.contains("acme:widgets/greeter@0.1.0"), "{stdout}");
    assert!(stdout.contains("greet(name: string) -> string"), "{stdout}");
}

#[test]
fn transform_runs_events_through_a_transformer() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        concat!(
            r#"{"id":"e1","source":"tracker","kind":"ticket.deleted","tenant":"acme","occurred_at":1,"payload":{"ticket":{"key":"OPS-9","summary":"s","status":"open","priority":"low","updated_at":"t","version":2},"project":{"key":"OPS","name":"Ops"},"assignee":null,"reporter":{"account_id":"u","display_name":"U"}}}"#,
            "\n",
            r#"{"id":"e2","source":"tracker","kind":"ticket.updated","tenant":"acme","occurred_at":1,"payload":"not json"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = droid(&[
        "plugin",
        "transform",
        plugins::TICKET_TRANSFORMER,
        "--events",
        events.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["ops"][0]["op"], "delete");
    assert_eq!(lines[0]["ops"][0]["key"], "OPS-9");
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid input: event e2"),
        "{}",
        lines[1]
    );
}

/// The real binary starts, answers, and shuts down gracefully on SIGTERM.
#[test]
fn serve_answers_and_stops_on_sigterm() {
    let (_dir, path) = config_dir(SITE);
    let serving = Serving::start(&path);
    let mut stream = TcpStream::connect(&serving.address).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let exit = serving.stop();
    assert!(exit.success(), "droid exited with {exit}");
}

/// `droid sidecar` follows a real droid process, serves its records, and
/// stops on SIGTERM.
#[test]
fn a_sidecar_process_serves_what_droid_holds_and_stops_on_sigterm() {
    let (dir, path) = ticket_config_dir();
    let droid = Serving::start(&path);
    let posted = http(
        &droid.address,
        "POST",
        "/v1/ingest/tracker",
        &format!("[{}]", ticket_event(1)),
    );
    assert_eq!(posted.map(|(status, _)| status), Some(200));
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n[feed]\nheartbeat_ms = 100\nsync_timeout_ms = 1000\n[record_types.ticket]\n",
    )
    .unwrap();
    let sidecar = Serving::sidecar(&config, &format!("http://{}", droid.address));
    let read = |path: &str| http(&sidecar.address, "GET", path, "").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while read("/healthz").0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "never in sync: {}",
            read("/healthz").1
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = read("/v1/entity/ticket/OPS-1?tenant=acme");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("OPS-1"), "{body}");
    let exit = sidecar.stop();
    assert!(exit.success(), "the sidecar exited with {exit}");
}

/// A sidecar's configuration problems name the file and the field.
#[test]
fn sidecar_config_problems_name_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sidecar.toml");
    std::fs::write(
        &path,
        "[upstream]\nurl = \"nowhere\"\n[record_types.ticket]\nttl = 1\n",
    )
    .unwrap();
    let out = droid(&["sidecar", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: line 4: record_types.ticket.ttl: unknown field `ttl`",
            path.display()
        )),
        "{stderr}"
    );
    std::fs::write(
        &path,
        "[upstream]\nurl = \"nowhere\"\n[record_types.ticket]\n",
    )
    .unwrap();
    let stderr = text(&droid(&["sidecar", "--config", path.to_str().unwrap()]).stderr);
    assert!(
        stderr.contains("upstream.url: \"nowhere\" is not an http:// or https:// URL"),
        "{stderr}"
    );
    let out = droid(&[
        "sidecar",
        "--config",
        path.to_str().unwrap(),
        "--upstream",
        "http://127.0.0.1:9",
        "--key",
        "/nonexistent/shop.key",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("upstream.key_file /nonexistent/shop.key")
            && stderr.contains("No such file"),
        "{stderr}"
    );
}

/// `droid plugins list|rollout|promote|rollback` drive a running droid.
#[test]
fn plugin_commands_drive_a_running_droid() {
    let (dir, path) = config_dir(
        "[record_types.echo]\nmode = \"read-through\"\nadapter = \"echo.wasm\"\nbase_url = \"http://127.0.0.1:9/\"\n",
    );
    let plugin_dir = dir.path().join("plugins");
    std::fs::copy(plugins::VERSION_ECHO_V1, plugin_dir.join("echo.wasm")).unwrap();
    std::fs::copy(plugins::VERSION_ECHO_V2, plugin_dir.join("echo@2.0.0.wasm")).unwrap();
    let serving = Serving::start(&path);
    let server = format!("http://{}", serving.address);
    let run = |args: &[&str]| run_against(&server, args);

    let list = run(&["plugins", "list"]);
    assert!(list.contains("echo (adapter)"), "{list}");
    let current = list.lines().find(|l| l.contains("current")).unwrap();
    assert!(current.trim_start().starts_with("2.0.0+"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.trim_start().starts_with("1.0.0+") && l.contains("standby")),
        "{list}"
    );

    let out = run(&["plugins", "rollout", "echo", "1.0.0", "--share", "5%"]);
    assert!(out.contains("now serves 5% of tenants"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&run(&["plugins", "list", "--json"])).unwrap();
    assert_eq!(json["plugins"][0]["versions"][1]["state"], "candidate");
    assert_eq!(json["plugins"][0]["versions"][1]["share"], "5%");
    let out = run(&["plugins", "rollback", "echo", "--reason", "not today"]);
    assert!(out.contains("rolled back"), "{out}");
    let list = run(&["plugins", "list"]);
    assert!(list.contains("not today"), "{list}");

    // Errors from the server come back as the command's error.
    let out = droid(&["plugins", "promote", "nope", "--server", &server]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown_plugin"),
        "{}",
        text(&out.stderr)
    );
    assert!(serving.stop().success());
}

/// `droid plugins keygen` and `sign` make a signature `droid serve` trusts.
#[test]
fn a_signed_plugin_is_trusted_and_an_unsigned_one_refused() {
    let keys = tempfile::tempdir().unwrap();
    let prefix = keys.path().join("provider");
    let out = droid(&["plugins", "keygen", prefix.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let trust = format!(
        "[plugins]\nrequire_trust = true\ntrusted_keys = [{:?}]\n\n{SITE}",
        keys.path().join("provider.pub").display().to_string()
    );
    let (dir, path) = config_dir(&trust);
    let out = droid(&["check-config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("http_json_adapter.wasm: untrusted: its sha256"),
        "{}",
        text(&out.stderr)
    );
    let wasm = dir.path().join("plugins/http_json_adapter.wasm");
    let out = droid(&[
        "plugins",
        "sign",
        "--key",
        keys.path().join("provider.key").to_str().unwrap(),
        wasm.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = droid(&["check-config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// droid killed with SIGKILL again and again in the middle of an ingestion:
/// every acknowledged event is in the store afterwards, the change log has no
/// gaps, and the store opens cleanly every time.
#[test]
fn acknowledged_events_survive_repeated_sigkills() {
    let (dir, path) = ticket_config_dir();
    const BATCH: u64 = 50;
    let mut acknowledged: Vec<u64> = Vec::new();
    let mut next = 0u64;
    for round in 0..6u64 {
        let mut serving = Serving::start(&path);
        let address = serving.address.clone();
        // Kill it at a different moment each round, while batches are in flight.
        let killer = {
            let pid = serving.child.id();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(150 + 70 * round));
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            })
        };
        loop {
            let events: Vec<String> = (next..next + BATCH).map(ticket_event).collect();
            let body = format!("[{}]", events.join(","));
            match http(&address, "POST", "/v1/ingest/tracker", &body) {
                Some((200, answer)) => {
                    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
                    assert_eq!(
                        answer["applied"].as_u64().unwrap() + answer["duplicate"].as_u64().unwrap(),
                        BATCH,
                        "{answer}"
                    );
                    acknowledged.extend(next..next + BATCH);
                    next += BATCH;
                }
                // Killed mid-request: not acknowledged, so it is sent again
                // after the restart (the ids make that safe).
                _ => break,
            }
        }
        killer.join().unwrap();
        let _ = serving.child.wait();
    }
    assert!(
        acknowledged.len() >= 200,
        "ingested {} events",
        acknowledged.len()
    );

    // After the last kill, a clean start answers for every acknowledged event.
    let serving = Serving::start(&path);
    for n in acknowledged.iter().step_by(7) {
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

    // The log: consecutive from 1, one change per distinct event, nothing lost.
    use droid_host::store::{Embedded, Records};
    let store = Embedded::open(&dir.path().join(".droid/store.redb")).unwrap();
    let changes = store.changes(0, usize::MAX).unwrap();
    let seqs: Vec<u64> = changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gaps");
    assert_eq!(store.last_seq().unwrap(), seqs.len() as u64);
    let keys: std::collections::BTreeSet<&str> = changes.iter().map(|c| c.key.as_str()).collect();
    for n in &acknowledged {
        assert!(
            keys.contains(format!("OPS-{n}").as_str()),
            "OPS-{n} acknowledged but missing"
        );
    }
    assert_eq!(keys.len(), changes.len(), "no event applied twice");
}

/// `droid dead-letters list|replay` and `droid sources` against a running droid.
#[test]
fn dead_letter_and_source_commands_drive_a_running_droid() {
    let (_dir, path) = ticket_config_dir();
    let serving = Serving::start(&path);
    let poison = r#"[{"id":"p1","kind":"ticket.created","tenant":"acme","occurred_at":1,"payload":{"nonsense":true}}]"#;
    let (status, body) = http(&serving.address, "POST", "/v1/ingest/tracker", poison).unwrap();
    assert_eq!(status, 200, "{body}");
    let server = format!("http://{}", serving.address);
    let run = |args: &[&str]| run_against(&server, args);
    let list = run(&["dead-letters", "list", "--source", "tracker"]);
    assert!(
        list.contains("tracker/p1 (tenant acme, 1 attempt(s)"),
        "{list}"
    );
    assert!(list.contains("missing field `ticket`"), "{list}");
    let sources = run(&["sources"]);
    assert!(
        sources.contains("tracker") && sources.contains("warning"),
        "{sources}"
    );
    let replay = run(&["dead-letters", "replay", "tracker", "--id", "p1"]);
    assert!(replay.contains("0 replayed, 1 still failing"), "{replay}");
    assert!(serving.stop().success());
}

/// `droid tenants pin|show|list` and `droid tenants migrate ...` against a
/// running droid with two realms.
#[test]
fn tenant_commands_pin_and_migrate_a_tenant() {
    let (_dir, path) = ticket_config_dir_with(
        "\n[realms.us]\npublic_url = \"https://us.droid.example\"\n[realms.eu]\n[tenancy]\ndefault_realm = \"us\"\nrefresh_ms = 50\n",
    );
    let serving = Serving::start(&path);
    let server = format!("http://{}", serving.address);
    let run = |args: &[&str]| run_against(&server, args);
    let pinned = run(&["tenants", "pin", "acme", "--realm", "us"]);
    assert!(pinned.contains("acme is in realm us (pinned"), "{pinned}");
    let (status, body) = http(
        &serving.address,
        "POST",
        "/v1/ingest/tracker",
        &format!("[{}]", ticket_event(1)),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let list = run(&["tenants", "list"]);
    assert!(
        list.contains("realm us") && list.contains("https://us.droid.example/"),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("acme") && l.ends_with("us")),
        "{list}"
    );

    let scheduled = run(&["tenants", "migrate", "schedule", "acme", "--to", "eu"]);
    assert!(scheduled.contains("acme us -> eu Scheduled"), "{scheduled}");
    let id = scheduled.split_whitespace().next().unwrap().to_owned();
    let started = run(&["tenants", "migrate", "start", &id]);
    assert!(started.contains("Copying"), "{started}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !run(&["tenants", "migrate", "status", &id]).contains("Ready-to-commit") {
        assert!(std::time::Instant::now() < deadline, "not ready to commit");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    run(&["tenants", "migrate", "commit", &id]);
    while !run(&["tenants", "migrate", "status", &id]).contains("Committed") {
        assert!(std::time::Instant::now() < deadline, "not committed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let shown = run(&["tenants", "show", "acme"]);
    assert!(
        shown.contains("acme is in realm eu (pinned, served here)"),
        "{shown}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&run(&["tenants", "migrate", "list", "--json"])).unwrap();
    assert_eq!(json["migrations"][0]["status"], "Committed");
    assert_eq!(json["migrations"][0]["records"], 1);

    // Refusals come back as the command's error, with their code.
    let out = droid(&[
        "tenants", "migrate", "schedule", "acme", "--to", "mars", "--server", &server,
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown_realm"),
        "{}",
        text(&out.stderr)
    );
    assert!(serving.stop().success());
}

/// `droid backups keygen` writes a master key droid reads, readable by its
/// owner only, and never overwrites one.
#[test]
fn backups_keygen_writes_a_master_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.key");
    let out = droid(&["backups", "keygen", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(droid_host::backup::MasterKey::load(&file).is_ok());
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let before = std::fs::read(&file).unwrap();
    let again = droid(&["backups", "keygen", file.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains(&format!("cannot create {}", file.display())),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(std::fs::read(&file).unwrap(), before, "the key stays");
}
