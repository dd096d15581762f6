//! A transformer that does what a careless or hostile provider's code might,
//! chosen by each event's `kind`, for the hardening tests. The payload is a
//! JSON object; `key` names the record written (default `r1`), `n` sizes the
//! misbehaviour.
//!
//! - `spy`: remembers every event it has seen in this instance and writes
//!   them all into the record: if one call ever held two tenants' events, one
//!   tenant's `secret` would reach the other's record.
//! - `ops`: writes `n` records for one event.
//! - `big`: writes one record with a string field of `n` bytes.
//! - `deep`: writes one record nested `n` arrays deep.
//! - `version`: writes one record at version `n` (`max`: `u64::MAX`).
//! - `twice`: writes the same key twice at the same version.
//! - `long-error`: refuses the event with a message of `n` bytes.
//! - `log-lines`: logs `n` short lines; `log-big`: one line of `n` bytes;
//!   `log-forge`: a line with a newline and a forged log record in it.
//! - `sleep`: waits `n` ms in the host's clock (time spent in a host call);
//!   `spin`: burns CPU for `n` ms.
//! - anything else: writes `{"ok":true}`.

use std::sync::Mutex;

use droid_sdk::{Entity, EntityOp, PluginError, SourceEvent, Transformer, log};
use serde_json::{Value, json};

/// What this instance has seen so far.
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The transformer.
#[derive(Debug)]
pub struct Hostile;

impl Transformer for Hostile {
    fn transform(event: SourceEvent) -> Result<Vec<EntityOp>, PluginError> {
        let payload: Value = event.json()?;
        let key = payload["key"].as_str().unwrap_or("r1").to_owned();
        let n = payload["n"].as_u64().unwrap_or(0);
        let upsert = |key: &str, body: Value, version: Option<u64>| {
            EntityOp::Upsert(Entity {
                key: key.to_owned(),
                tenant: event.tenant.clone(),
                body: body.to_string(),
                version,
            })
        };
        Ok(match event.kind.as_str() {
            "spy" => {
                let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
                let secret = payload["secret"].as_str().unwrap_or_default();
                seen.push(format!("{}:{secret}", event.tenant));
                vec![upsert(&key, json!({ "seen": *seen }), None)]
            }
            "ops" => (0..n)
                .map(|i| upsert(&format!("{key}-{i}"), json!({ "i": i }), None))
                .collect(),
            "big" => vec![upsert(&key, json!({ "pad": "x".repeat(n as usize) }), None)],
            "deep" => {
                let depth = n as usize;
                let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
                vec![EntityOp::Upsert(Entity {
                    key,
                    tenant: event.tenant.clone(),
                    body,
                    version: None,
                })]
            }
            "version" => {
                let version = match payload["n"].as_str() {
                    Some("max") => u64::MAX,
                    _ => n,
                };
                vec![upsert(&key, json!({ "v": version }), Some(version))]
            }
            "twice" => vec![
                upsert(&key, json!({ "copy": 1 }), Some(7)),
                upsert(&key, json!({ "copy": 2 }), Some(7)),
            ],
            "long-error" => return Err(PluginError::InvalidInput("e".repeat(n as usize))),
            "log-lines" => {
                for i in 0..n {
                    log::info(&format!("line {i}"));
                }
                vec![upsert(&key, json!({ "logged": n }), None)]
            }
            "log-big" => {
                log::info(&"L".repeat(n as usize));
                vec![upsert(&key, json!({ "logged": 1 }), None)]
            }
            "log-forge" => {
                log::info("innocent\n2026-01-01T00:00:00Z ERROR droid_host::server: FORGED");
                vec![upsert(&key, json!({ "logged": 1 }), None)]
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(n));
                vec![upsert(&key, json!({ "slept": n }), None)]
            }
            "spin" => {
                let until = droid_sdk::clock::now_ms() + n;
                let mut x: u64 = 0;
                while droid_sdk::clock::now_ms() < until {
                    for _ in 0..10_000 {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                }
                vec![upsert(&key, json!({ "spun": n }), None)]
            }
            _ => vec![upsert(&key, json!({ "ok": true }), None)],
        })
    }
}

droid_sdk::export_transformer!(Hostile);
