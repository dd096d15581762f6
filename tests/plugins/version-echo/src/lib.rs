//! An adapter that answers every key with its own version, for reload and rollout
//! tests: each response says which build produced it. Built three times by
//! `tests/artifacts`: version 1.0.0 (no features), 2.0.0 (`v2`) and a bad 3.0.0
//! (`flaky`) that traps on about half of its calls.

use droid_sdk::{Adapter, FetchOutcome, FetchRequest, Fetched, PluginError};

#[cfg(feature = "flaky")]
const VERSION: &str = "3.0.0";
#[cfg(all(feature = "v2", not(feature = "flaky")))]
const VERSION: &str = "2.0.0";
#[cfg(not(any(feature = "v2", feature = "flaky")))]
const VERSION: &str = "1.0.0";

/// The adapter.
#[derive(Debug)]
pub struct VersionEcho;

impl Adapter for VersionEcho {
    fn fetch(req: FetchRequest) -> Result<FetchOutcome, PluginError> {
        if cfg!(feature = "flaky") && traps_on(&req) {
            // A real bug's shape: an out-of-bounds index, which traps.
            let empty: Vec<u8> = Vec::new();
            let _ = empty[req.key.len()];
        }
        let body = format!(
            r#"{{"key":{:?},"tenant":{:?},"version":{VERSION:?}}}"#,
            req.key, req.tenant
        );
        Ok(FetchOutcome::Found(Fetched {
            body,
            version: None,
        }))
    }
}

/// About half of all keys, chosen by their bytes so a retry of a key fails again.
fn traps_on(req: &FetchRequest) -> bool {
    let sum: u32 = req
        .key
        .bytes()
        .chain(req.tenant.bytes())
        .map(u32::from)
        .sum();
    sum % 2 == 1
}

droid_sdk::export_adapter!(VersionEcho, version = VERSION);
