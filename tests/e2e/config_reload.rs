//! The configuration file edited while droid serves: record types added,
//! changed and removed live; an invalid edit refused with the reason while the
//! running configuration keeps serving.

use std::time::Duration;

use droid_e2e::{Landing, TestDroid, eventually, land, plugins};
use serde_json::Value;

use crate::reload::{ECHO, bytes, serving};

const TWO: &str = r#"
[record_types.two]
mode = "read-through"
adapter = "echo.wasm"
base_url = "http://127.0.0.1:9/"
"#;

async fn config_status(droid: &TestDroid) -> Value {
    let r = droid.get("/v1/admin/config").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[tokio::test]
async fn record_types_are_added_and_removed_live_and_an_invalid_edit_is_refused() {
    let droid = TestDroid::start_with_plugin_settings(
        "",
        ECHO,
        &[("echo.wasm", &bytes(plugins::VERSION_ECHO_V1))],
    )
    .await;
    let path = droid.config_path();
    let original = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        droid.get("/v1/entity/two/k").await.error_code(),
        "unknown_record_type"
    );

    land(
        &path,
        format!("{original}{TWO}").as_bytes(),
        Landing::Atomic,
    );
    eventually(
        Duration::from_secs(20),
        "record type two to answer",
        || async { (droid.get("/v1/entity/two/k").await.status == 200).then_some(()) },
    )
    .await;
    let status = config_status(&droid).await;
    assert_eq!(status["status"]["reloads"], 1);
    assert_eq!(status["record_types"], serde_json::json!(["echo", "two"]));

    // An unknown field: refused, with the file, the field and the line.
    let invalid = format!("{original}{TWO}max_in_flihgt = 3\n");
    land(&path, invalid.as_bytes(), Landing::InPlace);
    let reason = eventually(Duration::from_secs(20), "the refusal", || async {
        let status = config_status(&droid).await;
        status["status"]["last_error"]["reason"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    assert!(reason.contains("droid.toml"), "{reason}");
    assert!(reason.contains("max_in_flihgt"), "{reason}");
    assert_eq!(
        droid.get("/v1/entity/two/k2").await.status,
        200,
        "still serving"
    );

    // A plugin that does not exist: refused too, naming the file.
    let missing = format!("{original}{}", TWO.replace("echo.wasm", "absent.wasm"));
    land(&path, missing.as_bytes(), Landing::Atomic);
    eventually(Duration::from_secs(20), "the plugin refusal", || async {
        let status = config_status(&droid).await;
        let reason = status["status"]["last_error"]["reason"]
            .as_str()?
            .to_owned();
        reason.contains("absent.wasm").then_some(())
    })
    .await;
    assert_eq!(droid.get("/v1/entity/two/k3").await.status, 200);
    let refused = droid
        .metric("droid_config_reloads_total{result=\"refused\"}")
        .await
        .unwrap_or_default();
    assert!(refused >= 2.0, "refusals counted: {refused}");

    // Back to the original: `two` goes away, `echo` never stopped.
    land(&path, original.as_bytes(), Landing::Atomic);
    eventually(Duration::from_secs(20), "record type two to go", || async {
        (droid.get("/v1/entity/two/k").await.error_code() == "unknown_record_type").then_some(())
    })
    .await;
    assert_eq!(serving(&droid, "k", "t").await, "1.0.0");
    assert!(config_status(&droid).await["status"]["last_error"].is_null());
}

#[tokio::test]
async fn an_unchanged_record_type_keeps_its_cache_across_a_reload() {
    let droid = TestDroid::start_with_plugin_settings(
        "",
        ECHO,
        &[("echo.wasm", &bytes(plugins::VERSION_ECHO_V1))],
    )
    .await;
    assert_eq!(droid.get("/v1/entity/echo/k").await.cache(), "miss");
    let path = droid.config_path();
    let original = std::fs::read_to_string(&path).unwrap();
    land(
        &path,
        format!("{original}{TWO}").as_bytes(),
        Landing::Atomic,
    );
    eventually(Duration::from_secs(20), "the reload", || async {
        (droid.get("/v1/entity/two/k").await.status == 200).then_some(())
    })
    .await;
    assert_eq!(droid.get("/v1/entity/echo/k").await.cache(), "hit");
}

#[tokio::test]
async fn a_reload_can_be_asked_for_when_watching_is_off() {
    let droid = TestDroid::start_with_plugin_settings(
        "watch = false\n",
        ECHO,
        &[("echo.wasm", &bytes(plugins::VERSION_ECHO_V1))],
    )
    .await;
    land(
        &droid.plugin_dir().join("echo.wasm"),
        &bytes(plugins::VERSION_ECHO_V2),
        Landing::Atomic,
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        serving(&droid, "a", "t").await,
        "1.0.0",
        "nobody is watching"
    );
    let r = droid.post("/v1/admin/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(serving(&droid, "b", "t").await, "2.0.0");
}
