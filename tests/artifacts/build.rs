//! Builds every plugin component from source before the tests that use them.
//!
//! The plugins are workspace members compiled for `wasm32-wasip2` with the
//! `plugin` profile, in their own target folder (`target/test-plugins`) so this
//! nested cargo never waits on the lock of the build that runs it. Each
//! component's path is exported to the crate as an environment variable, so a test
//! can never silently use a stale `.wasm`: when a plugin's source, the SDK or the
//! WIT changes, this script runs again.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugin crates, by package name.
const PLUGINS: &[&str] = &[
    "http-json-adapter",
    "ticket-transformer",
    "looping",
    "memory-bomb",
    "panicking",
    "egress-probe",
    "wrong-world",
    "wrong-version",
    "noop-transformer",
    "oversized-memory",
    "hostile-adapter",
    "hostile-transformer",
];

/// Plugins built once per feature set, each build copied to its own file name:
/// (package, features, file name).
const VARIANTS: &[(&str, &str, &str)] = &[
    ("version-echo", "", "version_echo_v1.wasm"),
    ("version-echo", "v2", "version_echo_v2.wasm"),
    ("version-echo", "flaky", "version_echo_flaky.wasm"),
    (
        "hostile-adapter",
        "sleep-at-start",
        "hostile_adapter_sleepy.wasm",
    ),
];

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("workspace root exists");
    let target_dir = root.join("target/test-plugins");

    for watched in [
        "wit",
        "sdk",
        "plugins",
        "tests/plugins",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let out = target_dir.join("wasm32-wasip2/plugin");
    // Variants first: a plugin also built plainly (in `PLUGINS`) then ends
    // with its plain build under its own name.
    for (plugin, features, file) in VARIANTS {
        build(&root, &target_dir, &[plugin], features);
        let built = out.join(format!("{}.wasm", plugin.replace('-', "_")));
        std::fs::copy(&built, out.join(file)).expect("copy a plugin variant");
        println!(
            "cargo:rustc-env=DROID_PLUGIN_{}={}",
            env_name(file.trim_end_matches(".wasm")),
            out.join(file).display()
        );
    }

    build(&root, &target_dir, PLUGINS, "");
    for plugin in PLUGINS {
        let file = out.join(format!("{}.wasm", plugin.replace('-', "_")));
        assert!(
            file.is_file(),
            "expected {} after the build",
            file.display()
        );
        println!(
            "cargo:rustc-env=DROID_PLUGIN_{}={}",
            env_name(plugin),
            file.display()
        );
    }
    println!("cargo:rustc-env=DROID_PLUGIN_DIR={}", display(&out));
}

/// Builds `plugins` for wasm32-wasip2 with the `plugin` profile and `features`.
fn build(root: &Path, target_dir: &Path, plugins: &[&str], features: &str) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--profile",
            "plugin",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target_dir);
    for plugin in plugins {
        cmd.args(["-p", plugin]);
    }
    if !features.is_empty() {
        cmd.args(["--features", features]);
    }
    // Settings meant for the outer build (flags, its target folder, coverage or
    // sanitizer instrumentation) must not leak into a wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cargo can be started");
    assert!(
        status.success(),
        "building the plugins for wasm32-wasip2 failed; is the target installed? (rustup target add wasm32-wasip2)"
    );
}

fn env_name(plugin: &str) -> String {
    plugin.to_uppercase().replace('-', "_")
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
