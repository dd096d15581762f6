//! The one configuration file, `droid.toml`: its schema, and the checks that turn it
//! into a [`Config`] the rest of the host can trust.
//!
//! Loading happens in two steps. [`raw`] mirrors the file with serde (unknown fields
//! are refused, so a typo never passes silently); [`validate`] then resolves defaults,
//! relative paths and cross-field rules, collecting every problem it finds so an
//! operator fixes them in one pass. Every error names the file, the field and what
//! was expected.
//!
//! This module does not read plugin files or open sockets: whether a plugin loads is
//! the plugin registry's business.

mod error;
mod raw;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use error::{ConfigError, Problem};

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file the configuration came from; relative paths were resolved against its folder.
    pub source: PathBuf,
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// The most keys one batch read may ask for.
    pub max_batch_keys: usize,
    /// The folder plugin files are loaded from.
    pub plugin_dir: PathBuf,
    /// The folder compiled plugin artifacts are cached in.
    pub cache_dir: PathBuf,
    /// Engine-wide settings of the WebAssembly runtime.
    pub runtime: RuntimeSettings,
    /// The declared record types, by name.
    pub record_types: BTreeMap<String, Arc<RecordTypeConfig>>,
}

/// Engine-wide settings: they size the instance pool shared by every plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// How many plugin instances may exist at once across all record types.
    pub max_instances: u32,
    /// The largest linear memory any plugin may have; per-record-type caps must fit under it.
    pub max_memory_bytes: u64,
}

/// One declared record type.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordTypeConfig {
    /// The record type's name, as used in `/v1/entity/{record_type}/{key}`.
    pub name: String,
    /// How records of this type get into droid.
    pub mode: Mode,
    /// Limits on every plugin call made for this record type.
    pub limits: PluginLimits,
    /// Values the plugin reads through its `config` import.
    pub values: BTreeMap<String, String>,
}

/// How records of a type get into droid.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Fetched from the provider's backing store on a miss, through an adapter plugin.
    ReadThrough(Box<ReadThroughConfig>),
    /// Written by a transformer plugin from the provider's events.
    Ingested(IngestedConfig),
}

/// Settings of a read-through record type.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadThroughConfig {
    /// The adapter plugin's file name inside the plugin folder.
    pub adapter: String,
    /// The only URL prefix the adapter may send requests to.
    pub base_url: url::Url,
    /// Outbound HTTP settings for the adapter.
    pub http: HttpSettings,
    /// The record type's three caches and its stale windows.
    pub cache: CacheSettings,
    /// The most fetches from the backing store in flight at once; past it, misses
    /// are answered with `429` at once.
    pub max_in_flight: u32,
}

/// How one record type caches what its adapter returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Records found (`200`).
    pub found: CachePolicy,
    /// Keys the backing store does not have (`404`).
    pub not_found: CachePolicy,
    /// Every other outcome: backing-store errors, timeouts, plugin failures.
    pub error: CachePolicy,
    /// How long past its TTL a found record may still be served while one
    /// background fetch refreshes it.
    pub stale_while_revalidate: Duration,
    /// How long past its TTL a found record may still be served when the backing
    /// store fails, times out or the in-flight limit is hit.
    pub stale_if_error: Duration,
}

/// One of the three caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Whether this outcome is cached at all (always true for found records).
    pub enabled: bool,
    /// The most bytes its entries may weigh together (keys and bodies included).
    pub capacity_bytes: u64,
    /// How long an entry stays fresh.
    pub ttl: Duration,
}

/// Settings of an ingested record type.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestedConfig {
    /// The transformer plugin's file name inside the plugin folder.
    pub transformer: String,
}

/// Limits on one plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Wall-clock budget of one call, including time spent waiting on host calls.
    pub deadline: Duration,
    /// The most linear memory one instance may grow to.
    pub memory_bytes: u64,
}

/// Outbound HTTP settings of an adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// How long establishing a connection may take.
    pub connect_timeout: Duration,
    /// How long one request may take, from sending it to the end of the body.
    pub request_timeout: Duration,
    /// The largest response body accepted, in bytes.
    pub max_response_bytes: u64,
    /// How many times an idempotent request is retried after a connection failure,
    /// an attempt timeout or a `502`/`503`/`504`.
    pub retries: u32,
    /// The wait before the first retry; it doubles for each further one.
    pub retry_backoff: Duration,
}

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            file: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// Validates configuration text as if it had been read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw = raw::parse(path, text)?;
        validate::validate(path, raw)
    }

    /// The read-through settings of record type `name`, if it is a read-through type.
    pub fn read_through(&self, name: &str) -> Option<&ReadThroughConfig> {
        match &self.record_types.get(name)?.mode {
            Mode::ReadThrough(rt) => Some(rt),
            Mode::Ingested(_) => None,
        }
    }

    /// The record type called `name`, if it is declared.
    pub fn record_type(&self, name: &str) -> Option<&Arc<RecordTypeConfig>> {
        self.record_types.get(name)
    }
}

impl RecordTypeConfig {
    /// The plugin file this record type runs.
    pub fn plugin_file(&self) -> &str {
        match &self.mode {
            Mode::ReadThrough(rt) => &rt.adapter,
            Mode::Ingested(ing) => &ing.transformer,
        }
    }
}

impl Default for PluginLimits {
    /// The limits a record type gets when neither it nor `[defaults]` sets any.
    fn default() -> Self {
        validate::DEFAULT_LIMITS
    }
}
