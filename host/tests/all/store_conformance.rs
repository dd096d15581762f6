//! The store conformance suite against the embedded backend, alone and behind
//! the read cache: what a new backend's test looks like.

use std::time::Duration;

use droid_host::store::{Embedded, Stores, conformance};

/// A fresh embedded store, with a read cache of `cache_bytes` (0: none).
fn embedded(cache_bytes: u64) -> (tempfile::TempDir, Stores) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Embedded::open(&dir.path().join("store.redb")).unwrap();
    (
        dir,
        Stores::of(backend, cache_bytes, Duration::from_secs(60)),
    )
}

#[test]
fn the_embedded_store_conforms() {
    conformance::run(|| embedded(0));
}

#[test]
fn the_embedded_store_behind_the_read_cache_conforms() {
    conformance::run(|| embedded(1 << 20));
}
