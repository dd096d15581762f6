//! Turns the file as written into a [`Config`]: defaults, resolved paths and every
//! cross-field rule. Problems are collected, not returned at the first one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::raw::{
    RawCache, RawCachePolicy, RawConfig, RawHttp, RawLimits, RawPlugins, RawRecordType, RawSource,
};
use super::{
    CachePolicy, CacheSettings, Config, ConfigError, ConnectionLimits, FeedSettings, HttpSettings,
    IngestedConfig, Mode, PluginLimits, PluginSettings, Problem, ReadThroughConfig,
    RecordTypeConfig, RolloutPolicy, RuntimeSettings, Share, SourceConfig, StoreCache,
    TrustSettings,
};

mod grants;

const MIB: u64 = 1024 * 1024;

/// Defaults, chosen for a backing store in the same region answering in milliseconds.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_PLUGIN_DIR: &str = "plugins";
const DEFAULT_CACHE_DIR: &str = ".droid/cache";
const DEFAULT_STATE_FILE: &str = ".droid/plugin-state.json";
const DEFAULT_STORE_PATH: &str = ".droid/store.redb";
const DEFAULT_MAX_INSTANCES: u32 = 256;
const DEFAULT_MAX_MEMORY_MIB: u64 = 256;
const DEFAULT_DEADLINE_MS: u64 = 2_000;
const DEFAULT_MEMORY_MIB: u64 = 64;
/// Long enough to let an editor's or `cp`'s last write land, short enough that a
/// reload is still quick.
const DEFAULT_SETTLE: Duration = Duration::from_millis(20);
/// A candidate may fail 5 percentage points more often than the version it replaces.
const DEFAULT_ROLLBACK_MARGIN: Share = Share::parse_const(500);
/// Enough calls that a handful of unlucky ones does not decide.
const DEFAULT_ROLLBACK_MIN_CALLS: u64 = 100;
/// The limits used when neither a record type nor `[defaults.limits]` sets
/// them: generous for the small records droid is for, small enough that one
/// plugin's output cannot stall the store or its followers.
pub(super) const DEFAULT_LIMITS: PluginLimits = PluginLimits {
    deadline: Duration::from_millis(DEFAULT_DEADLINE_MS),
    memory_bytes: DEFAULT_MEMORY_MIB * MIB,
    max_record_bytes: MIB,
    max_json_depth: 64,
    max_ops_per_event: 1_000,
    max_ops_per_call: 10_000,
    max_error_bytes: 1_024,
    max_requests_per_call: 16,
    log_lines_per_call: 100,
    log_bytes_per_call: 16 * 1024,
    log_lines_per_s: 1_000,
};
/// How long a plugin's start-up may take at load.
const DEFAULT_STARTUP_DEADLINE_MS: u64 = 2_000;
/// Plugin threads run this much below the server's priority.
const DEFAULT_PLUGIN_NICE: u64 = 10;
/// Connections: a request head must arrive within 10 s of its first byte;
/// a connection with nothing happening closes after a minute (longer than
/// the usual client pools' idle time, so clients close first).
const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// A peer that reads nothing for this long is gone as far as droid cares.
const DEFAULT_WRITE_TIMEOUT_MS: u64 = 30_000;
/// Descriptors kept free beyond the connection cap by default: the store,
/// plugin and key files, outbound HTTP and the change feed's own needs.
const FD_RESERVE: u64 = 256;
/// Connections beyond the cap kept for operators when none is idle.
const DEFAULT_RESERVE_CONNECTIONS: u64 = 32;
/// The change feed: a megabyte per subscriber, 64 MiB for all of them, and
/// the newest 16 MiB of changes shared by the caught-up ones.
const DEFAULT_FEED_SUBSCRIBER_BYTES: u64 = MIB;
const DEFAULT_FEED_BUFFER_BYTES: u64 = 64 * MIB;
const DEFAULT_FEED_TAIL_BYTES: u64 = 16 * MIB;
/// The embedded store's own page cache.
const DEFAULT_ENGINE_CACHE_BYTES: u64 = 64 * MIB;
const DEFAULT_MAX_BATCH_KEYS: usize = 100;
const DEFAULT_MAX_IN_FLIGHT: u32 = 16;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Outbound HTTP when neither a record type nor `[defaults.http]` says otherwise.
const DEFAULT_HTTP: HttpSettings = HttpSettings {
    connect_timeout: Duration::from_millis(500),
    request_timeout: Duration::from_millis(1_000),
    max_response_bytes: 4 * MIB,
    retries: 1,
    retry_backoff: Duration::from_millis(50),
};

