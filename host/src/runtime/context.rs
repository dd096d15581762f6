//! What a plugin call knows about the record type it runs for.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::logs::LogBudget;
use super::outbound::Outbound;
use crate::config::{Mode, PluginLimits, RecordTypeConfig};

/// A record type's view of the runtime: its limits, its configuration values,
/// for read-through types its outbound HTTP, and its share of the instance
/// pool. Built once per record type and shared by every call made for it.
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
    /// The record type's share of the instance pool: a call holds one slot
    /// from before it instantiates until its store is dropped. The shares of
    /// all record types fit in the pool (checked with the configuration), so
    /// no record type can take the instances another needs.
    pub(crate) slots: Arc<Semaphore>,
    slot_count: u32,
    /// What the record type's plugin may still log this second.
    pub(crate) log_budget: Arc<LogBudget>,
    /// The context of a realm whose backing store has a base URL of its own
    /// (`realm_base_urls`), by realm: the same in all but its outbound HTTP,
    /// which reaches that realm's URL only.
    realms: BTreeMap<String, Arc<PluginContext>>,
}

impl PluginContext {
    /// The context for `config`'s record type. The call slots and the log
    /// budget of `previous` (the same record type's context before a
    /// configuration change) are kept when their sizes did not change, so
    /// calls still running on the old context count against the new one.
    pub fn new(
        config: &RecordTypeConfig,
        previous: Option<&PluginContext>,
    ) -> Result<Self, reqwest::Error> {
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
        let slots = match previous {
            Some(old) if old.slot_count == config.max_in_flight => old.slots.clone(),
            _ => Arc::new(Semaphore::new(config.max_in_flight as usize)),
        };
        let log_budget = match previous {
            Some(old) if old.log_budget.per_second() == config.limits.log_lines_per_s => {
                old.log_budget.clone()
            }
            _ => Arc::new(LogBudget::new(config.limits.log_lines_per_s)),
        };
        let mut context = Self {
            record_type: config.name.clone(),
            limits: config.limits,
            values,
            outbound,
            sensitive_fields: config.sensitive_fields.clone(),
            seal_key: config.seal_key,
            slots,
            slot_count: config.max_in_flight,
            log_budget,
            realms: BTreeMap::new(),
        };
        if let Mode::ReadThrough(rt) = &config.mode {
            for (realm, url) in &rt.realm_base_urls {
                let realm_context = Self {
                    outbound: Some(Outbound::new(&config.name, url.clone(), rt.http)?),
                    realms: BTreeMap::new(),
                    values: context.values.clone(),
                    sensitive_fields: context.sensitive_fields.clone(),
                    record_type: context.record_type.clone(),
                    slots: context.slots.clone(),
                    log_budget: context.log_budget.clone(),
                    ..context
                };
                context
                    .realms
                    .insert(realm.clone(), Arc::new(realm_context));
            }
        }
        Ok(context)
    }

    /// The context of calls for tenants of `realm`: its own when the record
    /// type names a base URL for that realm, else `this`.
    pub fn in_realm(this: &Arc<Self>, realm: Option<&str>) -> Arc<Self> {
        realm
            .and_then(|r| this.realms.get(r))
            .unwrap_or(this)
            .clone()
    }

    /// The context of the trial instance every loaded plugin gets before it may
    /// serve: no record type, no configuration values, no network, the
    /// runtime's start-up deadline.
    pub(crate) fn trial(memory_bytes: u64, deadline: Duration) -> Self {
        Self {
            record_type: "(load check)".to_owned(),
            limits: PluginLimits {
                deadline,
                memory_bytes,
                ..PluginLimits::default()
            },
            values: BTreeMap::new(),
            outbound: None,
            sensitive_fields: Vec::new(),
            seal_key: None,
            slots: Arc::new(Semaphore::new(1)),
            slot_count: 1,
            log_budget: Arc::new(LogBudget::new(PluginLimits::default().log_lines_per_s)),
            realms: BTreeMap::new(),
        }
    }

    /// The record type this context belongs to.
    pub fn record_type(&self) -> &str {
        &self.record_type
    }

    /// The limits its calls run under.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }
}
