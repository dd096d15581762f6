//! An adapter that tries to reach places it should not, for egress tests.
//!
//! The key names a config value holding the URL to request (the test writes one
//! per trick into the record type's `config` table). Two keys add a twist:
//! `host-header` sends the request with a forged `Host` header, and `redirect`
//! follows a 3xx answer's `Location` itself. A request that goes through is
//! answered as a record `{"status": N}`; a refused one fails the call.

use droid_sdk::{Adapter, FetchOutcome, FetchRequest, Fetched, PluginError, config, http};

/// The adapter.
#[derive(Debug)]
pub struct EgressProbe;

impl Adapter for EgressProbe {
    fn fetch(req: FetchRequest) -> Result<FetchOutcome, PluginError> {
        let url = config::get(&req.key).ok_or_else(|| {
            PluginError::InvalidInput(format!("no URL configured for {}", req.key))
        })?;
        let mut request = http::Request::get(url);
        if req.key == "host-header" {
            request = request.header("Host", "evil.example");
        }
        let mut response = request.send()?;
        if req.key == "redirect"
            && (300..400).contains(&response.status)
            && let Some(location) = response.header("location")
        {
            response = http::get(location)?;
        }
        Ok(FetchOutcome::Found(Fetched {
            body: format!(r#"{{"status":{}}}"#, response.status),
            version: None,
        }))
    }
}

droid_sdk::export_adapter!(EgressProbe);