/// Caching when neither a record type nor `[defaults.cache]` says otherwise: found
/// records for five minutes, misses for thirty seconds, errors for five seconds
/// (long enough to shield a failing store, short enough to notice its recovery);
/// nothing stale unless asked for.
const DEFAULT_CACHE: CacheSettings = CacheSettings {
    found: CachePolicy {
        enabled: true,
        capacity_bytes: 256 * MIB,
        ttl: Duration::from_secs(300),
    },
    not_found: CachePolicy {
        enabled: true,
        capacity_bytes: 16 * MIB,
        ttl: Duration::from_secs(30),
    },
    error: CachePolicy {
        enabled: true,
        capacity_bytes: 4 * MIB,
        ttl: Duration::from_secs(5),
    },
    stale_while_revalidate: Duration::ZERO,
    stale_if_error: Duration::ZERO,
};

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
    let feed = FeedSettings {
        heartbeat: Duration::from_millis(c.number(
            "server",
            "feed_heartbeat_ms",
            raw.server.feed_heartbeat_ms,
            5_000,
            50,
            600_000,
        )),
        send_timeout: Duration::from_millis(c.number(
            "server",
            "feed_send_timeout_ms",
            raw.server.feed_send_timeout_ms,
            10_000,
            10,
            600_000,
        )),
        subscriber_bytes: c.number(
            "server",
            "feed_subscriber_bytes",
            raw.server.feed_subscriber_bytes,
            DEFAULT_FEED_SUBSCRIBER_BYTES,
            64 * 1024,
            1024 * MIB,
        ) as usize,
        buffer_bytes: c.number(
            "server",
            "feed_buffer_bytes",
            raw.server.feed_buffer_bytes,
            DEFAULT_FEED_BUFFER_BYTES,
            64 * 1024,
            64 * 1024 * MIB,
        ) as usize,
        tail_bytes: c.number(
            "server",
            "feed_tail_bytes",
            raw.server.feed_tail_bytes,
            DEFAULT_FEED_TAIL_BYTES,
            0,
            64 * 1024 * MIB,
        ) as usize,
    };
    if feed.buffer_bytes < feed.subscriber_bytes {
        c.problem(
            "server.feed_buffer_bytes",
            format!(
                "expected at least server.feed_subscriber_bytes ({}), found {}",
                feed.subscriber_bytes, feed.buffer_bytes
            ),
        );
    }
    let connections = connection_limits(
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
    pool_shares(&mut c, &runtime, &record_types);
    let (auth, admins) = grants::auth(&mut c, &base_dir, raw.auth);
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
        connections,
        max_batch_keys,
        max_body_bytes,
        feed,
        change_log_retention,
        plugin_dir,
        cache_dir,
        plugins,
        runtime,
        record_types,
        store_path,
        store_cache,
        store_engine_cache_bytes,
        sources,
        auth,
        admins,
        insecure_no_auth: false,
    })
}

