//! The wasmtime engine every plugin runs in, and the clock that enforces deadlines.
//!
//! One engine serves all plugins: compiled code and the instance pool are shared,
//! so a fresh instance per call costs microseconds. Deadlines use epoch
//! interruption: a ticker thread advances the engine's epoch every [`TICK`], and
//! each store's epoch callback either yields to the async executor (so a busy plugin
//! never starves a runtime worker) or, once the call's deadline has passed, stops
//! the plugin with an interrupt trap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::RuntimeSettings;

/// How often the epoch advances: the granularity of deadlines for busy plugins.
pub(crate) const TICK: Duration = Duration::from_millis(2);

/// Core instances, memories and tables a component may bring. A Rust `wasm32-wasip2`
/// component has one main module plus a few small shims; the headroom keeps other
/// toolchains' output loadable.
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 4;

/// Bytes of each linear memory kept mapped between instances in the same slot.
/// Measured with the benchmarks in `tests/benches`: 64 KiB makes a fresh instance
/// about 20% cheaper than unmapping everything (0), while a larger budget costs
/// every real call more, because whatever the budget covers is reset with memset
/// on every deallocation (256 KiB: +30%; 1 MiB: three times slower calls).
const KEEP_RESIDENT: usize = 64 << 10;
/// Decommits of memory beyond [`KEEP_RESIDENT`] are batched, so one TLB shootdown
/// covers many slots.
const DECOMMIT_BATCH: usize = 16;

/// Builds the engine for the given settings.
pub(crate) fn build(settings: &RuntimeSettings) -> wasmtime::Result<Engine> {
    let n = settings.max_instances;
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(n * MEMORIES_PER_COMPONENT)
        .total_tables(n * TABLES_PER_COMPONENT)
        .total_stacks(n)
        .max_memory_size(settings.max_memory_bytes as usize)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT * 2)
        .max_memories_per_component(MEMORIES_PER_COMPONENT * 2)
        .max_tables_per_component(TABLES_PER_COMPONENT * 2)
        // Resetting the first pages of a memory with memset (only the dirty ones,
        // where the kernel can say which) keeps them mapped for the next instance in
        // the slot; an madvise would unmap them, costing a TLB shootdown on every
        // core and a page fault per page on the next call. Beyond the budget,
        // madvise is cheaper than memset, and batching spreads its shootdowns.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT / 4)
        .pagemap_scan(wasmtime::Enabled::Auto)
        .decommit_batch_size(DECOMMIT_BATCH);

    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .wasm_component_model(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    Engine::new(&config)
}

/// Advances an engine's epoch on a background thread until dropped.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine`. The thread holds only a weak reference, so it never
    /// keeps an engine alive on its own.
    pub(crate) fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let thread = std::thread::Builder::new()
            .name("droid-epoch".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        match weak.upgrade() {
                            Some(engine) => engine.increment_epoch(),
                            None => break,
                        }
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
