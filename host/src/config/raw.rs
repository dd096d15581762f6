//! The configuration file exactly as written, before defaults and cross-field checks.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::error::{ConfigError, Problem};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub plugins: RawPlugins,
    #[serde(default)]
    pub runtime: RawRuntime,
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub record_types: BTreeMap<String, RawRecordType>,
    #[serde(default)]
    pub store: RawStore,
    #[serde(default)]
    pub sources: BTreeMap<String, RawSource>,
    #[serde(default)]
    pub invalidations: RawInvalidations,
    pub auth: Option<RawAuth>,
    #[serde(default)]
    pub realms: BTreeMap<String, RawRealm>,
    #[serde(default)]
    pub tenancy: RawTenancy,
    pub backup: Option<RawBackup>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackup {
    pub path: Option<String>,
    pub url: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key_file: Option<String>,
    pub master_key_file: Option<String>,
    pub segment_interval_ms: Option<u64>,
    pub segment_max_changes: Option<u64>,
    pub snapshot_interval_s: Option<u64>,
    pub snapshot_max_changes: Option<u64>,
    pub retention_s: Option<u64>,
    pub verify_interval_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRealm {
    pub public_url: Option<String>,
    pub path: Option<String>,
    pub schema: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTenancy {
    pub default_realm: Option<String>,
    pub serve: Option<Vec<String>>,
    #[serde(default)]
    pub rules: Vec<RawRealmRule>,
    pub max_concurrent_migrations: Option<u64>,
    pub copy_page_records: Option<u64>,
    pub refresh_ms: Option<u64>,
    pub retry_after_s: Option<u64>,
    pub restore_batch_records: Option<u64>,
    pub erase_approval_window_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRealmRule {
    pub tenant_prefix: Option<String>,
    pub realm: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInvalidations {
    pub stream: Option<RawStream>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub audience: Option<String>,
    pub key_repositories: Option<Vec<String>>,
    pub clock_skew_s: Option<u64>,
    pub replay_protect_reads: Option<bool>,
    pub admins: Option<Vec<String>>,
    pub key_cache_entries: Option<u64>,
    pub key_max_age_s: Option<u64>,
    pub key_fetch_timeout_ms: Option<u64>,
    pub replay_entries: Option<u64>,
    pub verified_entries: Option<u64>,
    pub key_fetch_concurrency: Option<u64>,
    pub key_fetches_per_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub backend: Option<String>,
    pub url: Option<String>,
    pub schema: Option<String>,
    pub pool_size: Option<u64>,
    pub statement_timeout_ms: Option<u64>,
    pub connect_timeout_ms: Option<u64>,
    pub poll_interval_ms: Option<u64>,
    pub path: Option<String>,
    pub cache_bytes: Option<u64>,
    pub cache_ttl_ms: Option<u64>,
    pub change_log_retention: Option<u64>,
    pub engine_cache_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub record_type: Option<String>,
    pub rate_limit: Option<u64>,
    pub burst: Option<u64>,
    pub failure_window_s: Option<u64>,
    pub warn_above: Option<u64>,
    pub page_above: Option<u64>,
    pub bootstrap_url: Option<String>,
    pub publishers: Option<Vec<String>>,
    pub max_in_flight: Option<u32>,
    pub stream: Option<RawStream>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStream {
    pub url: Option<String>,
    pub stream: Option<String>,
    pub subject: Option<String>,
    pub durable: Option<String>,
    pub batch: Option<u64>,
    pub ack_wait_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub listen: Option<String>,
    pub node_name: Option<String>,
    pub max_batch_keys: Option<usize>,
    pub max_body_bytes: Option<u64>,
    pub error_journal_bytes: Option<u64>,
    pub feed_heartbeat_ms: Option<u64>,
    pub feed_send_timeout_ms: Option<u64>,
    pub feed_subscriber_bytes: Option<u64>,
    pub feed_buffer_bytes: Option<u64>,
    pub feed_tail_bytes: Option<u64>,
    pub header_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub write_timeout_ms: Option<u64>,
    pub max_connections: Option<u64>,
    pub reserve_connections: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugins {
    pub dir: Option<String>,
    pub cache_dir: Option<String>,
    pub state_file: Option<String>,
    pub watch: Option<bool>,
    pub settle_ms: Option<u64>,
    pub initial_share: Option<String>,
    pub rollback_margin: Option<String>,
    pub rollback_min_calls: Option<u64>,
    pub require_trust: Option<bool>,
    #[serde(default)]
    pub pinned_sha256: Vec<String>,
    #[serde(default)]
    pub trusted_keys: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRuntime {
    pub max_instances: Option<u32>,
    pub max_memory_mib: Option<u64>,
    pub plugin_threads: Option<u64>,
    pub plugin_nice: Option<u64>,
    pub startup_deadline_ms: Option<u64>,
}

/// Defaults applied to every record type that does not set the field itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub http: RawHttp,
    #[serde(default)]
    pub cache: RawCache,
    pub max_in_flight: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecordType {
    pub mode: Option<String>,
    pub adapter: Option<String>,
    pub base_url: Option<String>,
    pub realm_base_urls: Option<BTreeMap<String, String>>,
    pub transformer: Option<String>,
    #[serde(default)]
    pub limits: RawLimits,
    pub http: Option<RawHttp>,
    pub cache: Option<RawCache>,
    pub max_in_flight: Option<u32>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    pub readers: Option<Vec<String>>,
    pub invalidators: Option<Vec<String>>,
    pub sensitive_fields: Option<Vec<String>>,
    pub seal_key_file: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub deadline_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub max_record_bytes: Option<u64>,
    pub max_json_depth: Option<u64>,
    pub max_ops_per_event: Option<u64>,
    pub max_ops_per_call: Option<u64>,
    pub max_error_bytes: Option<u64>,
    pub max_requests_per_call: Option<u64>,
    pub log_lines_per_call: Option<u64>,
    pub log_bytes_per_call: Option<u64>,
    pub log_lines_per_s: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub connect_timeout_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub max_response_bytes: Option<u64>,
    pub retries: Option<u32>,
    pub retry_backoff_ms: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    #[serde(default)]
    pub found: RawCachePolicy,
    #[serde(default)]
    pub not_found: RawCachePolicy,
    #[serde(default)]
    pub error: RawCachePolicy,
    pub stale_while_revalidate_ms: Option<u64>,
    pub stale_if_error_ms: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCachePolicy {
    pub enabled: Option<bool>,
    pub capacity_bytes: Option<u64>,
    pub ttl_ms: Option<u64>,
}

/// Parses the file's TOML, naming the offending field and line on failure.
pub(super) fn parse(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    parse_toml(path, text)
}

/// Parses TOML into `T`, naming the offending field and line on failure (the
/// sidecar's file uses it too).
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| syntax_error(path, text, &e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.span().map(|span| line_of(text, span.start));
        ConfigError::Invalid {
            file: path.to_path_buf(),
            problems: vec![Problem {
                field: if field == "." { String::new() } else { field },
                line,
                message: inner.message().to_owned(),
            }],
        }
    })
}

fn syntax_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    ConfigError::Invalid {
        file: path.to_path_buf(),
        problems: vec![Problem {
            field: String::new(),
            line: e.span().map(|span| line_of(text, span.start)),
            message: format!("invalid TOML: {}", e.message()),
        }],
    }
}

/// The 1-based line holding byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
