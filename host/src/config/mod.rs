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

mod auth;
mod error;
mod raw;
mod validate;

pub(crate) use raw::parse_toml;
pub(crate) use validate::{RawConnections, check_connection_limits};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use auth::{AuthSettings, KeySettings, Repository};
pub use error::{ConfigError, Problem};

/// Any authenticated issuer, in a record type's `readers`.
pub const ANY_ISSUER: &str = "*";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file the configuration came from; relative paths were resolved against its folder.
    pub source: PathBuf,
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// This node's name in the fleet's reports (`server.node_name`); `None`:
    /// the host name and port.
    pub node_name: Option<String>,
    /// How long clients may take and how many may be connected.
    pub connections: ConnectionLimits,
    /// The most keys one batch read may ask for.
    pub max_batch_keys: usize,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: u64,
    /// What the details of recent failed fetches may hold, in bytes, for the
    /// admin API to show by error id (0 keeps none; the log has them all).
    pub error_journal_bytes: u64,
    /// The change feed's heartbeats and its patience with slow subscribers.
    pub feed: FeedSettings,
    /// How many changes the change log keeps (older ones are trimmed; a
    /// follower further behind must resynchronise).
    pub change_log_retention: u64,
    /// The folder plugin files are loaded from.
    pub plugin_dir: PathBuf,
    /// The folder compiled plugin artifacts are cached in.
    pub cache_dir: PathBuf,
    /// Reloading, rollout and trust of plugin files.
    pub plugins: PluginSettings,
    /// Engine-wide settings of the WebAssembly runtime.
    pub runtime: RuntimeSettings,
    /// The declared record types, by name.
    pub record_types: BTreeMap<String, Arc<RecordTypeConfig>>,
    /// Which store holds records and the change log.
    pub store_backend: StoreBackend,
    /// The embedded store's file.
    pub store_path: PathBuf,
    /// The read cache in front of the store.
    pub store_cache: StoreCache,
    /// The bytes of the store file the embedded engine caches in memory.
    pub store_engine_cache_bytes: u64,
    /// Ingestion sources, by name: which ingested record type each feeds.
    pub sources: BTreeMap<String, SourceConfig>,
    /// The JetStream stream invalidation events of read-through record
    /// types arrive on (`invalidations.stream`), if any.
    pub invalidation_stream: Option<StreamSource>,
    /// How callers' tokens are checked (`[auth]`); `None` when the file has no
    /// `[auth]` section.
    pub auth: Option<AuthSettings>,
    /// The issuers that may use the admin endpoints.
    pub admins: Vec<String>,
    /// The realms tenants' data lives in, and how tenants are placed in them.
    pub tenancy: Tenancy,
    /// Continuous backups (`[backup]`); `None`: none are taken, and a
    /// restore rebuilds from the change log alone while it holds everything.
    pub backup: Option<BackupSettings>,
    /// No authentication at all (`--insecure-no-auth`, never from the file):
    /// every caller may do everything, and every response says so.
    pub insecure_no_auth: bool,
}

/// The change feed (`GET /v1/changes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedSettings {
    /// How often a subscriber with nothing new hears that the feed is alive.
    pub heartbeat: Duration,
    /// How long a subscriber's full buffer is waited on before it is dropped.
    pub send_timeout: Duration,
    /// The most bytes of changes droid holds for one subscriber at a time:
    /// a page read from the log, and what waits to be sent.
    pub subscriber_bytes: usize,
    /// The most bytes all subscribers together may hold; past it, their
    /// streams pause until memory frees up.
    pub buffer_bytes: usize,
    /// The most bytes of the newest changes kept in memory for followers
    /// that are caught up.
    pub tail_bytes: usize,
}

/// Limits on the connections of a listener (droid's and the sidecar's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client may take to send a request's head once it started.
    pub header_timeout: Duration,
    /// How long a connection may stay open with no request in progress and
    /// nothing sent or received.
    pub idle_timeout: Duration,
    /// How long a write may wait for a peer that reads nothing before the
    /// connection is dropped (and what droid buffered for it freed).
    pub write_timeout: Duration,
    /// The most connections open at once. At the cap, a new connection
    /// closes the one idle the longest; when none is idle, it is served from
    /// the reserve, or refused.
    pub max_connections: usize,
    /// Connections served beyond the cap when none is idle, for operations
    /// only (`/healthz`, `/metrics`, the admin API), one request each.
    pub reserve_connections: usize,
}

