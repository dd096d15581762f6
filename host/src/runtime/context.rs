//! What a plugin call knows about the record type it runs for.

use std::collections::BTreeMap;

use super::outbound::Outbound;
use crate::config::{Mode, PluginLimits, RecordTypeConfig};

/// A record type's view of the runtime: its limits, its configuration values and,
/// for read-through types, its outbound HTTP. Built once per record type and shared
/// by every call made for it.
#[derive(Debug)]
pub struct PluginContext {
    pub(crate) record_type: String,
    pub(crate) limits: PluginLimits,
    pub(crate) values: BTreeMap<String, String>,
    pub(crate) outbound: Option<Outbound>,
    /// The record type's sensitive fields and seal key, checked in every record
    /// its adapter returns.
    pub(crate) sensitive_fields: Vec<String>,
    pub(crate) seal_key: Option<crate::sensitive::SecretKey>,
}

impl PluginContext {
    /// The context for `config`'s record type.
    pub fn new(config: &RecordTypeConfig) -> Result<Self, reqwest::Error> {
        let outbound = match &config.mode {
            Mode::ReadThrough(rt) => {
                Some(Outbound::new(&config.name, rt.base_url.clone(), rt.http)?)
            }
            Mode::Ingested(_) => None,
        };
        let mut values = config.values.clone();
        if let Some(key) = &config.seal_key {
            values.insert(crate::sensitive::SEAL_KEY_VALUE.to_owned(), key.hex());
        }
        Ok(Self {
            record_type: config.name.clone(),
            limits: config.limits,
            values,
            outbound,
            sensitive_fields: config.sensitive_fields.clone(),
            seal_key: config.seal_key,
        })
    }

    /// The context of the trial instance every loaded plugin gets before it may
    /// serve: no record type, no configuration values, no network.
    pub(crate) fn trial(memory_bytes: u64) -> Self {
        Self {
            record_type: "(load check)".to_owned(),
            limits: PluginLimits {
                deadline: std::time::Duration::from_secs(2),
                memory_bytes,
            },
            values: BTreeMap::new(),
            outbound: None,
            sensitive_fields: Vec::new(),
            seal_key: None,
        }
    }

    /// The record type this context belongs to.
    pub fn record_type(&self) -> &str {
        &self.record_type
    }
}
