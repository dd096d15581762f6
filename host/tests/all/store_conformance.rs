//! The store conformance suite against the embedded backend, alone and behind
//! the read cache: what a new backend's test looks like.

use std::time::Duration;

use droid_host::store::{CacheSize, Embedded, Stores, conformance};

fn embedded(cache: CacheSize) -> (tempfile::TempDir, Stores) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Embedded::open(&dir.path().join("store.redb")).unwrap();
    (dir, Stores::of(backend, cache))
}

#[test]
fn the_embedded_store_conforms() {
    conformance::run(|| {
        embedded(CacheSize {
            capacity_bytes: 0,
            ttl: Duration::ZERO,
        })
    });
}

#[test]
fn the_embedded_store_behind_the_read_cache_conforms() {
    conformance::run(|| {
        embedded(CacheSize {
            capacity_bytes: 1 << 20,
            ttl: Duration::from_secs(60),
        })
    });
}
