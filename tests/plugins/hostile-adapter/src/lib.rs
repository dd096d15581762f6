//! An adapter that does what a careless or hostile provider's code might,
//! chosen by the key (`WHAT` or `WHAT-N`), for the hardening tests.
//!
//! - `big-N`: a record with a string field of `N` bytes.
//! - `deep-N`: a record nested `N` arrays deep.
//! - `requests-N`: sends `N` requests to its backing store, then answers.
//! - `long-error-N`: fails with a message of `N` bytes.
//! - `log-lines-N`, `log-big-N`, `log-forge`: log floods, as the transformer's.
//! - `spin-N`: burns CPU for `N` ms.
//! - anything else: `{"ok":true}`.
//!
//! Built with the `sleep-at-start` feature, it waits two seconds in a host
//! call while the component starts, before any export runs.

use droid_sdk::{Adapter, FetchOutcome, FetchRequest, Fetched, PluginError, http, log};

/// The adapter.
#[derive(Debug)]
pub struct Hostile;

impl Adapter for Hostile {
    fn fetch(req: FetchRequest) -> Result<FetchOutcome, PluginError> {
        let (what, n) = match req.key.rsplit_once('-') {
            Some((what, n)) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => {
                (what.to_owned(), n.parse::<u64>().unwrap_or(0))
            }
            _ => (req.key.clone(), 0),
        };
        let found = |body: String| Ok(FetchOutcome::Found(Fetched::body(body)));
        match what.as_str() {
            "big" => found(format!("{{\"pad\":\"{}\"}}", "x".repeat(n as usize))),
            "deep" => found(format!(
                "{}{}",
                "[".repeat(n as usize),
                "]".repeat(n as usize)
            )),
            "requests" => {
                let mut answered = 0;
                for _ in 0..n {
                    if http::get(http::url_for_key("ping")).is_ok() {
                        answered += 1;
                    }
                }
                found(format!("{{\"answered\":{answered}}}"))
            }
            "long-error" => Err(PluginError::Internal("e".repeat(n as usize))),
            "log-lines" => {
                for i in 0..n {
                    log::info(&format!("line {i}"));
                }
                found("{}".to_owned())
            }
            "log-big" => {
                log::info(&"L".repeat(n as usize));
                found("{}".to_owned())
            }
            "log-forge" => {
                log::info("innocent\n2026-01-01T00:00:00Z ERROR droid_host::server: FORGED");
                found("{}".to_owned())
            }
            "spin" => {
                let until = droid_sdk::clock::now_ms() + n;
                let mut x: u64 = 0;
                while droid_sdk::clock::now_ms() < until {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                }
                found(format!("{{\"spun\":{n}}}"))
            }
            _ => found(r#"{"ok":true}"#.to_owned()),
        }
    }
}

droid_sdk::export_adapter!(Hostile);

/// Runs when the component is instantiated: a core module's `_initialize`
/// export is called by the component's start-up, before droid calls any
/// export.
#[cfg(feature = "sleep-at-start")]
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn _initialize() {
    std::thread::sleep(std::time::Duration::from_secs(2));
}
