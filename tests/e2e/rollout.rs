//! Progressive rollout: a new version serves a share of tenants, each tenant
//! sticking to one version; promotion, manual and automatic rollback.

use std::time::Duration;

use droid_e2e::{Landing, TestDroid, eventually, land, plugins};
use futures::StreamExt;

use crate::reload::{ECHO, admin_plugins, bytes, serving, version_of};

/// Starts droid serving echo 1.0.0 with `settings`, and stages 2.0.0 (or
/// `candidate`) as `echo@VERSION.wasm`, waiting until it is loaded.
async fn with_candidate(settings: &str, candidate: &str, file: &str) -> TestDroid {
    let droid = TestDroid::start_with_plugin_settings(
        settings,
        ECHO,
        &[("echo.wasm", &bytes(plugins::VERSION_ECHO_V1))],
    )
    .await;
    land(
        &droid.plugin_dir().join(file),
        &bytes(candidate),
        Landing::Atomic,
    );
    eventually(
        Duration::from_secs(20),
        "the new version to load",
        || async {
            let list = admin_plugins(&droid).await;
            (list["plugins"][0]["versions"].as_array()?.len() == 2).then_some(())
        },
    )
    .await;
    droid
}

/// The version each of `tenants` is served, reading `key`.
async fn versions_by_tenant(droid: &TestDroid, tenants: usize, key: &str) -> Vec<String> {
    futures::stream::iter(0..tenants)
        .map(|t| async move {
            version_of(
                &droid
                    .get(&format!("/v1/entity/echo/{key}?tenant=tenant-{t}"))
                    .await,
            )
        })
        .buffered(32)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ten_percent_rollout_serves_about_a_tenth_of_tenants_each_sticking_to_its_version() {
    let droid = with_candidate(
        "initial_share = \"0%\"\n",
        plugins::VERSION_ECHO_V2,
        "echo@2.0.0.wasm",
    )
    .await;
    // Staged at 0%: nobody sees it yet.
    assert_eq!(serving(&droid, "k", "tenant-1").await, "1.0.0");

    let r = droid
        .post(
            "/v1/admin/plugins/echo/rollout",
            r#"{"version": "2.0.0", "share": "10%"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["share"], "10%");

    const TENANTS: usize = 10_000;
    let first = versions_by_tenant(&droid, TENANTS, "a").await;
    let new = first.iter().filter(|v| *v == "2.0.0").count();
    // Binomial sd is 30 here; 1.5 points either way is five of them.
    assert!(
        (850..=1150).contains(&new),
        "{new} of {TENANTS} tenants on the new version"
    );
    // Another key, read again: every tenant sees the version it saw before.
    let again = versions_by_tenant(&droid, 2_000, "b").await;
    assert_eq!(again[..], first[..2_000], "tenants stick to their version");

    let list = admin_plugins(&droid).await;
    let versions = &list["plugins"][0]["versions"];
    assert_eq!(versions[0]["state"], "current");
    assert_eq!(versions[0]["share"], "90%");
    assert_eq!(versions[1]["state"], "candidate");
    assert_eq!(versions[1]["share"], "10%");

    let r = droid.post("/v1/admin/plugins/echo/promote", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after = versions_by_tenant(&droid, 200, "c").await;
    assert!(after.iter().all(|v| v == "2.0.0"), "promoted to everyone");

    // Rolling back a promoted version returns to the one it replaced.
    let r = droid
        .post(
            "/v1/admin/plugins/echo/rollback",
            r#"{"reason": "testing"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["rollback"]["reason"], "testing");
    assert_eq!(serving(&droid, "d", "tenant-3").await, "1.0.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_trapping_on_half_its_calls_is_rolled_back_automatically_with_the_reason() {
    let droid = with_candidate(
        "initial_share = \"50%\"\nrollback_min_calls = 40\n",
        plugins::VERSION_ECHO_FLAKY,
        "echo@3.0.0.wasm",
    )
    .await;
    // Read until droid takes the bad version back; remember a key it broke.
    let mut broken = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut n = 0u64;
    let rollback = loop {
        n += 1;
        let path = format!("/v1/entity/echo/key-{n}?tenant=tenant-{}", n / 3);
        let r = droid.get(&path).await;
        if r.status != 200 && broken.is_none() {
            assert_eq!(r.error_code(), "plugin_crashed", "{}", r.body);
            broken = Some(path);
        }
        if n.is_multiple_of(10) {
            let rollback = admin_plugins(&droid).await["plugins"][0]["last_rollback"].clone();
            if !rollback.is_null() {
                break rollback;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no automatic rollback after {n} reads"
        );
    };
    assert_eq!(rollback["automatic"], true);
    assert!(rollback["version"].as_str().unwrap().starts_with("3.0.0+"));
    assert!(rollback["serving"].as_str().unwrap().starts_with("1.0.0+"));
    let reason = rollback["reason"].as_str().unwrap();
    assert!(reason.starts_with("trap rate"), "{reason}");

    let list = admin_plugins(&droid).await;
    assert_eq!(list["plugins"][0]["versions"][1]["state"], "rolled-back");
    let rollbacks = droid
        .metric("droid_plugin_rollbacks_total{plugin=\"echo\",how=\"automatic\"}")
        .await;
    assert_eq!(rollbacks, Some(1.0));
    // The error the bad version left in the cache went with it.
    let broken = broken.expect("the flaky version failed some reads before its rollback");
    let r = droid.get(&broken).await;
    assert_eq!(version_of(&r), "1.0.0", "{broken}");
    let all = versions_by_tenant(&droid, 300, "after").await;
    assert!(all.iter().all(|v| v == "1.0.0"));
}

#[tokio::test]
async fn rollout_commands_name_what_is_wrong() {
    let droid = with_candidate(
        "initial_share = \"0%\"\n",
        plugins::VERSION_ECHO_V2,
        "echo@2.0.0.wasm",
    )
    .await;
    for (path, body, status, code) in [
        ("/v1/admin/plugins/nope/promote", "", 404, "unknown_plugin"),
        (
            "/v1/admin/plugins/echo/rollout",
            r#"{"version":"9.9.9","share":"5%"}"#,
            404,
            "unknown_version",
        ),
        (
            "/v1/admin/plugins/echo/rollout",
            r#"{"version":"2.0.0","share":"150%"}"#,
            400,
            "invalid_body",
        ),
        (
            "/v1/admin/plugins/echo/rollout",
            r#"{"version":"2.0.0"}"#,
            400,
            "invalid_body",
        ),
        (
            "/v1/admin/plugins/echo/rollout",
            r#"{"version":"1.0.0","share":"5%"}"#,
            409,
            "plugin_state_conflict",
        ),
        (
            "/v1/admin/plugins/echo/rollout",
            r#"{"version":"abc","share":"5%"}"#,
            404,
            "unknown_version",
        ),
        // The staged version is promoted; then there is nothing left to promote.
        ("/v1/admin/plugins/echo/promote", "", 200, ""),
        (
            "/v1/admin/plugins/echo/promote",
            "",
            409,
            "plugin_state_conflict",
        ),
        // Rolling back the promotion works once; then nothing was replaced.
        ("/v1/admin/plugins/echo/rollback", "", 200, ""),
        (
            "/v1/admin/plugins/echo/rollback",
            "",
            409,
            "plugin_state_conflict",
        ),
        (
            "/v1/admin/plugins/echo/rollback",
            "{not json",
            400,
            "invalid_body",
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
}

#[tokio::test]
async fn rollout_decisions_survive_a_restart() {
    let mut droid = TestDroid::start_with_plugin_settings(
        "",
        ECHO,
        &[("echo.wasm", &bytes(plugins::VERSION_ECHO_V1))],
    )
    .await;
    land(
        &droid.plugin_dir().join("echo@2.0.0.wasm"),
        &bytes(plugins::VERSION_ECHO_V2),
        Landing::Atomic,
    );
    let polls = std::sync::atomic::AtomicU32::new(0);
    eventually(Duration::from_secs(20), "2.0.0 to serve", || async {
        let n = polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (serving(&droid, &format!("k{n}"), "t").await == "2.0.0").then_some(())
    })
    .await;
    let r = droid
        .post(
            "/v1/admin/plugins/echo/rollback",
            r#"{"reason": "bad numbers"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Without its saved decisions, droid would start on the newest file, 2.0.0.
    droid.restart().await;
    assert_eq!(serving(&droid, "after-restart", "t").await, "1.0.0");
    let list = admin_plugins(&droid).await;
    let plugin = &list["plugins"][0];
    assert_eq!(plugin["versions"][1]["state"], "rolled-back", "{plugin}");
    assert_eq!(plugin["last_rollback"]["reason"], "bad numbers");
}
