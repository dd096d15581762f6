//! A transformer that does nothing: every event yields no changes. Benchmarks use
//! it to measure what the runtime itself costs per batch and per event (instance,
//! lowering the events into the guest, lifting the results), apart from any
//! plugin's own logic.

use droid_sdk::{EntityOp, PluginError, SourceEvent, Transformer};

/// The transformer.
#[derive(Debug)]
pub struct Noop;

impl Transformer for Noop {
    fn transform(_event: SourceEvent) -> Result<Vec<EntityOp>, PluginError> {
        Ok(Vec::new())
    }
}

droid_sdk::export_transformer!(Noop);
