//! Turns the file as written into a [`Config`]: defaults, resolved paths and every
//! cross-field rule. Problems are collected, not returned at the first one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::raw::{RawConfig, RawPlugins, RawStore};
use super::{
    Config, ConfigError, PluginSettings, Problem, RecordTypeConfig, RolloutPolicy, RuntimeSettings,
    Share, StoreBackend, StoreCache, TrustSettings,
};

mod backup;
mod grants;
mod realms;
mod record_type;
mod server;
mod sources;

pub(super) use record_type::DEFAULT_LIMITS;
use record_type::{Defaults, cache, check_base_url, http, limits, record_type};
pub(crate) use server::{RawConnections, check_connection_limits};
use sources::sources;

const MIB: u64 = 1024 * 1024;

/// Defaults, chosen for a backing store in the same region answering in milliseconds.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_PLUGIN_DIR: &str = "plugins";
const DEFAULT_CACHE_DIR: &str = ".droid/cache";
const DEFAULT_STATE_FILE: &str = ".droid/plugin-state.json";
const DEFAULT_STORE_PATH: &str = ".droid/store.redb";
const DEFAULT_MAX_INSTANCES: u32 = 256;
const DEFAULT_MAX_MEMORY_MIB: u64 = 256;
/// Long enough to let an editor's or `cp`'s last write land, short enough that a
/// reload is still quick.
const DEFAULT_SETTLE: Duration = Duration::from_millis(20);
/// A candidate may fail 5 percentage points more often than the version it replaces.
const DEFAULT_ROLLBACK_MARGIN: Share = Share::parse_const(500);
/// Enough calls that a handful of unlucky ones does not decide.
const DEFAULT_ROLLBACK_MIN_CALLS: u64 = 100;
/// How long a plugin's start-up may take at load.
const DEFAULT_STARTUP_DEADLINE_MS: u64 = 2_000;
/// Plugin threads run this much below the server's priority.
const DEFAULT_PLUGIN_NICE: u64 = 10;
/// The embedded store's own page cache.
const DEFAULT_ENGINE_CACHE_BYTES: u64 = 64 * MIB;
const DEFAULT_MAX_BATCH_KEYS: usize = 100;
const DEFAULT_MAX_IN_FLIGHT: u32 = 16;

/// Collects problems while validation walks the file.
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            field: field.into(),
            line: None,
            message: message.into(),
        });
    }

    /// The value of an optional numeric field: the file's when it sets one (checked
    /// against `min..=max` and reported under `table.key` otherwise), else `inherited`.
    fn number(
        &mut self,
        table: &str,
        key: &str,
        raw: Option<u64>,
        inherited: u64,
        min: u64,
        max: u64,
    ) -> u64 {
        let field = if table.is_empty() {
            key.to_owned()
        } else {
            format!("{table}.{key}")
        };
        match raw {
            Some(value) => self.in_range(&field, value, min, max),
            None => inherited,
        }
    }

    /// Like [`Checker::number`], for a duration given in milliseconds.
    fn millis(
        &mut self,
        table: &str,
        key: &str,
        raw: Option<u64>,
        inherited: Duration,
        min: u64,
        max: u64,
    ) -> Duration {
        Duration::from_millis(self.number(table, key, raw, inherited.as_millis() as u64, min, max))
    }

    /// Checks that `value` lies in `min..=max`, reporting it under `field` otherwise.
    fn in_range(&mut self, field: &str, value: u64, min: u64, max: u64) -> u64 {
        if value < min || value > max {
            self.problem(
                field,
                format!("expected a number from {min} to {max}, found {value}"),
            );
        }
        value
    }
}

