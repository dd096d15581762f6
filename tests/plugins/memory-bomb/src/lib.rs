//! A misbehaving adapter that allocates without bound, for memory-cap tests.
//! Key `bomb` keeps allocating and touching megabytes until something stops it;
//! any other key is answered at once.

use droid_sdk::{Adapter, FetchOutcome, FetchRequest, Fetched, PluginError};

/// The adapter.
#[derive(Debug)]
pub struct MemoryBomb;

impl Adapter for MemoryBomb {
    fn fetch(req: FetchRequest) -> Result<FetchOutcome, PluginError> {
        if req.key == "bomb" {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![0xAB; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        Ok(FetchOutcome::Found(Fetched {
            body: r#"{"ok":true}"#.to_owned(),
            version: None,
        }))
    }
}

droid_sdk::export_adapter!(MemoryBomb);