/// The realms (`[realms.NAME]`) and the rules placing tenants in them
/// (`[tenancy]`). A file without realms has one, `default`, whose store is
/// `[store]` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenancy {
    /// Every realm, by name.
    pub realms: BTreeMap<String, RealmConfig>,
    /// Whether the file declares realms (else the one `default` realm).
    pub declared: bool,
    /// Where a tenant no pin and no rule places goes (`tenancy.default_realm`).
    pub default_realm: String,
    /// The realms this node serves (`tenancy.serve`; all by default).
    pub serve: std::collections::BTreeSet<String>,
    /// Tenants placed by the start of their id, first match wins.
    pub rules: Vec<RealmRule>,
    /// How many migrations may be under way at once.
    pub max_concurrent_migrations: usize,
    /// Records a migration copies, checks or deletes per transaction.
    pub copy_page_records: usize,
    /// How often a node reads the tenant directory again (other nodes' pins
    /// and migrations reach it within this).
    pub refresh: Duration,
    /// The `Retry-After` of a write refused while its tenant migrates (or
    /// is restored, or erased).
    pub retry_after_s: u32,
    /// Records a restore writes per transaction.
    pub restore_batch_records: usize,
    /// How long an erasure proposal waits for a second admin's approval.
    pub erase_approval_window: Duration,
}

/// Continuous backups of every realm served (`[backup]`): where they go,
/// the key their tenants' data keys are wrapped with, and their rhythm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// Where backups are written.
    pub target: BackupTarget,
    /// The file holding the master key (64 hex digits) that wraps every
    /// tenant's data key (`backup.master_key_file`).
    pub master_key_file: PathBuf,
    /// How often the change log is shipped in a segment (at most this much
    /// acknowledged data is lost with the store's disk).
    pub segment_interval: Duration,
    /// The most changes one segment holds.
    pub segment_max_changes: usize,
    /// How often a new chain starts with a fresh snapshot.
    pub snapshot_interval: Duration,
    /// A chain that shipped this many changes starts over with a snapshot.
    pub snapshot_max_changes: u64,
    /// How long backups are kept: every instant this far back stays
    /// restorable, and whole chains older than that go.
    pub retention: Duration,
    /// How often every backup file is verified.
    pub verify_interval: Duration,
}

/// Where backups are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupTarget {
    /// A local folder (`backup.path`): put it on another disk than the
    /// store, or it is lost with it.
    Folder(PathBuf),
    /// An S3-compatible object store (`backup.url = "s3://bucket/prefix"`),
    /// credentials from the environment (`AWS_ACCESS_KEY_ID`, ...).
    S3 {
        /// The bucket.
        bucket: String,
        /// The folder within it ("" for its root).
        prefix: String,
        /// Another endpoint than AWS's (`backup.endpoint`: MinIO, Ceph, R2, ...).
        endpoint: Option<String>,
        /// The region (`backup.region`).
        region: String,
        /// Whether a plain-HTTP endpoint is allowed (`backup.allow_http`).
        allow_http: bool,
        /// The access key id and the file holding its secret
        /// (`backup.access_key_id`, `backup.secret_access_key_file`);
        /// `None`: from the environment (`AWS_ACCESS_KEY_ID`, ...).
        credentials: Option<(String, PathBuf)>,
    },
}

impl std::fmt::Display for BackupTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackupTarget::Folder(path) => write!(f, "{}", path.display()),
            BackupTarget::S3 {
                bucket,
                prefix,
                endpoint,
                ..
            } => {
                write!(f, "s3://{bucket}/{prefix}")?;
                if let Some(endpoint) = endpoint {
                    write!(f, " at {endpoint}")?;
                }
                Ok(())
            }
        }
    }
}

