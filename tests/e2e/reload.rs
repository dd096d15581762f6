//! Plugin files replaced while droid serves: picked up without a restart and
//! without a failed request; bad files never replace the running version.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use droid_e2e::{Landing, TestDroid, eventually, land, plugins};
use serde_json::Value;

pub(crate) const ECHO: &str = r#"
[record_types.echo]
mode = "read-through"
adapter = "echo.wasm"
base_url = "http://127.0.0.1:9/"
# Above the tests' concurrency, so a slow machine never answers 429.
max_in_flight = 32
"#;

pub(crate) fn bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).expect("plugin artifact")
}

/// The version a response body says produced it, after checking the
/// `Droid-Plugin-Version` header names the same build.
pub(crate) fn version_of(response: &droid_e2e::TestResponse) -> String {
    assert_eq!(response.status, 200, "{}", response.body);
    let body = response.json();
    let version = body["version"]
        .as_str()
        .expect("version in body")
        .to_owned();
    let header = response
        .header("droid-plugin-version")
        .expect("droid-plugin-version header");
    assert!(
        header.starts_with(&format!("{version}+")),
        "body says {version}, header says {header}"
    );
    version
}

pub(crate) async fn admin_plugins(droid: &TestDroid) -> Value {
    let r = droid.get("/v1/admin/plugins").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

pub(crate) async fn serving(droid: &TestDroid, key: &str, tenant: &str) -> String {
    version_of(
        &droid
            .get(&format!("/v1/entity/echo/{key}?tenant={tenant}"))
            .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replacing_the_adapter_twenty_times_under_load_fails_no_request() {
    let droid = Arc::new(
        TestDroid::start_with_plugin_settings(
            "",
            ECHO,
            &[("echo.wasm", &bytes(plugins::VERSION_ECHO_V1))],
        )
        .await,
    );
    let (v1, v2) = (
        bytes(plugins::VERSION_ECHO_V1),
        bytes(plugins::VERSION_ECHO_V2),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for client in 0..6 {
        let (droid, stop, served) = (droid.clone(), stop.clone(), served.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = std::collections::BTreeSet::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // A new key every time: every request is a plugin call.
                let r = droid
                    .get(&format!("/v1/entity/echo/c{client}-{n}?tenant=t{}", n % 97))
                    .await;
                seen.insert(version_of(&r));
                served.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            seen
        }));
    }

    let landings = [Landing::Atomic, Landing::InPlace, Landing::Slow];
    let target = droid.plugin_dir().join("echo.wasm");
    for round in 0..20 {
        let (bytes, version) = if round % 2 == 0 {
            (&v2, "2.0.0")
        } else {
            (&v1, "1.0.0")
        };
        land(&target, bytes, landings[round % landings.len()]);
        eventually(
            Duration::from_secs(20),
            &format!("round {round} to serve {version}"),
            || {
                let droid = droid.clone();
                async move {
                    (serving(&droid, &format!("probe-{round}-{}", rand_suffix()), "probe").await
                        == version)
                        .then_some(())
                }
            },
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut versions = std::collections::BTreeSet::new();
    for client in clients {
        versions.extend(
            client
                .await
                .expect("client finished without a failed request"),
        );
    }
    assert!(
        served.load(Ordering::Relaxed) > 100,
        "the clients kept reading"
    );
    assert_eq!(
        versions.into_iter().collect::<Vec<_>>(),
        ["1.0.0", "2.0.0"],
        "both versions served whole responses"
    );
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The failure the admin API reports for `file`, once there is one.
async fn failure_of(droid: &TestDroid, file: &str) -> String {
    eventually(
        Duration::from_secs(20),
        &format!("a load failure for {file}"),
        || async {
            let list = admin_plugins(droid).await;
            list["load_failures"]
                .as_array()?
                .iter()
                .find(|f| f["file"] == file)
                .map(|f| f["reason"].as_str().unwrap_or_default().to_owned())
        },
    )
    .await
}

#[tokio::test]
async fn bad_files_never_replace_the_running_version_and_a_good_one_is_picked_up() {
    let droid = TestDroid::start_with_plugin_settings(
        "",
        ECHO,
        &[("echo.wasm", &bytes(plugins::VERSION_ECHO_V1))],
    )
    .await;
    let target = droid.plugin_dir().join("echo.wasm");
    let v2 = bytes(plugins::VERSION_ECHO_V2);
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "garbage",
            b"this is not wasm at all".to_vec(),
            "not a WebAssembly component",
        ),
        ("truncated", v2[..v2.len() / 3].to_vec(), "does not compile"),
        (
            "wrong world",
            bytes(plugins::WRONG_WORLD),
            "not a droid plugin",
        ),
        (
            "transformer",
            bytes(plugins::TICKET_TRANSFORMER),
            "is a transformer but plugin \"echo\" is an adapter",
        ),
        (
            "oversized memory",
            bytes(plugins::OVERSIZED_MEMORY),
            "exceeds the limit",
        ),
    ];
    for (i, (what, content, expected)) in cases.into_iter().enumerate() {
        land(&target, &content, Landing::Atomic);
        let reason = eventually(
            Duration::from_secs(20),
            &format!("the {what} file's failure"),
            || async {
                let reason = failure_of(&droid, "echo.wasm").await;
                reason.contains(expected).then_some(reason)
            },
        )
        .await;
        assert!(
            reason.contains("echo.wasm"),
            "{what}: names the file: {reason}"
        );
        assert_eq!(
            serving(&droid, &format!("after-{i}"), "t").await,
            "1.0.0",
            "{what}: the old version keeps serving"
        );
    }
    let failures = droid
        .metric("droid_plugin_load_failures_total{file=\"echo.wasm\"}")
        .await
        .unwrap_or_default();
    assert!(failures >= 5.0, "failures counted: {failures}");

    land(&target, &v2, Landing::Atomic);
    eventually(
        Duration::from_secs(20),
        "the good file to serve",
        || async {
            (serving(&droid, &format!("good-{}", rand_suffix()), "t").await == "2.0.0")
                .then_some(())
        },
    )
    .await;
    let list = admin_plugins(&droid).await;
    assert!(
        list["load_failures"].as_array().unwrap().is_empty(),
        "a good file clears its failure: {list}"
    );
}

#[tokio::test]
async fn a_removed_file_keeps_serving_while_a_record_type_uses_it() {
    let droid = TestDroid::start_with_plugin_settings(
        "",
        ECHO,
        &[("echo.wasm", &bytes(plugins::VERSION_ECHO_V1))],
    )
    .await;
    std::fs::remove_file(droid.plugin_dir().join("echo.wasm")).unwrap();
    eventually(
        Duration::from_secs(20),
        "the removal to be noticed",
        || async {
            let list = admin_plugins(&droid).await;
            let version = &list["plugins"][0]["versions"][0];
            (version["on_disk"] == false && version["state"] == "current").then_some(())
        },
    )
    .await;
    assert_eq!(serving(&droid, "still", "t").await, "1.0.0");
}

#[tokio::test]
async fn several_versions_load_side_by_side_and_the_newest_is_current() {
    let droid = TestDroid::start_with_plugin_settings(
        "watch = false\n",
        ECHO,
        &[
            ("echo.wasm", &bytes(plugins::VERSION_ECHO_V1)),
            ("echo@2.0.0.wasm", &bytes(plugins::VERSION_ECHO_V2)),
        ],
    )
    .await;
    assert_eq!(serving(&droid, "k", "t").await, "2.0.0");
    let list = admin_plugins(&droid).await;
    let versions = list["plugins"][0]["versions"].as_array().unwrap();
    let states: Vec<(&str, &str)> = versions
        .iter()
        .map(|v| (v["version"].as_str().unwrap(), v["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("2.0.0", "current"), ("1.0.0", "standby")]);
    // The embedded version is read from the component when the name has none.
    assert!(versions[1]["label"].as_str().unwrap().starts_with("1.0.0+"));
}