pub(super) fn validate(path: &Path, raw: RawConfig) -> Result<Config, ConfigError> {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();

    let listen_text = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        c.problem(
            "server.listen",
            format!(
                "expected an address and port such as \"127.0.0.1:8080\", found {listen_text:?}"
            ),
        );
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });

    let plugins = plugin_settings(&mut c, &base_dir, &raw.plugins);
    let plugin_dir = resolve_dir(
        &mut c,
        &base_dir,
        "plugins.dir",
        raw.plugins.dir,
        DEFAULT_PLUGIN_DIR,
    );
    let cache_dir = resolve_dir(
        &mut c,
        &base_dir,
        "plugins.cache_dir",
        raw.plugins.cache_dir,
        DEFAULT_CACHE_DIR,
    );

    let max_instances = raw.runtime.max_instances.unwrap_or(DEFAULT_MAX_INSTANCES);
    c.in_range("runtime.max_instances", u64::from(max_instances), 1, 10_000);
    let max_memory_mib = raw.runtime.max_memory_mib.unwrap_or(DEFAULT_MAX_MEMORY_MIB);
    c.in_range("runtime.max_memory_mib", max_memory_mib, 1, 4_096);
    let base = runtime_defaults(max_instances, max_memory_mib * MIB);
    let runtime = RuntimeSettings {
        plugin_threads: c.number(
            "runtime",
            "plugin_threads",
            raw.runtime.plugin_threads,
            base.plugin_threads as u64,
            1,
            1_024,
        ) as usize,
        plugin_nice: c.number(
            "runtime",
            "plugin_nice",
            raw.runtime.plugin_nice,
            base.plugin_nice as u64,
            0,
            19,
        ) as i32,
        startup_deadline: c.millis(
            "runtime",
            "startup_deadline_ms",
            raw.runtime.startup_deadline_ms,
            base.startup_deadline,
            1,
            600_000,
        ),
        ..base
    };

    let defaults = Defaults {
        limits: limits(
            &mut c,
            "defaults.limits",
            raw.defaults.limits,
            None,
            max_memory_mib,
        ),
        http: http(&mut c, "defaults.http", raw.defaults.http, None),
        cache: cache(&mut c, "defaults.cache", raw.defaults.cache, None),
        max_in_flight: c.number(
            "defaults",
            "max_in_flight",
            raw.defaults.max_in_flight.map(u64::from),
            u64::from(DEFAULT_MAX_IN_FLIGHT),
            1,
            10_000,
        ) as u32,
        max_memory_mib,
    };
    let max_batch_keys = c.number(
        "server",
        "max_batch_keys",
        raw.server.max_batch_keys.map(|n| n as u64),
        DEFAULT_MAX_BATCH_KEYS as u64,
        1,
        10_000,
    ) as usize;
    let max_body_bytes = c.number(
        "server",
        "max_body_bytes",
        raw.server.max_body_bytes,
        2 * MIB,
        1024,
        1024 * MIB,
    );
    let error_journal_bytes = c.number(
        "server",
        "error_journal_bytes",
        raw.server.error_journal_bytes,
        4 * MIB,
        0,
        1024 * MIB,
    );
    let feed = server::feed(&mut c, &raw.server);
    let connections = server::connection_limits(
        &mut c,
        "server",
        RawConnections {
            header_timeout_ms: raw.server.header_timeout_ms,
            idle_timeout_ms: raw.server.idle_timeout_ms,
            write_timeout_ms: raw.server.write_timeout_ms,
            max_connections: raw.server.max_connections,
            reserve_connections: raw.server.reserve_connections,
        },
    );

    if raw.record_types.is_empty() {
        c.problem(
            "record_types",
            "no record types declared; add a [record_types.NAME] table",
        );
    }
    let mut record_types = BTreeMap::new();
    for (name, rt) in raw.record_types {
        let field = format!("record_types.{name}");
        if let Err(why) = check_record_type_name(&name) {
            c.problem(&field, why);
        }
        let rt = record_type(&mut c, &field, &name, rt, &defaults, &base_dir);
        if let Some(rt) = rt {
            record_types.insert(name, Arc::new(rt));
        }
    }

    let sources = sources(&mut c, raw.sources, &record_types);
    let invalidation_stream = raw
        .invalidations
        .stream
        .and_then(|raw| sources::stream_source(&mut c, "invalidations.stream", raw));
    pool_shares(&mut c, &runtime, &record_types);
    let (auth, admins) = grants::auth(&mut c, &base_dir, raw.auth);
    let node_name = raw.server.node_name.clone();
    if let Some(name) = &node_name
        && (name.is_empty() || name.len() > 128 || name.chars().any(char::is_control))
    {
        c.problem(
            "server.node_name",
            "expected 1 to 128 characters without control characters",
        );
    }
    let store_backend = store_backend(&mut c, &raw.store);
    let store_path = resolve_dir(
        &mut c,
        &base_dir,
        "store.path",
        raw.store.path,
        DEFAULT_STORE_PATH,
    );
    let change_log_retention = c.number(
        "store",
        "change_log_retention",
        raw.store.change_log_retention,
        1_000_000,
        1,
        u64::MAX,
    );
    let store_cache = StoreCache {
        capacity_bytes: c.number(
            "store",
            "cache_bytes",
            raw.store.cache_bytes,
            256 << 20,
            0,
            1 << 40,
        ),
        ttl: Duration::from_millis(c.number(
            "store",
            "cache_ttl_ms",
            raw.store.cache_ttl_ms,
            60_000,
            1,
            86_400_000,
        )),
    };
    let tenancy = realms::tenancy(
        &mut c,
        &base_dir,
        raw.realms,
        raw.tenancy,
        &store_backend,
        &store_path,
    );
    for (name, rt) in &record_types {
        if let crate::config::Mode::ReadThrough(read) = &rt.mode {
            for realm in read.realm_base_urls.keys() {
                if !tenancy.realms.contains_key(realm) {
                    c.problem(
                        format!("record_types.{name}.realm_base_urls.{realm}"),
                        format!("no realm named {realm:?} is declared"),
                    );
                }
            }
        }
    }
    let backup = raw
        .backup
        .map(|raw| backup::backup(&mut c, &base_dir, &store_path, raw));
    let store_engine_cache_bytes = c.number(
        "store",
        "engine_cache_bytes",
        raw.store.engine_cache_bytes,
        DEFAULT_ENGINE_CACHE_BYTES,
        MIB,
        1 << 40,
    );

    if !c.problems.is_empty() {
        return Err(ConfigError::Invalid {
            file: path.to_path_buf(),
            problems: c.problems,
        });
    }
    Ok(Config {
        source: path.to_path_buf(),
        listen,
        node_name,
        connections,
        max_batch_keys,
        max_body_bytes,
        error_journal_bytes,
        feed,
        change_log_retention,
        plugin_dir,
        cache_dir,
        plugins,
        runtime,
        record_types,
        store_backend,
        store_path,
        store_cache,
        store_engine_cache_bytes,
        sources,
        invalidation_stream,
        auth,
        admins,
        tenancy,
        backup,
        insecure_no_auth: false,
    })
}