/// `[sources.NAME]`: each names an ingested record type.
fn sources(
    c: &mut Checker,
    raw: BTreeMap<String, RawSource>,
    record_types: &BTreeMap<String, Arc<RecordTypeConfig>>,
) -> BTreeMap<String, SourceConfig> {
    let mut out = BTreeMap::new();
    for (name, source) in raw {
        let field = format!("sources.{name}");
        if let Err(why) = check_record_type_name(&name) {
            c.problem(&field, why.replace("record type", "source"));
        }
        let Some(record_type) = source.record_type else {
            c.problem(
                format!("{field}.record_type"),
                "required: the ingested record type this source feeds",
            );
            continue;
        };
        let mut positive = |key: &str, value: Option<u64>| {
            value.and_then(|v| {
                let n = c.in_range(&format!("{field}.{key}"), v, 1, 10_000_000);
                std::num::NonZeroU32::new(n as u32)
            })
        };
        let rate_limit = positive("rate_limit", source.rate_limit);
        let burst = positive("burst", source.burst);
        if burst.is_some() && rate_limit.is_none() {
            c.problem(
                format!("{field}.burst"),
                "a burst needs a rate_limit to go with it",
            );
        }
        let failure_window = Duration::from_secs(c.number(
            &field,
            "failure_window_s",
            source.failure_window_s,
            300,
            1,
            86_400,
        ));
        let warn_above = c.number(&field, "warn_above", source.warn_above, 0, 0, u64::MAX);
        let page_above = c.number(&field, "page_above", source.page_above, 100, 0, u64::MAX);
        if page_above < warn_above {
            c.problem(
                format!("{field}.page_above"),
                format!("must be at least warn_above ({warn_above}), found {page_above}"),
            );
        }
        let publishers =
            grants::issuers(c, &format!("{field}.publishers"), source.publishers, false);
        let bootstrap_url = source.bootstrap_url.and_then(|text| {
            check_base_url(&text)
                .map_err(|why| c.problem(format!("{field}.bootstrap_url"), why))
                .ok()
        });
        match record_types.get(&record_type).map(|rt| (&rt.mode, rt.max_in_flight)) {
            Some((Mode::Ingested(_), type_in_flight)) => {
                let max_in_flight = c.number(
                    &field,
                    "max_in_flight",
                    source.max_in_flight.map(u64::from),
                    u64::from(type_in_flight),
                    1,
                    10_000,
                ) as u32;
                out.insert(
                    name,
                    SourceConfig {
                        record_type,
                        rate_limit,
                        burst,
                        failure_window,
                        warn_above,
                        page_above,
                        bootstrap_url,
                        publishers,
                        max_in_flight,
                    },
                );
            }
            Some((Mode::ReadThrough(_), _)) => c.problem(
                format!("{field}.record_type"),
                format!("record type {record_type:?} is read-through; a source feeds an ingested record type"),
            ),
            None => c.problem(
                format!("{field}.record_type"),
                format!("no record type named {record_type:?} is declared"),
            ),
        }
    }
    out
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

/// What `[defaults]` (or the built-in defaults) give every record type.
struct Defaults {
    limits: PluginLimits,
    http: HttpSettings,
    cache: CacheSettings,
    max_in_flight: u32,
    max_memory_mib: u64,
}

fn record_type(
    c: &mut Checker,
    field: &str,
    name: &str,
    raw: RawRecordType,
    defaults: &Defaults,
    base_dir: &Path,
) -> Option<RecordTypeConfig> {
    let (sensitive_fields, seal_key) =
        grants::sensitivity(c, field, base_dir, raw.sensitive_fields, raw.seal_key_file);
    let readers = grants::issuers(c, &format!("{field}.readers"), raw.readers, true);
    let has_invalidators = raw.invalidators.is_some();
    let invalidators =
        grants::issuers(c, &format!("{field}.invalidators"), raw.invalidators, false);
    let limits = limits(
        c,
        &format!("{field}.limits"),
        raw.limits,
        Some(defaults.limits),
        defaults.max_memory_mib,
    );
    let max_in_flight = c.number(
        field,
        "max_in_flight",
        raw.max_in_flight.map(u64::from),
        u64::from(defaults.max_in_flight),
        1,
        10_000,
    ) as u32;
    for (key, value) in &raw.config {
        if key.is_empty() || key.len() > 128 {
            c.problem(
                format!("{field}.config"),
                format!("expected names of 1 to 128 bytes, found {key:?}"),
            );
        }
        if value.len() > 64 * 1024 {
            c.problem(
                format!("{field}.config.{key}"),
                "expected a value of at most 64 KiB",
            );
        }
    }

    let mode = match raw.mode.as_deref() {
        Some("read-through") => {
            forbid(
                c,
                field,
                "transformer",
                raw.transformer.is_some(),
                "read-through",
            );
            let adapter = required_plugin(c, field, "adapter", raw.adapter, "read-through");
            let base_url = match raw.base_url {
                Some(text) => check_base_url(&text)
                    .map_err(|why| c.problem(format!("{field}.base_url"), why))
                    .ok(),
                None => {
                    c.problem(
                        format!("{field}.base_url"),
                        "missing: a read-through record type needs the backing store's base URL",
                    );
                    None
                }
            };
            let http = http(
                c,
                &format!("{field}.http"),
                raw.http.unwrap_or_default(),
                Some(defaults.http),
            );
            let cache = cache(
                c,
                &format!("{field}.cache"),
                raw.cache.unwrap_or_default(),
                Some(defaults.cache),
            );
            if http.request_timeout > limits.deadline {
                c.problem(
                    format!("{field}.http.request_timeout_ms"),
                    format!(
                        "expected at most the call deadline ({} ms), found {} ms: the deadline would cut every slow request first",
                        limits.deadline.as_millis(),
                        http.request_timeout.as_millis()
                    ),
                );
            }
            Mode::ReadThrough(Box::new(ReadThroughConfig {
                adapter: adapter?,
                base_url: base_url?,
                http,
                cache,
            }))
        }
        Some("ingested") => {
            forbid(c, field, "adapter", raw.adapter.is_some(), "ingested");
            forbid(c, field, "base_url", raw.base_url.is_some(), "ingested");
            forbid(c, field, "http", raw.http.is_some(), "ingested");
            forbid(c, field, "cache", raw.cache.is_some(), "ingested");
            forbid(c, field, "invalidators", has_invalidators, "ingested");
            let transformer = required_plugin(c, field, "transformer", raw.transformer, "ingested");
            Mode::Ingested(IngestedConfig {
                transformer: transformer?,
            })
        }
        Some(other) => {
            c.problem(
                format!("{field}.mode"),
                format!("expected \"read-through\" or \"ingested\", found {other:?}"),
            );
            return None;
        }
        None => {
            c.problem(
                format!("{field}.mode"),
                "missing: expected \"read-through\" or \"ingested\"",
            );
            return None;
        }
    };
    Some(RecordTypeConfig {
        name: name.to_owned(),
        mode,
        limits,
        max_in_flight,
        values: raw.config,
        readers,
        invalidators,
        sensitive_fields,
        seal_key,
    })
}

/// "a read-through record type" or "an ingested record type", for messages.
fn kind_phrase(mode: &str) -> &'static str {
    if mode == "ingested" {
        "an ingested record type"
    } else {
        "a read-through record type"
    }
}

