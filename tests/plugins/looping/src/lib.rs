//! A misbehaving adapter that never returns, for fault-isolation tests.
//!
//! Key `spin` burns CPU in a loop; key `http` loops over outbound requests (each
//! within the request timeout), so only a deadline that also covers time spent
//! waiting on host calls can stop it. Any other key is answered at once, to show
//! the same plugin still works after its failed calls.

use droid_sdk::{Adapter, FetchOutcome, FetchRequest, Fetched, PluginError, http};

/// The adapter.
#[derive(Debug)]
pub struct Looping;

impl Adapter for Looping {
    fn fetch(req: FetchRequest) -> Result<FetchOutcome, PluginError> {
        match req.key.as_str() {
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "http" => loop {
                let _ = http::get(http::url_for_key("slow"));
            },
            _ => Ok(FetchOutcome::Found(Fetched {
                body: r#"{"ok":true}"#.to_owned(),
                version: None,
            })),
        }
    }
}

droid_sdk::export_adapter!(Looping);