/// `store.backend` and, for PostgreSQL, how to reach it.
fn store_backend(c: &mut Checker, raw: &RawStore) -> StoreBackend {
    let postgres_only = [
        ("url", raw.url.is_some()),
        ("schema", raw.schema.is_some()),
        ("pool_size", raw.pool_size.is_some()),
        ("statement_timeout_ms", raw.statement_timeout_ms.is_some()),
        ("connect_timeout_ms", raw.connect_timeout_ms.is_some()),
        ("poll_interval_ms", raw.poll_interval_ms.is_some()),
    ];
    match raw.backend.as_deref().unwrap_or("embedded") {
        "embedded" => {
            for (key, set) in postgres_only {
                if set {
                    c.problem(
                        format!("store.{key}"),
                        "applies to backend = \"postgres\" only (this store is embedded)",
                    );
                }
            }
            StoreBackend::Embedded
        }
        "postgres" => {
            if raw.path.is_some() || raw.engine_cache_bytes.is_some() {
                c.problem(
                    "store.path",
                    "path and engine_cache_bytes apply to the embedded store only (backend is \"postgres\")",
                );
            }
            let url = match raw.url.as_deref() {
                None | Some("") => {
                    c.problem(
                        "store.url",
                        "backend = \"postgres\" needs the database's URL (postgresql://user:password@host:port/database)",
                    );
                    String::new()
                }
                Some(url) => {
                    if let Err(e) = url.parse::<postgres::Config>() {
                        c.problem(
                            "store.url",
                            format!("not a PostgreSQL connection string or URL: {e}"),
                        );
                    }
                    url.to_owned()
                }
            };
            let schema = raw.schema.clone().unwrap_or_else(|| "droid".to_owned());
            if let Err(why) = check_schema_name(&schema) {
                c.problem("store.schema", why);
            }
            StoreBackend::Postgres(crate::store::PostgresOptions {
                url,
                schema,
                pool_size: c.number("store", "pool_size", raw.pool_size, 16, 1, 1_000) as u32,
                statement_timeout: c.millis(
                    "store",
                    "statement_timeout_ms",
                    raw.statement_timeout_ms,
                    Duration::from_secs(5),
                    1,
                    3_600_000,
                ),
                connect_timeout: c.millis(
                    "store",
                    "connect_timeout_ms",
                    raw.connect_timeout_ms,
                    Duration::from_secs(5),
                    1,
                    600_000,
                ),
                poll_interval: c.millis(
                    "store",
                    "poll_interval_ms",
                    raw.poll_interval_ms,
                    Duration::from_secs(1),
                    10,
                    600_000,
                ),
            })
        }
        other => {
            c.problem(
                "store.backend",
                format!("expected \"embedded\" or \"postgres\", found {other:?}"),
            );
            StoreBackend::Embedded
        }
    }
}

/// A schema name droid can put in SQL as it is: lower-case letters, digits
/// and `_`, not starting with a digit, at most 48 bytes (PostgreSQL's limit
/// is 63, and droid names its notification channel after the schema).
fn check_schema_name(name: &str) -> Result<(), String> {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let starts_well = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    if plain && starts_well && name.len() <= 48 && !name.starts_with("pg_") {
        Ok(())
    } else {
        Err(format!(
            "expected a plain schema name (a-z, 0-9 and _, not starting with a digit or pg_, at most 48 bytes), found {name:?}"
        ))
    }
}