fn forbid(c: &mut Checker, field: &str, key: &str, present: bool, mode: &str) {
    if present {
        c.problem(
            format!("{field}.{key}"),
            format!("not allowed for {}", kind_phrase(mode)),
        );
    }
}

fn required_plugin(
    c: &mut Checker,
    field: &str,
    key: &str,
    value: Option<String>,
    mode: &str,
) -> Option<String> {
    let field = format!("{field}.{key}");
    match value {
        None => {
            c.problem(
                &field,
                format!("missing: {} needs its {key} plugin file", kind_phrase(mode)),
            );
            None
        }
        Some(file) => match check_plugin_file_name(&file) {
            Ok(()) => Some(file),
            Err(why) => {
                c.problem(&field, why);
                None
            }
        },
    }
}

fn limits(
    c: &mut Checker,
    field: &str,
    raw: RawLimits,
    base: Option<PluginLimits>,
    max_memory_mib: u64,
) -> PluginLimits {
    let base = base.unwrap_or(PluginLimits {
        memory_bytes: DEFAULT_MEMORY_MIB.min(max_memory_mib) * MIB,
        ..DEFAULT_LIMITS
    });
    let deadline = c.millis(
        field,
        "deadline_ms",
        raw.deadline_ms,
        base.deadline,
        1,
        600_000,
    );
    let memory_mib = match raw.memory_mib {
        Some(mib) if mib > max_memory_mib => {
            c.problem(
                format!("{field}.memory_mib"),
                format!("expected at most runtime.max_memory_mib ({max_memory_mib}), found {mib}"),
            );
            mib
        }
        raw => c.number(
            field,
            "memory_mib",
            raw,
            base.memory_bytes / MIB,
            1,
            max_memory_mib,
        ),
    };
    let mut count = |key: &str, raw: Option<u64>, inherited: u32, min: u64, max: u64| {
        c.number(field, key, raw, u64::from(inherited), min, max) as u32
    };
    let max_json_depth = count(
        "max_json_depth",
        raw.max_json_depth,
        base.max_json_depth,
        1,
        128,
    );
    let max_ops_per_event = count(
        "max_ops_per_event",
        raw.max_ops_per_event,
        base.max_ops_per_event,
        1,
        1_000_000,
    );
    let max_ops_per_call = count(
        "max_ops_per_call",
        raw.max_ops_per_call,
        base.max_ops_per_call,
        1,
        10_000_000,
    );
    let max_error_bytes = count(
        "max_error_bytes",
        raw.max_error_bytes,
        base.max_error_bytes,
        64,
        1 << 20,
    );
    let max_requests_per_call = count(
        "max_requests_per_call",
        raw.max_requests_per_call,
        base.max_requests_per_call,
        1,
        10_000,
    );
    let log_lines_per_call = count(
        "log_lines_per_call",
        raw.log_lines_per_call,
        base.log_lines_per_call,
        0,
        1_000_000,
    );
    let log_bytes_per_call = count(
        "log_bytes_per_call",
        raw.log_bytes_per_call,
        base.log_bytes_per_call,
        0,
        64 << 20,
    );
    let log_lines_per_s = count(
        "log_lines_per_s",
        raw.log_lines_per_s,
        base.log_lines_per_s,
        0,
        1_000_000,
    );
    let max_record_bytes = c.number(
        field,
        "max_record_bytes",
        raw.max_record_bytes,
        base.max_record_bytes,
        64,
        256 * MIB,
    );
    if max_ops_per_call < max_ops_per_event {
        c.problem(
            format!("{field}.max_ops_per_call"),
            format!("expected at least max_ops_per_event ({max_ops_per_event}), found {max_ops_per_call}"),
        );
    }
    PluginLimits {
        deadline,
        memory_bytes: memory_mib * MIB,
        max_record_bytes,
        max_json_depth,
        max_ops_per_event,
        max_ops_per_call,
        max_error_bytes,
        max_requests_per_call,
        log_lines_per_call,
        log_bytes_per_call,
        log_lines_per_s,
    }
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

/// Connection limits of a listener at the top level of a file that checks
/// itself its own way (the sidecar's): the limits and the problems found.
pub(crate) fn check_connection_limits(raw: RawConnections) -> (ConnectionLimits, Vec<Problem>) {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let limits = connection_limits(&mut c, "", raw);
    (limits, c.problems)
}

/// The connection settings of a listener, as written.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RawConnections {
    pub header_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub write_timeout_ms: Option<u64>,
    pub max_connections: Option<u64>,
    pub reserve_connections: Option<u64>,
}

