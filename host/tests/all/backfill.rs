//! `droid backfill`: the real binary paging through a provider's bootstrap
//! endpoint (served here over loopback) into a running `droid serve`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use droid_host::store::{Embedded, Records};

use crate::support::{Serving, droid, http, text, ticket_change, ticket_config_dir_with};

/// A provider's bootstrap endpoint: a fixed history of ticket events, paged by
/// offset cursors, slowed by `page_delay`, failing every fifth request with a
/// `503` so retries are exercised, and noting the cursor of every request.
struct Bootstrap {
    address: String,
    cursors: Arc<Mutex<Vec<Option<String>>>>,
    _runtime: tokio::runtime::Runtime,
}

#[derive(Debug)]
struct History {
    events: Vec<serde_json::Value>,
    page_delay: Duration,
    cursors: Arc<Mutex<Vec<Option<String>>>>,
}

#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    cursor: Option<String>,
    limit: usize,
}

/// `count` events: mostly creations, with updates and deletions of earlier
/// tickets mixed in, so the order of application matters.
fn history(count: u64) -> Vec<serde_json::Value> {
    (0..count)
        .map(|i| {
            let event = match (i % 10, i % 25) {
                (_, 24) => ticket_change(&format!("bf-{i}"), i - 20, "ticket.deleted", 3),
                (9, _) => ticket_change(&format!("bf-{i}"), i - 5, "ticket.updated", 2),
                _ => ticket_change(&format!("bf-{i}"), i, "ticket.created", 1),
            };
            serde_json::from_str(&event).unwrap()
        })
        .collect()
}

async fn page(
    State(history): State<Arc<History>>,
    Query(query): Query<PageQuery>,
) -> Result<Json<serde_json::Value>, StatusCode> {
    let requests = {
        let mut cursors = history.cursors.lock().unwrap();
        cursors.push(query.cursor.clone());
        cursors.len()
    };
    if requests % 5 == 3 {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    tokio::time::sleep(history.page_delay).await;
    let start: usize = match &query.cursor {
        Some(c) => c.strip_prefix("at-").unwrap().parse().unwrap(),
        None => 0,
    };
    let end = (start + query.limit).min(history.events.len());
    Ok(Json(serde_json::json!({
        "events": history.events[start..end],
        "next_cursor": (end < history.events.len()).then(|| format!("at-{end}")),
        "total": history.events.len(),
    })))
}

impl Bootstrap {
    fn start(events: Vec<serde_json::Value>, page_delay: Duration) -> Self {
        let cursors = Arc::new(Mutex::new(Vec::new()));
        let history = Arc::new(History {
            events,
            page_delay,
            cursors: cursors.clone(),
        });
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let app = axum::Router::new()
            .route("/bootstrap", axum::routing::get(page))
            .with_state(history);
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self {
            address,
            cursors,
            _runtime: runtime,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/bootstrap", self.address)
    }

    /// The cursors asked for, in order, forgetting them.
    fn take_cursors(&self) -> Vec<Option<String>> {
        std::mem::take(&mut self.cursors.lock().unwrap())
    }
}

/// A ticket droid whose source `tracker` bootstraps from `url`, plus settings.
fn ticket_droid(url: &str, settings: &str) -> (tempfile::TempDir, std::path::PathBuf, Serving) {
    let (dir, path) = ticket_config_dir_with(&format!("bootstrap_url = \"{url}\"\n{settings}"));
    let serving = Serving::start(&path);
    (dir, path, serving)
}

fn backfill_args<'a>(config: &'a Path, server: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "backfill",
        "ticket",
        "--config",
        config.to_str().unwrap(),
        "--server",
        server,
    ];
    args.extend(more);
    args
}

/// The change log of a stopped droid's store, without commit times.
fn change_log(dir: &Path) -> Vec<(u64, String, String, u64, String, String)> {
    let store = Embedded::open(&dir.join(".droid/store.redb")).unwrap();
    store
        .changes(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|c| {
            let kind = match c.kind {
                droid_host::store::ChangeKind::Upsert { body } => body,
                droid_host::store::ChangeKind::Delete => "deleted".to_owned(),
                droid_host::store::ChangeKind::Invalidate => "invalidated".to_owned(),
                droid_host::store::ChangeKind::Erase => "erased".to_owned(),
            };
            (c.seq, c.tenant, c.key, c.version, kind, c.event_id)
        })
        .collect()
}

