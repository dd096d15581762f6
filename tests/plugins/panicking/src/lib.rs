//! A misbehaving adapter that panics, for fault-isolation tests. Key `panic`
//! panics with a recognisable message; any other key is answered at once.

use droid_sdk::{Adapter, FetchOutcome, FetchRequest, Fetched, PluginError};

/// The adapter.
#[derive(Debug)]
pub struct Panicking;

impl Adapter for Panicking {
    fn fetch(req: FetchRequest) -> Result<FetchOutcome, PluginError> {
        if req.key == "panic" {
            panic!("the provider's code hit a bug on key {}", req.key);
        }
        Ok(FetchOutcome::Found(Fetched {
            body: r#"{"ok":true}"#.to_owned(),
            version: None,
        }))
    }
}

droid_sdk::export_adapter!(Panicking);