/// Connection limits of a listener, under `table` (droid's `[server]`). By
/// default the cap and its reserve leave [`FD_RESERVE`] descriptors of the
/// open-files limit for everything else.
fn connection_limits(c: &mut Checker, table: &str, raw: RawConnections) -> ConnectionLimits {
    let descriptors = open_files_limit();
    let reserve_connections = c.number(
        table,
        "reserve_connections",
        raw.reserve_connections,
        DEFAULT_RESERVE_CONNECTIONS,
        0,
        10_000,
    );
    let default_cap = descriptors
        .saturating_sub(FD_RESERVE + reserve_connections)
        .clamp(16, 10_000);
    let max_connections = c.number(
        table,
        "max_connections",
        raw.max_connections,
        default_cap,
        1,
        1_000_000,
    );
    if (max_connections + reserve_connections).saturating_add(64) > descriptors {
        tracing::warn!(
            max_connections,
            reserve_connections,
            open_files_limit = descriptors,
            "max_connections and reserve_connections are close to or above the open-files limit (ulimit -n): accepts may fail before the cap is reached"
        );
    }
    ConnectionLimits {
        header_timeout: c.millis(
            table,
            "header_timeout_ms",
            raw.header_timeout_ms,
            Duration::from_millis(DEFAULT_HEADER_TIMEOUT_MS),
            100,
            600_000,
        ),
        idle_timeout: c.millis(
            table,
            "idle_timeout_ms",
            raw.idle_timeout_ms,
            Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
            100,
            3_600_000,
        ),
        write_timeout: c.millis(
            table,
            "write_timeout_ms",
            raw.write_timeout_ms,
            Duration::from_millis(DEFAULT_WRITE_TIMEOUT_MS),
            100,
            3_600_000,
        ),
        max_connections: max_connections as usize,
        reserve_connections: reserve_connections as usize,
    }
}

