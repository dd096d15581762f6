//! The store conformance suite against each backend, alone and behind the
//! read cache: the embedded store, and PostgreSQL (a server of the test's own,
//! a fresh schema per check).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use droid_host::store::{Embedded, Postgres, PostgresOptions, Stores, conformance};
use droid_test_servers::PostgresServer;

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

/// Options for schema `schema` of the test server's database.
fn postgres_options(server: &PostgresServer, schema: &str) -> PostgresOptions {
    PostgresOptions {
        url: server.url(),
        schema: schema.to_owned(),
        pool_size: 4,
        statement_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(200),
    }
}

#[test]
fn the_postgres_store_conforms() {
    let server = PostgresServer::start();
    let schemas = AtomicUsize::new(0);
    for cache_bytes in [0, 1 << 20] {
        conformance::run(|| {
            let n = schemas.fetch_add(1, Ordering::Relaxed);
            let backend =
                Postgres::open(&postgres_options(&server, &format!("check_{n}"))).unwrap();
            (
                (),
                Stores::of(backend, cache_bytes, Duration::from_secs(60)),
            )
        });
    }
}