/// One realm: where its data is kept, and where clients reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealmConfig {
    /// Its name.
    pub name: String,
    /// The base URL of the droid nodes serving it (`realms.NAME.public_url`),
    /// given to clients sent there with `421`.
    pub public_url: Option<url::Url>,
    /// Its store.
    pub store: RealmStore,
}

/// Where a realm's records, change log, dead letters and snapshots live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RealmStore {
    /// A redb file of its own (`realms.NAME.path`).
    Embedded(PathBuf),
    /// A PostgreSQL schema of its own (`realms.NAME.schema`), in the
    /// database of `store.url` or its own (`realms.NAME.url`).
    Postgres(crate::store::PostgresOptions),
}

/// Places tenants whose id starts with `tenant_prefix` in `realm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealmRule {
    /// The start of the tenant ids it places.
    pub tenant_prefix: String,
    /// Where.
    pub realm: String,
}

/// Where records and the change log live (`store.backend`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreBackend {
    /// One redb file on this machine (`store.path`): nothing to install, one
    /// node.
    Embedded,
    /// A PostgreSQL schema several nodes share.
    Postgres(crate::store::PostgresOptions),
}

/// The read cache in front of the store (ingested records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreCache {
    /// The most bytes its entries may weigh together; 0 switches it off.
    pub capacity_bytes: u64,
    /// How long an entry is kept at most: the bound on how long a record can be
    /// served stale in the one race the cache cannot rule out (see `store::cached`).
    pub ttl: Duration,
}

/// One ingestion source (`POST /v1/ingest/{source}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    /// The ingested record type whose transformer turns its events into records.
    pub record_type: String,
    /// The agreed ingestion rate, in events per second; `None`: unlimited.
    pub rate_limit: Option<std::num::NonZeroU32>,
    /// How many events may arrive at once above the rate (at least the largest
    /// batch the provider sends); defaults to one second's worth.
    pub burst: Option<std::num::NonZeroU32>,
    /// The window failed events are counted over.
    pub failure_window: Duration,
    /// More failures than this in the window: the source is in a warning state.
    pub warn_above: u64,
    /// More failures than this in the window: an incident (page the provider).
    pub page_above: u64,
    /// The provider's bootstrap endpoint, paged through by `droid backfill`
    /// (the contract is in the README).
    pub bootstrap_url: Option<url::Url>,
    /// The issuers that may post its events, snapshots and backfills.
    pub publishers: Vec<String>,
    /// The most of its requests transformed at once; past it, `429`.
    pub max_in_flight: u32,
    /// The NATS JetStream stream its events are also pulled from, if any.
    pub stream: Option<StreamSource>,
}

/// A JetStream stream a source's events arrive on (`sources.NAME.stream`).
/// Every node pulls from one durable consumer, so each event is handled by
/// one node, and acknowledged only once its changes are committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSource {
    /// The NATS server (`nats://host:4222`; several separated by commas).
    pub url: String,
    /// The stream's name (it must exist).
    pub stream: String,
    /// The subject events are published on (filters the consumer).
    pub subject: String,
    /// The durable consumer the nodes share (created if missing).
    pub durable: String,
    /// The most events pulled and committed at once.
    pub batch: usize,
    /// How long JetStream waits for an acknowledgement before it delivers an
    /// event again (to this node or another).
    pub ack_wait: Duration,
}

/// How plugin files are picked up, rolled out and trusted.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSettings {
    /// Whether the plugin folder and the configuration file are watched for changes.
    pub watch: bool,
    /// How long a changed file must stay quiet after its writer closed it before
    /// it is loaded (a file still open for writing waits for its close, or for
    /// [`PluginSettings::STALLED`] without any change).
    pub settle: Duration,
    /// When new versions replace old ones, and when they are taken back.
    pub rollout: RolloutPolicy,
    /// Which plugin files may be loaded at all.
    pub trust: TrustSettings,
    /// Where rollout decisions (current versions, rollouts, rollbacks) are kept
    /// across restarts.
    pub state_file: PathBuf,
}

