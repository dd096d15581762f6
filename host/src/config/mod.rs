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
    ReadThrough(ReadThroughConfig),
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