/// `[plugins]` beyond its folders: watching, rollout and trust.
fn plugin_settings(c: &mut Checker, base: &Path, raw: &RawPlugins) -> PluginSettings {
    let mut share = |field: &str, value: &Option<String>, default: Share| match value {
        Some(text) => Share::parse(text).unwrap_or_else(|why| {
            c.problem(format!("plugins.{field}"), why);
            default
        }),
        None => default,
    };
    let initial_share = share("initial_share", &raw.initial_share, Share::ALL);
    let margin = share(
        "rollback_margin",
        &raw.rollback_margin,
        DEFAULT_ROLLBACK_MARGIN,
    );
    let settle = c.millis(
        "plugins",
        "settle_ms",
        raw.settle_ms,
        DEFAULT_SETTLE,
        0,
        60_000,
    );
    let rollback_min_calls = c.number(
        "plugins",
        "rollback_min_calls",
        raw.rollback_min_calls,
        DEFAULT_ROLLBACK_MIN_CALLS,
        1,
        10_000_000,
    );
    for (i, pin) in raw.pinned_sha256.iter().enumerate() {
        if pin.len() != 64
            || !pin
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            c.problem(
                format!("plugins.pinned_sha256[{i}]"),
                format!("expected a SHA-256 hash as 64 lowercase hex digits (`sha256sum FILE`), found {pin:?}"),
            );
        }
    }
    let trusted_keys = raw
        .trusted_keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            if key.trim().is_empty() {
                c.problem(
                    format!("plugins.trusted_keys[{i}]"),
                    "expected the path of a public key file (PEM), found an empty string",
                );
            }
            base.join(key)
        })
        .collect();
    let required = raw.require_trust.unwrap_or(false);
    if required && raw.pinned_sha256.is_empty() && raw.trusted_keys.is_empty() {
        c.problem(
            "plugins.require_trust",
            "trust is required but nothing is trusted: add pinned_sha256 entries or trusted_keys",
        );
    }
    PluginSettings {
        watch: raw.watch.unwrap_or(true),
        settle,
        rollout: RolloutPolicy {
            initial_share,
            rollback_margin: margin.fraction(),
            rollback_min_calls,
        },
        trust: TrustSettings {
            required,
            pinned_sha256: raw.pinned_sha256.clone(),
            trusted_keys,
        },
        state_file: resolve_dir(
            c,
            base,
            "plugins.state_file",
            raw.state_file.clone(),
            DEFAULT_STATE_FILE,
        ),
    }
}

fn resolve_dir(
    c: &mut Checker,
    base: &Path,
    field: &str,
    value: Option<String>,
    default: &str,
) -> PathBuf {
    let value = value.unwrap_or_else(|| default.to_owned());
    if value.trim().is_empty() {
        c.problem(field, "expected a folder path, found an empty string");
    }
    base.join(value)
}

/// Runtime settings with a pool of `max_instances` instances of at most
/// `max_memory_bytes` each and every other setting at its default: one plugin
/// thread per core, at nice 10, two seconds for a plugin's start-up.
pub(super) fn runtime_defaults(max_instances: u32, max_memory_bytes: u64) -> RuntimeSettings {
    RuntimeSettings {
        max_instances,
        max_memory_bytes,
        plugin_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        plugin_nice: DEFAULT_PLUGIN_NICE as i32,
        startup_deadline: Duration::from_millis(DEFAULT_STARTUP_DEADLINE_MS),
    }
}

/// Every record type's share of the instance pool (its `max_in_flight`)
/// must fit in the pool, with one instance to spare for loading plugins:
/// then no record type can take the instances another needs.
fn pool_shares(
    c: &mut Checker,
    runtime: &RuntimeSettings,
    record_types: &BTreeMap<String, Arc<RecordTypeConfig>>,
) {
    let shares: u64 = record_types
        .values()
        .map(|rt| u64::from(rt.max_in_flight))
        .sum();
    let pool = u64::from(runtime.max_instances);
    if shares >= pool {
        c.problem(
            "runtime.max_instances",
            format!(
                "the record types' max_in_flight add up to {shares}, but the instance pool holds {pool} (one is kept for loading plugins): raise runtime.max_instances to at least {} or lower max_in_flight",
                shares + 1
            ),
        );
    }
}

/// The one rule for record-type names, shared with the sidecar and the SDK.
pub(crate) use droid_rules::record_type::check_name as check_record_type_name;