impl PluginSettings {
    /// How long a file still open for writing may go without changes before it is
    /// loaded anyway (a writer that never closes it, such as a memory map).
    pub const STALLED: Duration = Duration::from_secs(2);
}

/// When a newly arrived plugin version serves, and when it is rolled back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RolloutPolicy {
    /// The share of tenants a new version serves when it arrives; `100%` replaces
    /// the running version at once, `0%` only stages it for a manual rollout.
    pub initial_share: Share,
    /// How much higher (absolute) a candidate's failure or trap rate may be than
    /// the current version's before it is rolled back automatically.
    pub rollback_margin: f64,
    /// The calls a candidate must have answered before it is judged.
    pub rollback_min_calls: u64,
}

/// Which plugin files are trusted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustSettings {
    /// Refuse any file that is neither pinned nor signed by a trusted key.
    pub required: bool,
    /// SHA-256 hashes (lowercase hex) of files trusted as they are.
    pub pinned_sha256: Vec<String>,
    /// Public keys (PEM files) whose ed25519 signatures (`FILE.wasm.sig`) are trusted.
    pub trusted_keys: Vec<PathBuf>,
}

/// A share of tenants, in hundredths of a percent (0 to 10,000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Share(u16);

impl Share {
    /// Every tenant.
    pub const ALL: Share = Share(10_000);
    /// No tenant.
    pub const NONE: Share = Share(0);

    /// A share of `points` hundredths of a percent, for constants (at most 10,000).
    pub(crate) const fn parse_const(points: u16) -> Share {
        assert!(points <= 10_000);
        Share(points)
    }

    /// The share in hundredths of a percent.
    pub fn basis_points(self) -> u16 {
        self.0
    }

    /// The share as a fraction from 0 to 1.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }

    /// Parses `"5%"`, `"0.5%"` or `"100%"` (at most two decimals).
    pub fn parse(text: &str) -> Result<Share, String> {
        let expected = || {
            format!(
                "expected a percentage from 0% to 100% such as \"5%\" or \"0.5%\", found {text:?}"
            )
        };
        let number = text.trim().strip_suffix('%').ok_or_else(expected)?.trim();
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty()
            || fraction.len() > 2
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(expected());
        }
        let whole: u32 = whole.parse().map_err(|_| expected())?;
        let hundredths: u32 = format!("{fraction:0<2}").parse().map_err(|_| expected())?;
        let points = whole.saturating_mul(100).saturating_add(hundredths);
        if points > 10_000 {
            return Err(expected());
        }
        Ok(Share(points as u16))
    }
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whole, hundredths) = (self.0 / 100, self.0 % 100);
        if hundredths == 0 {
            write!(f, "{whole}%")
        } else if hundredths % 10 == 0 {
            write!(f, "{whole}.{}%", hundredths / 10)
        } else {
            write!(f, "{whole}.{hundredths:02}%")
        }
    }
}

