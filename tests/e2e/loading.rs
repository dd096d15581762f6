//! Plugins that cannot run are refused at load, before droid listens, with a
//! message that names the file and says why.

use droid_e2e::TestDroid;

fn read_through(name: &str, file: &str) -> String {
    format!(
        r#"
[record_types.{name}]
mode = "read-through"
adapter = "{file}"
base_url = "http://127.0.0.1:9/records"
"#
    )
}

async fn start_error(record_types: &str, extra: &[(&str, &[u8])]) -> String {
    match TestDroid::try_start_with(record_types, extra).await {
        Ok(_) => panic!("droid started with a bad plugin"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_component_of_another_world_is_refused_and_its_exports_named() {
    let e = start_error(&read_through("site", "wrong_world.wasm"), &[]).await;
    assert!(e.contains("wrong_world.wasm: not a droid plugin"), "{e}");
    assert!(e.contains("acme:widgets/greeter@0.1.0"), "{e}");
}

#[tokio::test]
async fn a_component_of_another_major_version_is_refused_naming_both_versions() {
    let e = start_error(&read_through("site", "wrong_version.wasm"), &[]).await;
    let accepted = &*droid_host::runtime::ACCEPTED;
    assert!(
        e.contains(&format!("wrong_version.wasm: built against droid:plugin@1.0.0, but this host accepts droid:plugin@{accepted}")),
        "{e}"
    );
}

#[tokio::test]
async fn a_transformer_configured_as_an_adapter_is_refused() {
    let e = start_error(&read_through("site", "ticket_transformer.wasm"), &[]).await;
    assert!(
        e.contains("ticket_transformer.wasm: is a transformer component, but record type \"site\" needs an adapter"),
        "{e}"
    );
}

#[tokio::test]
async fn an_adapter_configured_as_a_transformer_is_refused() {
    let e = start_error(
        "[record_types.tickets]\nmode = \"ingested\"\ntransformer = \"http_json_adapter.wasm\"\n",
        &[],
    )
    .await;
    assert!(
        e.contains("is an adapter component, but record type \"tickets\" needs a transformer"),
        "{e}"
    );
}

#[tokio::test]
async fn a_core_module_is_refused_with_a_hint() {
    let core_module: &[u8] = b"\0asm\x01\0\0\0";
    let e = start_error(
        &read_through("site", "core.wasm"),
        &[("core.wasm", core_module)],
    )
    .await;
    assert!(e.contains("core.wasm: not a WebAssembly component"), "{e}");
    assert!(e.contains("--target wasm32-wasip2"), "{e}");
}

#[tokio::test]
async fn a_file_that_is_not_wasm_is_refused() {
    let e = start_error(
        &read_through("site", "notes.wasm"),
        &[("notes.wasm", b"just some text")],
    )
    .await;
    assert!(e.contains("notes.wasm: not a WebAssembly component: the file does not start with the WebAssembly magic number"), "{e}");
}

#[tokio::test]
async fn a_missing_file_is_refused() {
    let e = start_error(&read_through("site", "absent.wasm"), &[]).await;
    assert!(
        e.contains("absent.wasm: cannot read the plugin file"),
        "{e}"
    );
}

/// Every bad plugin is reported in one go, not just the first.
#[tokio::test]
async fn every_failing_plugin_is_reported_at_once() {
    let config = format!(
        "{}{}",
        read_through("a", "wrong_world.wasm"),
        read_through("b", "absent.wasm")
    );
    let e = start_error(&config, &[]).await;
    assert!(e.starts_with("2 plugin(s) failed to load"), "{e}");
    assert!(
        e.contains("wrong_world.wasm") && e.contains("absent.wasm"),
        "{e}"
    );
}

mod artifact_cache {
    use std::path::Path;

    use droid_host::config::RuntimeSettings;
    use droid_host::runtime::{Provenance, Runtime, WorldKind};

    fn runtime(cache: &Path) -> Runtime {
        let settings = RuntimeSettings::sized(4, 64 << 20);
        Runtime::new(&settings, Some(cache.to_path_buf())).expect("runtime")
    }

    /// A plugin is compiled once; later loads (by this or another process) take the
    /// compiled artifact from the cache.
    #[test]
    fn a_plugin_compiles_once_then_loads_from_the_cache() {
        let cache = tempfile::tempdir().unwrap();
        let plugin = Path::new(droid_e2e::plugins::HTTP_JSON_ADAPTER);
        let first = runtime(cache.path())
            .load(plugin, WorldKind::Adapter, "site")
            .expect("load");
        assert_eq!(first.info().provenance, Provenance::Compiled);
        let entries: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
        assert_eq!(entries.len(), 1, "one artifact per plugin version");
        let name = entries[0]
            .as_ref()
            .unwrap()
            .file_name()
            .into_string()
            .unwrap();
        assert!(
            name.starts_with(&first.info().sha256),
            "{name} is keyed by the content hash"
        );

        let second = runtime(cache.path())
            .load(plugin, WorldKind::Adapter, "site")
            .expect("load");
        assert_eq!(second.info().provenance, Provenance::Cache);
    }

    /// A damaged cache entry is recompiled and replaced, never trusted.
    #[test]
    fn a_corrupt_cache_entry_is_recompiled() {
        let cache = tempfile::tempdir().unwrap();
        let plugin = Path::new(droid_e2e::plugins::HTTP_JSON_ADAPTER);
        runtime(cache.path())
            .load(plugin, WorldKind::Adapter, "site")
            .expect("load");
        let entry = std::fs::read_dir(cache.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(&entry, b"garbage where machine code was").unwrap();

        let again = runtime(cache.path())
            .load(plugin, WorldKind::Adapter, "site")
            .expect("load");
        assert_eq!(again.info().provenance, Provenance::Compiled);
        let third = runtime(cache.path())
            .load(plugin, WorldKind::Adapter, "site")
            .expect("load");
        assert_eq!(
            third.info().provenance,
            Provenance::Cache,
            "the entry was replaced"
        );
    }
}