/// A backfill killed (SIGKILL) half-way resumes from its saved cursor, not from
/// the start, and leaves exactly the store an uninterrupted run leaves.
#[test]
fn a_killed_backfill_resumes_from_its_cursor_and_ends_like_an_uninterrupted_one() {
    const EVENTS: u64 = 400;
    let bootstrap = Bootstrap::start(history(EVENTS), Duration::from_millis(40));

    // The reference: one uninterrupted run.
    let (whole_dir, whole_config, whole) = ticket_droid(&bootstrap.url(), "");
    let server = format!("http://{}", whole.address);
    let out = droid(&backfill_args(
        &whole_config,
        &server,
        &["--page-size", "20"],
    ));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(
        summary.contains("complete: 400 events in 20 pages (400 applied, 0 duplicate"),
        "{summary}"
    );
    let first_run = bootstrap.take_cursors();
    assert_eq!(first_run[0], None);
    assert!(first_run.contains(&Some("at-380".to_owned())));

    // The same backfill into another droid, killed half-way.
    let (dir, config, serving) = ticket_droid(&bootstrap.url(), "");
    let server = format!("http://{}", serving.address);
    let state_file = dir.path().join(".droid/backfill/tracker.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_droid"))
        .args(backfill_args(&config, &server, &["--page-size", "20"]))
        .env("DROID_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let saved = loop {
        let state: Option<serde_json::Value> = std::fs::read_to_string(&state_file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if let Some(state) = state
            && state["pages"].as_u64().unwrap() >= 6
        {
            break state;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no progress saved"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(saved["complete"], false);
    // What the file says after the kill (a page may have landed meanwhile).
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    let cursor = saved["cursor"].as_str().unwrap().to_owned();
    bootstrap.take_cursors();

    let out = droid(&backfill_args(&config, &server, &["--page-size", "20"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("resuming after {} events", saved["events"])),
        "{}",
        text(&out.stderr)
    );
    let resumed = bootstrap.take_cursors();
    assert_eq!(resumed[0], Some(cursor.clone()), "resumed from the cursor");
    assert!(
        !resumed.contains(&None),
        "never went back to the first page"
    );
    assert!(
        text(&out.stdout).contains("complete: 400 events in 20 pages"),
        "{}",
        text(&out.stdout)
    );

    // A finished backfill says so rather than running again.
    let out = droid(&backfill_args(&config, &server, &[]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("already complete"));
    assert!(bootstrap.take_cursors().is_empty());

    // Both stores: the same records, through the API and in the change log.
    for n in [0, 4, 17, 199, 380, 399] {
        let path = format!("/v1/entity/ticket/OPS-{n}?tenant=acme");
        let a = http(&whole.address, "GET", &path, "").unwrap();
        let b = http(&serving.address, "GET", &path, "").unwrap();
        assert_eq!(a, b, "OPS-{n}");
    }
    assert!(whole.stop().success());
    assert!(serving.stop().success());
    let log = change_log(whole_dir.path());
    assert_eq!(log.len(), 400, "every applied change logged once");
    assert_eq!(log, change_log(dir.path()), "the same store");
}

/// Runs a backfill of 120 events at `--rate RATE` into a droid whose source
/// has `settings`; returns how long it took and what it printed.
fn timed_backfill(bootstrap: &Bootstrap, settings: &str, rate: &str) -> (Duration, String) {
    let (_dir, config, serving) = ticket_droid(&bootstrap.url(), settings);
    let server = format!("http://{}", serving.address);
    let started = Instant::now();
    let out = droid(&backfill_args(
        &config,
        &server,
        &["--page-size", "100", "--rate", rate],
    ));
    let elapsed = started.elapsed();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(serving.stop().success());
    (elapsed, text(&out.stdout))
}

/// The client-side rate paces the posts; a source limit stricter than the
/// chunks (a small burst) splits them and waits out droid's `429`s.
#[test]
fn a_backfill_keeps_to_its_rate_and_to_the_sources_limit() {
    let bootstrap = Bootstrap::start(history(120), Duration::ZERO);
    let (elapsed, stdout) = timed_backfill(&bootstrap, "", "40");
    // 120 events at 40/s in chunks of 40: the first at once, two more a second apart.
    assert!(elapsed >= Duration::from_millis(1_900), "{elapsed:?}");
    assert!(
        stdout.contains("complete: 120 events in 2 pages"),
        "{stdout}"
    );

    let (elapsed, stdout) = timed_backfill(&bootstrap, "rate_limit = 40\nburst = 20\n", "1000");
    assert!(
        stdout.contains("complete: 120 events in 2 pages (120 applied"),
        "{stdout}"
    );
    // Past the burst of 20, the other 100 need 2.5 s at 40/s.
    assert!(elapsed >= Duration::from_millis(2_400), "{elapsed:?}");
}

/// Mistakes are named before anything is sent.
#[test]
fn backfill_names_what_is_missing() {
    let (_dir, config) = ticket_config_dir_with("");
    let path = config.to_str().unwrap();
    // Runs `droid backfill` with `args`, which must fail; returns its stderr.
    let fails = |args: &[&str]| {
        let mut all = vec!["backfill"];
        all.extend(args);
        all.extend(["--config", path]);
        let out = droid(&all);
        assert!(!out.status.success(), "{args:?} succeeded");
        text(&out.stderr)
    };
    let stderr = fails(&["ticket", "--server", "http://127.0.0.1:9"]);
    assert!(
        stderr.contains("sources.tracker.bootstrap_url is not set (or pass --from URL)"),
        "{stderr}"
    );
    let stderr = fails(&["site"]);
    assert!(
        stderr.contains("no record type named \"site\" is declared"),
        "{stderr}"
    );
    // The endpoint is down: the cursor stays where it was and the error says how to go on.
    let stderr = fails(&[
        "ticket",
        "--server",
        "http://127.0.0.1:9",
        "--from",
        "http://127.0.0.1:9/bootstrap",
        "--attempts",
        "2",
    ]);
    assert!(
        stderr.contains("backfill stopped after 0 events in 0 pages")
            && stderr.contains("gave up after 2 tries"),
        "{stderr}"
    );
}