impl serde::Serialize for Share {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Share {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Share::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Engine-wide settings: they size the instance pool shared by every plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// How many plugin instances may exist at once across all record types.
    pub max_instances: u32,
    /// The largest linear memory any plugin may have; per-record-type caps must fit under it.
    pub max_memory_bytes: u64,
    /// The threads plugin calls run on, apart from the HTTP server's.
    pub plugin_threads: usize,
    /// How much lower those threads' priority is (a nice value, 0 to 19).
    pub plugin_nice: i32,
    /// How long a plugin's start-up (its trial instance at load) may take.
    pub startup_deadline: Duration,
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
    /// The most plugin calls for this record type at once: its share of the
    /// instance pool. For a read-through type, the fetches in flight (past
    /// it, a miss is answered `429`).
    pub max_in_flight: u32,
    /// Values the plugin reads through its `config` import.
    pub values: BTreeMap<String, String>,
    /// The issuers that may read its records (`*`: any authenticated one).
    pub readers: Vec<String>,
    /// The issuers that may invalidate its cached records (read-through only).
    pub invalidators: Vec<String>,
    /// JSON pointers of fields that must never be kept in plain text (PII,
    /// user-generated content): absent, null or sealed (see `sensitive`).
    pub sensitive_fields: Vec<String>,
    /// The key sealed values of this record type are made and checked with.
    pub seal_key: Option<crate::sensitive::SecretKey>,
}

impl RecordTypeConfig {
    /// An ingested record type around the transformer at `transformer`, with
    /// default limits, plugin config `values` and no readers: what tools that
    /// run a transformer outside a configuration use (`droid plugins
    /// transform`), so they run it as droid would.
    pub fn around_transformer(
        transformer: &std::path::Path,
        values: BTreeMap<String, String>,
    ) -> Self {
        Self {
            name: "cli".to_owned(),
            mode: Mode::Ingested(IngestedConfig {
                transformer: transformer.display().to_string(),
            }),
            limits: PluginLimits::default(),
            max_in_flight: 16,
            values,
            readers: Vec::new(),
            invalidators: Vec::new(),
            sensitive_fields: Vec::new(),
            seal_key: None,
        }
    }
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
    /// The base URL of the backing store in a realm, by realm
    /// (`realm_base_urls`, like an app's `regionBaseUrl`): a miss for a
    /// tenant of that realm reaches its provider there, and only there.
    /// Realms not named use `base_url`.
    pub realm_base_urls: BTreeMap<String, url::Url>,
    /// Outbound HTTP settings for the adapter.
    pub http: HttpSettings,
    /// The record type's three caches and its stale windows.
    pub cache: CacheSettings,
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

/// Limits on one plugin call and on what it may hand back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginLimits {
    /// Wall-clock budget of one call, including time spent waiting on host calls.
    pub deadline: Duration,
    /// The most linear memory one instance may grow to.
    pub memory_bytes: u64,
    /// The largest record body a plugin may return or write, in bytes.
    pub max_record_bytes: u64,
    /// The deepest nesting of arrays and objects a record body may have
    /// (consumers' recursive parsers fail on deeper ones).
    pub max_json_depth: u32,
    /// The most changes one event may produce.
    pub max_ops_per_event: u32,
    /// The most changes one transformer call (a batch) may produce.
    pub max_ops_per_call: u32,
    /// The longest error message a plugin may report; longer ones are cut.
    pub max_error_bytes: u32,
    /// The most outbound requests one adapter call may send.
    pub max_requests_per_call: u32,
    /// The most log lines one call may write; the rest are dropped and counted.
    pub log_lines_per_call: u32,
    /// The most log bytes one call may write; the rest are dropped and counted.
    pub log_bytes_per_call: u32,
    /// The most log lines per second the record type's plugin may write over
    /// all its calls; the rest are dropped and counted.
    pub log_lines_per_s: u32,
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

    /// The name of the plugin this record type runs: its file name without `.wasm`.
    pub fn plugin_name(&self) -> &str {
        let file = self.plugin_file();
        file.strip_suffix(".wasm").unwrap_or(file)
    }
}

impl RuntimeSettings {
    /// A pool of `max_instances` instances of at most `max_memory_bytes`
    /// each, every other setting at its default (for tools and benchmarks).
    pub fn sized(max_instances: u32, max_memory_bytes: u64) -> Self {
        validate::runtime_defaults(max_instances, max_memory_bytes)
    }
}

impl Default for PluginLimits {
    /// The limits a record type gets when neither it nor `[defaults]` sets any.
    fn default() -> Self {
        validate::DEFAULT_LIMITS
    }
}

#[cfg(test)]
mod tests {
    use super::Share;

    #[test]
    fn shares_parse_and_print() {
        for (text, points, shown) in [
            ("5%", 500, "5%"),
            ("0.5%", 50, "0.5%"),
            ("0.25%", 25, "0.25%"),
            ("100%", 10_000, "100%"),
            (" 10 %", 1_000, "10%"),
            ("0%", 0, "0%"),
        ] {
            let share = Share::parse(text).unwrap();
            assert_eq!(share.basis_points(), points, "{text}");
            assert_eq!(share.to_string(), shown);
        }
        for bad in ["5", "101%", "-1%", "0.125%", "%", "ten%", "1e2%"] {
            assert!(Share::parse(bad).is_err(), "{bad}");
        }
    }
}
