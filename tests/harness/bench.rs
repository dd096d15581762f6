//! Set-up shared by the benchmarks: a runtime, loaded plugins, record-type
//! contexts and sample events, without a server around them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use droid_host::config::{
    HttpSettings, IngestedConfig, Mode, PluginLimits, ReadThroughConfig, RecordTypeConfig,
    RuntimeSettings,
};
use droid_host::entity::SourceEvent;
use droid_host::runtime::{
    AdapterPlugin, LoadedPlugin, PluginContext, Runtime, TransformerPlugin, WorldKind,
};

/// A runtime sized for benchmarks, without an artifact cache.
pub fn runtime() -> Runtime {
    let settings = RuntimeSettings {
        max_instances: 64,
        max_memory_bytes: 256 << 20,
    };
    Runtime::new(&settings, None).expect("runtime")
}

/// Loads the transformer at `path`.
pub fn transformer(runtime: &Runtime, path: &str) -> Arc<TransformerPlugin> {
    match runtime.load(Path::new(path), WorldKind::Transformer, "bench") {
        Ok(LoadedPlugin::Transformer(t)) => t,
        other => panic!("{path} is not a loadable transformer: {other:?}"),
    }
}

/// Loads the adapter at `path`.
pub fn adapter(runtime: &Runtime, path: &str) -> Arc<AdapterPlugin> {
    match runtime.load(Path::new(path), WorldKind::Adapter, "bench") {
        Ok(LoadedPlugin::Adapter(a)) => a,
        other => panic!("{path} is not a loadable adapter: {other:?}"),
    }
}

/// The context of an ingested record type with default limits.
pub fn ingested_context() -> Arc<PluginContext> {
    context(Mode::Ingested(IngestedConfig {
        transformer: "bench.wasm".into(),
    }))
}

/// The context of a read-through record type on `base_url` with default limits.
pub fn read_through_context(base_url: &str) -> Arc<PluginContext> {
    context(Mode::ReadThrough(ReadThroughConfig {
        adapter: "bench.wasm".into(),
        base_url: base_url.parse().expect("base URL"),
        http: HttpSettings {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(1000),
            max_response_bytes: 1 << 20,
        },
    }))
}

fn context(mode: Mode) -> Arc<PluginContext> {
    let config = RecordTypeConfig {
        name: "bench".to_owned(),
        mode,
        limits: PluginLimits::default(),
        values: BTreeMap::new(),
    };
    Arc::new(PluginContext::new(&config).expect("context"))
}

/// `n` realistic ticket events, as the SDK (native) and the host (wasm) see them.
pub fn ticket_events(n: usize) -> (Vec<droid_sdk::SourceEvent>, Vec<SourceEvent>) {
    let sdk: Vec<_> = (0..n as u64)
        .map(|i| ticket_transformer::sample_event(i, "ticket.updated"))
        .collect();
    let host = sdk
        .iter()
        .cloned()
        .map(|e| SourceEvent {
            id: e.id,
            source: e.source,
            kind: e.kind,
            tenant: e.tenant,
            occurred_at: e.occurred_at,
            payload: e.payload,
        })
        .collect();
    (sdk, host)
}
