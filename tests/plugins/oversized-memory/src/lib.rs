//! An adapter whose initial memory (a 300 MiB zeroed static) is larger than any
//! memory cap droid allows: a file droid must refuse at load (the instance pool
//! says why) rather than fail on every call.
//! The static is zeroed and mutable (atomics), so it lives in `.bss`: it costs
//! initial memory, not file size.

use std::sync::atomic::{AtomicU8, Ordering};

use droid_sdk::{Adapter, FetchOutcome, FetchRequest, PluginError};

static BALLAST: [AtomicU8; 300 << 20] = [const { AtomicU8::new(0) }; 300 << 20];

/// The adapter.
#[derive(Debug)]
pub struct OversizedMemory;

impl Adapter for OversizedMemory {
    fn fetch(req: FetchRequest) -> Result<FetchOutcome, PluginError> {
        // Written as well as read, so the optimiser cannot fold it away.
        let byte = BALLAST[req.key.len() % BALLAST.len()].fetch_add(1, Ordering::Relaxed);
        Err(PluginError::Internal(format!(
            "never instantiated ({byte})"
        )))
    }
}

droid_sdk::export_adapter!(OversizedMemory);
