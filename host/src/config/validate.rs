//! Turns the file as written into a [`Config`]: defaults, resolved paths and every
//! cross-field rule. Problems are collected, not returned at the first one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::raw::{RawConfig, RawHttp, RawLimits, RawRecordType};
use super::{
    Config, ConfigError, HttpSettings, IngestedConfig, Mode, PluginLimits, Problem,
    ReadThroughConfig, RecordTypeConfig, RuntimeSettings,
};

const MIB: u64 = 1024 * 1024;

/// Defaults, chosen for a backing store in the same region answering in milliseconds.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_PLUGIN_DIR: &str = "plugins";
const DEFAULT_CACHE_DIR: &str = ".droid/cache";
const DEFAULT_MAX_INSTANCES: u32 = 256;
const DEFAULT_MAX_MEMORY_MIB: u64 = 256;
const DEFAULT_DEADLINE_MS: u64 = 2_000;
const DEFAULT_MEMORY_MIB: u64 = 64;
/// The limits used when neither a record type nor `[defaults.limits]` sets them.
pub(super) const DEFAULT_LIMITS: PluginLimits = PluginLimits {
    deadline: Duration::from_millis(DEFAULT_DEADLINE_MS),
    memory_bytes: DEFAULT_MEMORY_MIB * MIB,
};
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 500;
const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 1_000;
const DEFAULT_MAX_RESPONSE_BYTES: u64 = 4 * MIB;

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
    let runtime = RuntimeSettings {
        max_instances,
        max_memory_bytes: max_memory_mib * MIB,
    };

    let default_limits = limits(
        &mut c,
        "defaults.limits",
        raw.defaults.limits,
        None,
        max_memory_mib,
    );
    let default_http = http(&mut c, "defaults.http", raw.defaults.http, None);

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
        let rt = record_type(
            &mut c,
            &field,
            &name,
            rt,
            default_limits,
            default_http,
            max_memory_mib,
        );
        if let Some(rt) = rt {
            record_types.insert(name, Arc::new(rt));
        }
    }

    if !c.problems.is_empty() {
        return Err(ConfigError::Invalid {
            file: path.to_path_buf(),
            problems: c.problems,
        });
    }
    Ok(Config {
        source: path.to_path_buf(),
        listen,
        plugin_dir,
        cache_dir,
        runtime,
        record_types,
    })
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

fn record_type(
    c: &mut Checker,
    field: &str,
    name: &str,
    raw: RawRecordType,
    default_limits: PluginLimits,
    default_http: HttpSettings,
    max_memory_mib: u64,
) -> Option<RecordTypeConfig> {
    let limits = limits(
        c,
        &format!("{field}.limits"),
        raw.limits,
        Some(default_limits),
        max_memory_mib,
    );
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
                Some(default_http),
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
            Mode::ReadThrough(ReadThroughConfig {
                adapter: adapter?,
                base_url: base_url?,
                http,
            })
        }
        Some("ingested") => {
            forbid(c, field, "adapter", raw.adapter.is_some(), "ingested");
            forbid(c, field, "base_url", raw.base_url.is_some(), "ingested");
            forbid(c, field, "http", raw.http.is_some(), "ingested");
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
        values: raw.config,
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
    let deadline_ms = raw
        .deadline_ms
        .or(base.map(|b| b.deadline.as_millis() as u64))
        .unwrap_or(DEFAULT_DEADLINE_MS);
    let memory_mib = raw
        .memory_mib
        .or(base.map(|b| b.memory_bytes / MIB))
        .unwrap_or(DEFAULT_MEMORY_MIB.min(max_memory_mib));
    if raw.deadline_ms.is_some() {
        c.in_range(&format!("{field}.deadline_ms"), deadline_ms, 1, 600_000);
    }
    if raw.memory_mib.is_some() {
        if memory_mib > max_memory_mib {
            c.problem(
                format!("{field}.memory_mib"),
                format!(
                    "expected at most runtime.max_memory_mib ({max_memory_mib}), found {memory_mib}"
                ),
            );
        } else {
            c.in_range(
                &format!("{field}.memory_mib"),
                memory_mib,
                1,
                max_memory_mib,
            );
        }
    }
    PluginLimits {
        deadline: Duration::from_millis(deadline_ms),
        memory_bytes: memory_mib * MIB,
    }
}

fn http(c: &mut Checker, field: &str, raw: RawHttp, base: Option<HttpSettings>) -> HttpSettings {
    let connect = raw
        .connect_timeout_ms
        .or(base.map(|b| b.connect_timeout.as_millis() as u64))
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS);
    let request = raw
        .request_timeout_ms
        .or(base.map(|b| b.request_timeout.as_millis() as u64))
        .unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS);
    let max_body = raw
        .max_response_bytes
        .or(base.map(|b| b.max_response_bytes))
        .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES);
    if raw.connect_timeout_ms.is_some() {
        c.in_range(&format!("{field}.connect_timeout_ms"), connect, 1, 60_000);
    }
    if raw.request_timeout_ms.is_some() {
        c.in_range(&format!("{field}.request_timeout_ms"), request, 1, 600_000);
    }
    if raw.max_response_bytes.is_some() {
        c.in_range(
            &format!("{field}.max_response_bytes"),
            max_body,
            1,
            1024 * MIB,
        );
    }
    HttpSettings {
        connect_timeout: Duration::from_millis(connect),
        request_timeout: Duration::from_millis(request),
        max_response_bytes: max_body,
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
