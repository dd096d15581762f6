//! With trust required, only pinned or signed plugin files load.

use std::time::Duration;

use droid_e2e::{Landing, TestDroid, eventually, land, plugins};
use droid_host::plugins::trust::{keygen, sign};

use crate::reload::{ECHO, admin_plugins, bytes, serving};

#[tokio::test]
async fn only_pinned_or_signed_files_load_and_the_reason_is_shown() {
    let keys = tempfile::tempdir().unwrap();
    let (provider_key, provider_pub) = keygen(&keys.path().join("provider")).unwrap();
    let (stranger_key, _) = keygen(&keys.path().join("stranger")).unwrap();
    let v1 = bytes(plugins::VERSION_ECHO_V1);
    let settings = format!(
        "require_trust = true\npinned_sha256 = [{:?}]\ntrusted_keys = [{:?}]\n",
        droid_host::runtime::sha256_hex(&v1),
        provider_pub.display().to_string()
    );
    let droid = TestDroid::start_with_plugin_settings(&settings, ECHO, &[("echo.wasm", &v1)]).await;
    let list = admin_plugins(&droid).await;
    assert_eq!(
        list["plugins"][0]["versions"][0]["trusted_by"],
        "pinned sha256"
    );

    let file = droid.plugin_dir().join("echo.wasm");
    let failure = |expected: &'static str| {
        let droid = &droid;
        async move {
            eventually(Duration::from_secs(20), expected, || async {
                let list = admin_plugins(droid).await;
                let reason = list["load_failures"][0]["reason"].as_str()?.to_owned();
                reason.contains(expected).then_some(reason)
            })
            .await
        }
    };
    land(&file, &bytes(plugins::VERSION_ECHO_V2), Landing::Atomic);
    failure("untrusted: its sha256").await;
    failure("no signature file echo.wasm.sig").await;
    assert_eq!(serving(&droid, "a", "t").await, "1.0.0");

    sign(&stranger_key, &file).unwrap();
    failure("does not verify with any trusted key").await;
    assert_eq!(serving(&droid, "b", "t").await, "1.0.0");

    sign(&provider_key, &file).unwrap();
    let polls = std::sync::atomic::AtomicU32::new(0);
    eventually(
        Duration::from_secs(20),
        "the signed file to serve",
        || async {
            // A new key each time: a cached answer would hide the change.
            let n = polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (serving(&droid, &format!("c{n}"), "t2").await == "2.0.0").then_some(())
        },
    )
    .await;
    let list = admin_plugins(&droid).await;
    assert_eq!(
        list["plugins"][0]["versions"][0]["trusted_by"],
        "signed by provider"
    );
    assert!(list["load_failures"].as_array().unwrap().is_empty());
}
