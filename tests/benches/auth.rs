//! The cost of authenticating a request, in process: a token seen before (the
//! verified-token cache, what a consumer reusing its token pays on every read),
//! and a token never seen (a full check: header, key from the warm key cache,
//! signature, claims), for ES256 and RS256.
//!
//! Run with `cargo bench -p droid-e2e --bench auth`.

use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use droid_e2e::tokens::{self, Algorithm, Issuers, RSA_A, claims, sign};
use droid_host::auth::{AuthSettings, Authenticator, CallKind, KeySettings, Repository};

fn authenticator(issuers: &Issuers) -> Authenticator {
    Authenticator::new(AuthSettings {
        audience: tokens::AUDIENCE.to_owned(),
        keys: KeySettings {
            repositories: vec![Repository::Folder(issuers.repository())],
            max_entries: 100,
            max_age: Duration::from_secs(3600),
            missing_for: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(1),
            fetch_concurrency: 8,
            fetches_per_s: 5,
        },
        clock_skew: Duration::from_secs(30),
        replay_protect_reads: false,
        replay_entries: 10_000_000,
        verified_entries: 10_000_000,
    })
}

fn bench(c: &mut Criterion) {
    let rt = droid_e2e::bench::tokio_runtime();
    let issuers = Issuers::new(&["shop"]);
    let auth = authenticator(&issuers);
    let header = format!("Bearer {}", issuers.token("shop"));
    // Warm the key cache and the verified-token cache.
    rt.block_on(auth.authenticate(Some(header.as_bytes()), CallKind::Read))
        .expect("a valid token");

    let mut group = c.benchmark_group("auth");
    group.bench_function("seen-token", |b| {
        b.to_async(&rt).iter(|| async {
            auth.authenticate(Some(header.as_bytes()), CallKind::Read)
                .await
                .unwrap()
        });
    });
    let rsa = tokens::rsa_key(RSA_A);
    let es = issuers.es_key("shop");
    for (name, alg, kid, key) in [
        ("new-token-es256", Algorithm::ES256, "shop/es", &es),
        ("new-token-rs256", Algorithm::RS256, "shop/rsa", &rsa),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                || format!("Bearer {}", sign(alg, kid, &claims("shop"), key)),
                |header| {
                    let auth = &auth;
                    async move {
                        auth.authenticate(Some(header.as_bytes()), CallKind::Read)
                            .await
                            .unwrap()
                    }
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
