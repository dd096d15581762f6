//! One `[record_types.NAME]` table (and the `[defaults]` it inherits from):
//! its mode, plugin, base URL, the limits of its plugin calls, its outbound
//! HTTP and its caches.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::super::raw::{RawCache, RawCachePolicy, RawHttp, RawLimits, RawRecordType};
use super::super::{
    CachePolicy, CacheSettings, HttpSettings, IngestedConfig, Mode, PluginLimits,
    ReadThroughConfig, RecordTypeConfig,
};
use super::{Checker, MIB, grants};

const DEFAULT_DEADLINE_MS: u64 = 2_000;
const DEFAULT_MEMORY_MIB: u64 = 64;
/// The limits used when neither a record type nor `[defaults.limits]` sets
/// them: generous for the small records droid is for, small enough that one
/// plugin's output cannot stall the store or its followers.
pub(in crate::config) const DEFAULT_LIMITS: PluginLimits = PluginLimits {
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
/// Caching when neither a record type nor `[defaults.cache]` says otherwise: found
/// records for five minutes, misses for thirty seconds, errors for five seconds
/// (long enough to shield a failing store, short enough to notice its recovery);
/// nothing stale unless asked for.
pub(super) const DEFAULT_CACHE: CacheSettings = CacheSettings {
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
pub(super) const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Outbound HTTP when neither a record type nor `[defaults.http]` says otherwise.
pub(super) const DEFAULT_HTTP: HttpSettings = HttpSettings {
    connect_timeout: Duration::from_millis(500),
    request_timeout: Duration::from_millis(1_000),
    max_response_bytes: 4 * MIB,
    retries: 1,
    retry_backoff: Duration::from_millis(50),
};

/// What `[defaults]` (or the built-in defaults) give every record type.
pub(super) struct Defaults {
    pub(super) limits: PluginLimits,
    pub(super) http: HttpSettings,
    pub(super) cache: CacheSettings,
    pub(super) max_in_flight: u32,
    pub(super) max_memory_mib: u64,
}

pub(super) fn record_type(
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
            let mut realm_base_urls = BTreeMap::new();
            for (realm, text) in raw.realm_base_urls.unwrap_or_default() {
                match check_base_url(&text) {
                    Ok(url) => {
                        realm_base_urls.insert(realm, url);
                    }
                    Err(why) => c.problem(format!("{field}.realm_base_urls.{realm}"), why),
                }
            }
            Mode::ReadThrough(Box::new(ReadThroughConfig {
                adapter: adapter?,
                base_url: base_url?,
                realm_base_urls,
                http,
                cache,
            }))
        }
        Some("ingested") => {
            forbid(c, field, "adapter", raw.adapter.is_some(), "ingested");
            forbid(c, field, "base_url", raw.base_url.is_some(), "ingested");
            forbid(
                c,
                field,
                "realm_base_urls",
                raw.realm_base_urls.is_some(),
                "ingested",
            );
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

pub(super) fn limits(
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

pub(super) fn http(
    c: &mut Checker,
    field: &str,
    raw: RawHttp,
    base: Option<HttpSettings>,
) -> HttpSettings {
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

pub(super) fn cache(
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
pub(super) fn check_base_url(text: &str) -> Result<url::Url, String> {
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
