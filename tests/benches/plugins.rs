//! The plugin runtime's costs, in process: a fresh instance, an adapter call, and a
//! transformer batch, each next to the same logic compiled natively.
//!
//! Run with `cargo bench -p droid-e2e --bench plugins`; see `bench/README.md`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use droid_e2e::bench::{
    adapter, ingested_context, read_through_context, runtime, ticket_events, transformer,
};
use droid_e2e::{TestBackend, plugins};
use droid_sdk::Transformer;
use ticket_transformer::TicketTransformer;

fn transform(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let runtime = runtime();
    let plugin = transformer(&runtime, plugins::TICKET_TRANSFORMER);
    let ctx = ingested_context();

    for size in [1usize, 16, 256] {
        let (sdk_events, host_events) = ticket_events(size);
        let mut group = c.benchmark_group(format!("transform/batch-{size}"));
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function("wasm", |b| {
            b.to_async(&rt).iter_batched(
                || host_events.clone(),
                |events| {
                    let plugin = plugin.clone();
                    let ctx = ctx.clone();
                    async move { plugin.transform(&ctx, events).await.expect("transform") }
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function("native", |b| {
            b.iter_batched(
                || sdk_events.clone(),
                |events| {
                    events
                        .into_iter()
                        .map(TicketTransformer::transform)
                        .collect::<Vec<_>>()
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

/// What batching per tenant costs: ingestion calls the transformer once per
/// tenant (so one instance never sees two tenants' events), so a request of
/// `size` events from `size` tenants makes `size` calls where one tenant's
/// makes one.
fn tenant_batches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let runtime = runtime();
    let plugin = transformer(&runtime, plugins::TICKET_TRANSFORMER);
    let ctx = ingested_context();
    for size in [1usize, 16, 256] {
        let (_, events) = ticket_events(size);
        let mut group = c.benchmark_group(format!("tenants/batch-{size}"));
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function("one-tenant", |b| {
            b.to_async(&rt).iter_batched(
                || events.clone(),
                |events| {
                    let (plugin, ctx) = (plugin.clone(), ctx.clone());
                    async move { plugin.transform(&ctx, events).await.expect("transform") }
                },
                BatchSize::SmallInput,
            )
        });
        group.bench_function("a-tenant-each", |b| {
            b.to_async(&rt).iter_batched(
                || events.clone(),
                |events| {
                    let (plugin, ctx) = (plugin.clone(), ctx.clone());
                    async move {
                        for event in events {
                            plugin
                                .transform(&ctx, vec![event])
                                .await
                                .expect("transform");
                        }
                    }
                },
                BatchSize::SmallInput,
            )
        });
        // As ingestion runs them: four calls at a time.
        group.bench_function("a-tenant-each-4-at-once", |b| {
            b.to_async(&rt).iter_batched(
                || events.clone(),
                |events| {
                    let (plugin, ctx) = (plugin.clone(), ctx.clone());
                    async move {
                        use futures::StreamExt;
                        futures::stream::iter(events.into_iter().map(|event| {
                            let (plugin, ctx) = (plugin.clone(), ctx.clone());
                            async move {
                                plugin
                                    .transform(&ctx, vec![event])
                                    .await
                                    .expect("transform")
                            }
                        }))
                        .buffered(4)
                        .collect::<Vec<_>>()
                        .await
                    }
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

fn instantiate(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let runtime = runtime();
    let adapter = adapter(&runtime, plugins::HTTP_JSON_ADAPTER);
    let ctx = read_through_context("http://127.0.0.1:9/records");
    c.bench_function("instantiate/http-json-adapter", |b| {
        b.to_async(&rt)
            .iter(|| async { adapter.instantiate_only(&ctx).await.expect("instantiate") })
    });
}

fn fetch(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = rt.block_on(TestBackend::start());
    let record = r#"{"site_id":"site-0001","name":"Acme Labs","region":"eu-west-1","plan":"premium","seats":1200}"#;
    backend.put("site-0001", record);
    let runtime = runtime();
    let adapter = adapter(&runtime, plugins::HTTP_JSON_ADAPTER);
    let ctx = read_through_context(&backend.url("/records"));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = backend.url("/records/site-0001");

    let mut group = c.benchmark_group("fetch/loopback-store");
    group.bench_function("wasm", |b| {
        b.to_async(&rt).iter(|| async {
            adapter
                .fetch(&ctx, "site-0001", "acme")
                .await
                .expect("fetch")
        })
    });
    // The same contract handled natively: GET, status check, body as text.
    group.bench_function("native", |b| {
        b.to_async(&rt).iter(|| async {
            let response = client
                .get(&url)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, instantiate, transform, tenant_batches, fetch);
criterion_main!(benches);
