//! Set-up shared by the benchmarks: a runtime, loaded plugins, record-type
//! contexts and sample events, without a server around them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use droid_host::config::{
    Config, IngestedConfig, Mode, PluginLimits, RecordTypeConfig, RuntimeSettings,
};
use droid_host::entity::SourceEvent;
use droid_host::runtime::{
    AdapterPlugin, LoadedPlugin, PluginContext, Runtime, TransformerPlugin, WorldKind,
};

/// A runtime sized for benchmarks, without an artifact cache.
pub fn runtime() -> Runtime {
    let settings = RuntimeSettings::sized(64, 256 << 20);
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
    let config = Config::parse(
        Path::new("bench.toml"),
        &format!("[record_types.bench]\nmode = \"read-through\"\nadapter = \"bench.wasm\"\nbase_url = {base_url:?}\n"),
    )
    .expect("bench config");
    let Mode::ReadThrough(rt) = &config.record_types["bench"].mode else {
        unreachable!()
    };
    context(Mode::ReadThrough(rt.clone()))
}

fn context(mode: Mode) -> Arc<PluginContext> {
    let config = RecordTypeConfig {
        name: "bench".to_owned(),
        mode,
        limits: PluginLimits::default(),
        max_in_flight: 16,
        values: BTreeMap::new(),
        readers: Vec::new(),
        invalidators: Vec::new(),
        sensitive_fields: Vec::new(),
        seal_key: None,
    };
    Arc::new(PluginContext::new(&config, None).expect("context"))
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

/// The runtime the HTTP benchmarks drive their clients and droid on: two
/// workers, as many as the machine has cores.
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio")
}