/// The soft limit on open files of this process (`ulimit -n`).
fn open_files_limit() -> u64 {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        limit.current.unwrap_or(u64::MAX)
    }
    #[cfg(not(unix))]
    {
        u64::MAX
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

fn http(c: &mut Checker, field: &str, raw: RawHttp, base: Option<HttpSettings>) -> HttpSettings {
    let base = base.unwrap_or(DEFAULT_HTTP);
    HttpSettings {
        connect_timeout: c.millis(
            field,
            "connect_timeout_ms",
            raw.connect_timeout_ms,
            base.connect_timeout,
            1,
            60_000,
        ),
        request_timeout: c.millis(
            field,
            "request_timeout_ms",
            raw.request_timeout_ms,
            base.request_timeout,
            1,
            600_000,
        ),
        max_response_bytes: c.number(
            field,
            "max_response_bytes",
            raw.max_response_bytes,
            base.max_response_bytes,
            1,
            1024 * MIB,
        ),
        retries: c.number(
            field,
            "retries",
            raw.retries.map(u64::from),
            u64::from(base.retries),
            0,
            10,
        ) as u32,
        retry_backoff: c.millis(
            field,
            "retry_backoff_ms",
            raw.retry_backoff_ms,
            base.retry_backoff,
            1,
            10_000,
        ),
    }
}

fn cache(
    c: &mut Checker,
    field: &str,
    raw: RawCache,
    base: Option<CacheSettings>,
) -> CacheSettings {
    let base = base.unwrap_or(DEFAULT_CACHE);
    if raw.found.enabled == Some(false) {
        c.problem(
            format!("{field}.found.enabled"),
            "the found cache cannot be switched off; set a short ttl_ms instead",
        );
    }
    let mut policy = |name: &str, raw: RawCachePolicy, base: CachePolicy| {
        let field = format!("{field}.{name}");
        CachePolicy {
            enabled: raw.enabled.unwrap_or(base.enabled),
            capacity_bytes: c.number(
                &field,
                "capacity_bytes",
                raw.capacity_bytes,
                base.capacity_bytes,
                1024,
                64 * 1024 * MIB,
            ),
            ttl: c.millis(&field, "ttl_ms", raw.ttl_ms, base.ttl, 1, 7 * DAY_MS),
        }
    };
    let found = policy("found", raw.found, base.found);
    let not_found = policy("not_found", raw.not_found, base.not_found);
    let error = policy("error", raw.error, base.error);
    CacheSettings {
        found: CachePolicy {
            enabled: true,
            ..found
        },
        not_found,
        error,
        stale_while_revalidate: c.millis(
            field,
            "stale_while_revalidate_ms",
            raw.stale_while_revalidate_ms,
            base.stale_while_revalidate,
            0,
            DAY_MS,
        ),
        stale_if_error: c.millis(
            field,
            "stale_if_error_ms",
            raw.stale_if_error_ms,
            base.stale_if_error,
            0,
            DAY_MS,
        ),
    }
}

/// Record type names appear in URLs, metric labels and file names, so they are kept plain.
pub(crate) fn check_record_type_name(name: &str) -> Result<(), String> {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if name.is_empty() || name.len() > 64 || !plain || !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(format!(
            "expected a record type name of 1 to 64 letters, digits, '-' or '_' starting with a letter or digit, found {name:?}"
        ));
    }
    Ok(())
}

/// Plugin files are named relative to the plugin folder and may not leave it.
fn check_plugin_file_name(file: &str) -> Result<(), String> {
    let plain = file
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !plain || file.starts_with('.') || !file.ends_with(".wasm") || file.len() <= ".wasm".len() {
        return Err(format!(
            "expected a file name in the plugin folder ending in .wasm, such as \"my-adapter.wasm\", found {file:?}"
        ));
    }
    Ok(())
}

/// The base URL is the adapter's whole egress allowance, so it must be exact.
fn check_base_url(text: &str) -> Result<url::Url, String> {
    let expected = "expected an absolute http or https URL without credentials, query or fragment";
    let mut url = url::Url::parse(text).map_err(|e| format!("{expected}, found {text:?} ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{expected}, found scheme {:?}", url.scheme()));
    }
    if url.host().is_none() {
        return Err(format!("{expected}, found no host in {text:?}"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{expected}, found credentials in {text:?}"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{expected}, found a query or fragment in {text:?}"));
    }
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}
