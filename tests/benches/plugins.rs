//! The plugin runtime's costs, in process: a fresh instance, an adapter call, and a
//! transformer batch, each next to the same logic compiled natively.
//!
//! Run with `cargo bench -p droid-e2e --bench plugins`; see `bench/README.md`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use droid_e2e::{TestBackend, plugins};
use droid_host::config::{
    HttpSettings, IngestedConfig, Mode, PluginLimits, ReadThroughConfig, RecordTypeConfig,
    RuntimeSettings,
};
use droid_host::entity::SourceEvent;
use droid_host::runtime::{LoadedPlugin, PluginContext, Runtime, WorldKind};
use droid_sdk::Transformer;
use ticket_transformer::{TicketTransformer, sample_event};

fn runtime() -> Runtime {
    let settings = RuntimeSettings {
        max_instances: 64,
        max_memory_bytes: 256 << 20,
    };
    Runtime::new(&settings, None).expect("runtime")
}

fn context(name: &str, mode: Mode) -> Arc<PluginContext> {
    let config = RecordTypeConfig {
        name: name.to_owned(),
        mode,
        limits: PluginLimits::default(),
        values: BTreeMap::new(),
    };
    Arc::new(PluginContext::new(&config).expect("context"))
}

fn host_event(e: droid_sdk::SourceEvent) -> SourceEvent {
    SourceEvent {
        id: e.id,
        source: e.source,
        kind: e.kind,
        tenant: e.tenant,
        occurred_at: e.occurred_at,
        payload: e.payload,
    }
}

fn transform(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let runtime = runtime();
    let LoadedPlugin::Transformer(plugin) = runtime
        .load(
            plugins::TICKET_TRANSFORMER.as_ref(),
            WorldKind::Transformer,
            "ticket",
        )
        .expect("load")
    else {
        unreachable!()
    };
    let ctx = context(
        "ticket",
        Mode::Ingested(IngestedConfig {
            transformer: "ticket_transformer.wasm".into(),
        }),
    );

    for size in [1usize, 16, 256] {
        let sdk_events: Vec<_> = (0..size as u64)
            .map(|n| sample_event(n, "ticket.updated"))
            .collect();
        let host_events: Vec<_> = sdk_events.iter().cloned().map(host_event).collect();
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

fn instantiate(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let runtime = runtime();
    let LoadedPlugin::Adapter(adapter) = runtime
        .load(
            plugins::HTTP_JSON_ADAPTER.as_ref(),
            WorldKind::Adapter,
            "site",
        )
        .expect("load")
    else {
        unreachable!()
    };
    let ctx = adapter_context("http://127.0.0.1:9/records");
    c.bench_function("instantiate/http-json-adapter", |b| {
        b.to_async(&rt)
            .iter(|| async { adapter.instantiate_only(&ctx).await.expect("instantiate") })
    });
}

fn adapter_context(base: &str) -> Arc<PluginContext> {
    context(
        "site",
        Mode::ReadThrough(ReadThroughConfig {
            adapter: "http_json_adapter.wasm".into(),
            base_url: base.parse().unwrap(),
            http: HttpSettings {
                connect_timeout: Duration::from_millis(500),
                request_timeout: Duration::from_millis(1000),
                max_response_bytes: 1 << 20,
            },
        }),
    )
}

fn fetch(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = rt.block_on(TestBackend::start());
    let record = r#"{"site_id":"site-0001","name":"Acme Labs","region":"eu-west-1","plan":"premium","seats":1200}"#;
    backend.put("site-0001", record);
    let runtime = runtime();
    let LoadedPlugin::Adapter(adapter) = runtime
        .load(
            plugins::HTTP_JSON_ADAPTER.as_ref(),
            WorldKind::Adapter,
            "site",
        )
        .expect("load")
    else {
        unreachable!()
    };
    let ctx = adapter_context(&backend.url("/records"));
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

criterion_group!(benches, instantiate, transform, fetch);
criterion_main!(benches);
