//! The sidecar's configuration file: where it listens, which droid it follows
//! and how it proves who it is, and how it caches each record type it serves.
//!
//! Every field has a default except the record types: a sidecar serves the
//! record types its consumers use, named in `[record_types.NAME]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::{
    CachePolicy, CacheSettings, ConfigError, ConnectionLimits, Problem, RawConnections,
    check_connection_limits, parse_toml,
};

/// A sidecar's settings.
#[derive(Debug, Clone)]
pub struct SidecarConfig {
    /// The file they were read from.
    pub source: PathBuf,
    /// Where consumers reach the sidecar (loopback by default: it is theirs).
    pub listen: SocketAddr,
    /// How long clients may take and how many may be connected.
    pub connections: ConnectionLimits,
    /// The droid it reads through and follows.
    pub upstream: UpstreamConfig,
    /// How it follows the change feed.
    pub feed: FeedConfig,
    /// The record types it serves, by name.
    pub record_types: BTreeMap<String, SidecarRecordType>,
    /// The most keys one batch read may ask for.
    pub max_batch_keys: usize,
}

/// The droid a sidecar reads through.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The base URLs of the droid nodes it may use, in order of preference:
    /// it reads through and follows one, and moves to the next when that one
    /// cannot be reached (nodes sharing a store number changes alike, so the
    /// feed goes on without a gap or a repeat).
    pub urls: Vec<url::Url>,
    /// The realm whose change log it follows and whose records it exports
    /// (`upstream.realm`; the droid's home realm when not named). Its
    /// tenants are the ones it serves: a tenant of another realm is answered
    /// `421` by the droid, and so by the sidecar.
    pub realm: Option<String>,
    /// The private key (from `droid keygen`) the sidecar signs its tokens with;
    /// none for a droid that checks no credentials.
    pub key_file: Option<PathBuf>,
    /// The audience of those tokens (droid's `auth.audience`).
    pub audience: String,
    /// How long each token lives; a new one is signed when three quarters of
    /// it have passed.
    pub token_lifetime: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long one read through may take, end to end.
    pub request_timeout: Duration,
}

/// How the sidecar follows the change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedConfig {
    /// The heartbeat interval it asks the droid for.
    pub heartbeat: Duration,
    /// Past this long without a word from the feed, the sidecar counts as out
    /// of sync (its answers are marked stale) and reconnects.
    pub sync_timeout: Duration,
    /// The first wait before reconnecting; it doubles up to `reconnect_max`.
    pub reconnect_initial: Duration,
    /// The longest wait between reconnection attempts.
    pub reconnect_max: Duration,
}

/// How the sidecar caches one record type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SidecarRecordType {
    /// Its caches. Entries the feed keeps current may live long; the droid's
    /// own `max-age` (read-through record types) caps an entry's freshness.
    pub cache: CacheSettings,
    /// The most reads through to the droid in flight at once.
    pub max_in_flight: u32,
    /// Keep every record of the type (an ingested one), loaded from the
    /// droid's export and kept current by the feed, instead of only those
    /// asked for.
    pub replicate: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    max_batch_keys: Option<usize>,
    header_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_connections: Option<u64>,
    reserve_connections: Option<u64>,
    write_timeout_ms: Option<u64>,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    feed: RawFeed,
    #[serde(default)]
    record_types: BTreeMap<String, RawRecordType>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    url: Option<OneOrMany>,
    realm: Option<String>,
    key_file: Option<PathBuf>,
    audience: Option<String>,
    token_lifetime_s: Option<u64>,
    connect_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
}

/// A URL, or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    heartbeat_ms: Option<u64>,
    sync_timeout_ms: Option<u64>,
    reconnect_initial_ms: Option<u64>,
    reconnect_max_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecordType {
    ttl_ms: Option<u64>,
    not_found_ttl_ms: Option<u64>,
    error_ttl_ms: Option<u64>,
    stale_while_revalidate_ms: Option<u64>,
    stale_if_error_ms: Option<u64>,
    capacity_bytes: Option<u64>,
    max_in_flight: Option<u32>,
    replicate: Option<bool>,
}

/// What the command line may set over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--upstream`
    pub upstream: Option<String>,
    /// `--realm`
    pub realm: Option<String>,
    /// `--key`
    pub key_file: Option<PathBuf>,
    /// `--audience`
    pub audience: Option<String>,
    /// `--listen`
    pub listen: Option<SocketAddr>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:7171";
const MAX_TOKEN_LIFETIME_S: u64 = 3600;
const MIN_TOKEN_LIFETIME_S: u64 = 10;

impl SidecarConfig {
    /// Reads and checks the file at `path`, with the command line's overrides.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            file: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::parse(path, &text, overrides)
    }

    /// Checks `text`, read from `path`, with the command line's overrides.
    pub fn parse(path: &Path, text: &str, overrides: &Overrides) -> Result<Self, ConfigError> {
        let raw: Raw = parse_toml(path, text)?;
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(Problem {
                field: field.to_owned(),
                line: None,
                message,
            });
        };
        let listen = match overrides.listen {
            Some(addr) => addr,
            None => {
                let text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
                text.parse().unwrap_or_else(|_| {
                    problem(
                        "listen",
                        format!("{text:?} is not an address and port such as {DEFAULT_LISTEN}"),
                    );
                    DEFAULT_LISTEN.parse().expect("the default address parses")
                })
            }
        };
        let max_batch_keys = raw.max_batch_keys.unwrap_or(100);
        if !(1..=10_000).contains(&max_batch_keys) {
            problem(
                "max_batch_keys",
                format!("must be between 1 and 10000, found {max_batch_keys}"),
            );
        }
        let (connections, found) = check_connection_limits(RawConnections {
            header_timeout_ms: raw.header_timeout_ms,
            idle_timeout_ms: raw.idle_timeout_ms,
            write_timeout_ms: raw.write_timeout_ms,
            max_connections: raw.max_connections,
            reserve_connections: raw.reserve_connections,
        });
        for p in found {
            problem(&p.field, p.message);
        }
        let upstream = upstream(path, raw.upstream, overrides, &mut problem);
        let feed = feed(raw.feed, &mut problem);
        if raw.record_types.is_empty() {
            problem(
                "record_types",
                "name at least one record type to serve, as [record_types.NAME]".to_owned(),
            );
        }
        let mut record_types = BTreeMap::new();
        for (name, rt) in raw.record_types {
            let field = format!("record_types.{name}");
            if let Err(why) = droid_rules::record_type::check_name(&name) {
                problem(&field, why);
            }
            record_types.insert(name, record_type(&field, rt, &mut problem));
        }
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                file: path.to_path_buf(),
                problems,
            });
        }
        Ok(Self {
            source: path.to_path_buf(),
            listen,
            connections,
            upstream: upstream.expect("no problems means the upstream URL parsed"),
            feed,
            record_types,
            max_batch_keys,
        })
    }
}

fn upstream(
    path: &Path,
    raw: RawUpstream,
    overrides: &Overrides,
    problem: &mut impl FnMut(&str, String),
) -> Option<UpstreamConfig> {
    let lifetime = raw.token_lifetime_s.unwrap_or(300);
    if !(MIN_TOKEN_LIFETIME_S..=MAX_TOKEN_LIFETIME_S).contains(&lifetime) {
        problem(
            "upstream.token_lifetime_s",
            format!(
                "must be between {MIN_TOKEN_LIFETIME_S} and {MAX_TOKEN_LIFETIME_S} seconds (droid refuses longer tokens), found {lifetime}"
            ),
        );
    }
    // A key named in the file is relative to the file; one on the command line
    // to the working directory.
    let key_file = match (&overrides.key_file, raw.key_file) {
        (Some(key), _) => Some(key.clone()),
        (None, Some(key)) => Some(match path.parent() {
            Some(dir) if key.is_relative() => dir.join(key),
            _ => key,
        }),
        (None, None) => None,
    };
    let connect_timeout = positive_ms(
        "upstream.connect_timeout_ms",
        raw.connect_timeout_ms,
        1000,
        problem,
    );
    let request_timeout = positive_ms(
        "upstream.request_timeout_ms",
        raw.request_timeout_ms,
        5000,
        problem,
    );
    // `--upstream` takes one URL or several separated by commas.
    let texts = match (overrides.upstream.clone(), raw.url) {
        (Some(text), _) => text.split(',').map(|t| t.trim().to_owned()).collect(),
        (None, Some(OneOrMany::One(text))) => vec![text],
        (None, Some(OneOrMany::Many(texts))) => texts,
        (None, None) => Vec::new(),
    };
    if texts.is_empty() {
        problem(
            "upstream.url",
            "no upstream droid: set upstream.url (one URL or a list) or pass --upstream URL[,URL...]"
                .to_owned(),
        );
        return None;
    }
    let mut urls = Vec::with_capacity(texts.len());
    for text in texts {
        match url::Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                urls.push(url);
            }
            _ => problem(
                "upstream.url",
                format!("{text:?} is not an http:// or https:// URL"),
            ),
        }
    }
    let realm = overrides.realm.clone().or(raw.realm);
    if let Some(name) = &realm
        && (name.is_empty()
            || name.len() > 16
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    {
        problem(
            "upstream.realm",
            format!("expected a realm name (a-z, 0-9 and _, at most 16 bytes), found {name:?}"),
        );
    }
    Some(UpstreamConfig {
        urls,
        realm,
        key_file,
        audience: overrides
            .audience
            .clone()
            .or(raw.audience)
            .unwrap_or_else(|| "droid".to_owned()),
        token_lifetime: Duration::from_secs(lifetime),
        connect_timeout,
        request_timeout,
    })
}

fn feed(raw: RawFeed, problem: &mut impl FnMut(&str, String)) -> FeedConfig {
    let heartbeat = positive_ms("feed.heartbeat_ms", raw.heartbeat_ms, 1000, problem);
    let sync_timeout = positive_ms("feed.sync_timeout_ms", raw.sync_timeout_ms, 3000, problem);
    if sync_timeout <= heartbeat {
        problem(
            "feed.sync_timeout_ms",
            format!(
                "must be longer than feed.heartbeat_ms ({} ms), or a quiet feed would count as lost",
                heartbeat.as_millis()
            ),
        );
    }
    let reconnect_initial = positive_ms(
        "feed.reconnect_initial_ms",
        raw.reconnect_initial_ms,
        100,
        problem,
    );
    let reconnect_max = positive_ms("feed.reconnect_max_ms", raw.reconnect_max_ms, 5000, problem);
    if reconnect_max < reconnect_initial {
        problem(
            "feed.reconnect_max_ms",
            "must be at least feed.reconnect_initial_ms".to_owned(),
        );
    }
    FeedConfig {
        heartbeat,
        sync_timeout,
        reconnect_initial,
        reconnect_max,
    }
}

fn record_type(
    field: &str,
    raw: RawRecordType,
    problem: &mut impl FnMut(&str, String),
) -> SidecarRecordType {
    let ms = |value: Option<u64>, default: u64| Duration::from_millis(value.unwrap_or(default));
    let replicate = raw.replicate.unwrap_or(false);
    // A replica is kept current by the feed and reloaded only on a resync:
    // its records stay fresh for a day unless told otherwise.
    let found_ttl = if replicate { 24 * 3600 * 1000 } else { 300_000 };
    let capacity = raw.capacity_bytes.unwrap_or(256 << 20);
    if capacity == 0 {
        problem(
            &format!("{field}.capacity_bytes"),
            "must be more than 0".to_owned(),
        );
    }
    let max_in_flight = raw.max_in_flight.unwrap_or(256);
    if max_in_flight == 0 {
        problem(
            &format!("{field}.max_in_flight"),
            "must be at least 1".to_owned(),
        );
    }
    let policy = |ttl: Duration, share: u64| CachePolicy {
        enabled: !ttl.is_zero(),
        capacity_bytes: (capacity / share).max(1),
        ttl,
    };
    SidecarRecordType {
        cache: CacheSettings {
            // The feed keeps found and not-found entries current, so they may
            // live long; errors are kept briefly, only to spare the droid.
            found: CachePolicy {
                enabled: true,
                ..policy(ms(raw.ttl_ms, found_ttl), 1)
            },
            not_found: policy(ms(raw.not_found_ttl_ms, 60_000), 8),
            error: policy(ms(raw.error_ttl_ms, 1_000), 64),
            stale_while_revalidate: ms(raw.stale_while_revalidate_ms, 0),
            stale_if_error: ms(raw.stale_if_error_ms, 24 * 3600 * 1000),
        },
        max_in_flight,
        replicate,
    }
}

fn positive_ms(
    field: &str,
    value: Option<u64>,
    default: u64,
    problem: &mut impl FnMut(&str, String),
) -> Duration {
    let ms = value.unwrap_or(default);
    if ms == 0 {
        problem(field, "must be more than 0".to_owned());
        return Duration::from_millis(default);
    }
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SidecarConfig, ConfigError> {
        SidecarConfig::parse(
            Path::new("/etc/droid/sidecar.toml"),
            text,
            &Overrides::default(),
        )
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.problems().iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn defaults_fill_everything_but_the_record_types() {
        let config = parse("[upstream]\nurl = \"http://droid:8080\"\n[record_types.ticket]\n")
            .expect("valid");
        assert_eq!(config.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(config.upstream.audience, "droid");
        assert_eq!(config.upstream.token_lifetime, Duration::from_secs(300));
        let ticket = config.record_types["ticket"];
        assert_eq!(ticket.cache.found.ttl, Duration::from_secs(300));
        assert!(ticket.cache.not_found.enabled && ticket.cache.error.enabled);
        assert_eq!(ticket.max_in_flight, 256);
    }

    #[test]
    fn a_key_in_the_file_is_relative_to_it_and_the_command_line_wins() {
        let text =
            "[upstream]\nurl = \"http://droid\"\nkey_file = \"keys/shop.key\"\n[record_types.t]\n";
        let config = parse(text).unwrap();
        assert_eq!(
            config.upstream.key_file.as_deref(),
            Some(Path::new("/etc/droid/keys/shop.key"))
        );
        let overrides = Overrides {
            upstream: Some("https://other:9000".into()),
            key_file: Some("mine.key".into()),
            ..Overrides::default()
        };
        let config =
            SidecarConfig::parse(Path::new("/etc/droid/s.toml"), text, &overrides).unwrap();
        assert_eq!(config.upstream.urls[0].as_str(), "https://other:9000/");
        assert_eq!(
            config.upstream.key_file.as_deref(),
            Some(Path::new("mine.key"))
        );
    }

    #[test]
    fn the_realm_followed_is_a_realm_name() {
        let config =
            parse("[upstream]\nurl = \"http://a:8080\"\nrealm = \"eu\"\n[record_types.t]\n")
                .unwrap();
        assert_eq!(config.upstream.realm.as_deref(), Some("eu"));
        assert_eq!(
            problems("[upstream]\nurl = \"http://a\"\nrealm = \"EU West\"\n[record_types.t]\n"),
            [
                "upstream.realm: expected a realm name (a-z, 0-9 and _, at most 16 bytes), found \"EU West\""
            ]
        );
    }

    #[test]
    fn the_upstream_may_be_several_nodes_each_checked() {
        let config =
            parse("[upstream]\nurl = [\"http://a:8080\", \"http://b:8080\"]\n[record_types.t]\n")
                .unwrap();
        let urls: Vec<&str> = config.upstream.urls.iter().map(url::Url::as_str).collect();
        assert_eq!(urls, ["http://a:8080/", "http://b:8080/"]);
        let overrides = Overrides {
            upstream: Some("http://c:1, http://d:2".into()),
            ..Overrides::default()
        };
        let config = SidecarConfig::parse(
            Path::new("/etc/droid/s.toml"),
            "[record_types.t]\n",
            &overrides,
        )
        .unwrap();
        assert_eq!(config.upstream.urls.len(), 2);
        assert_eq!(
            problems("[upstream]\nurl = [\"http://a\", \"nope\"]\n[record_types.t]\n"),
            ["upstream.url: \"nope\" is not an http:// or https:// URL"]
        );
    }

    #[test]
    fn every_problem_is_named_with_its_field() {
        let found = problems(
            "listen = \"nowhere\"\n[upstream]\nurl = \"ftp://x\"\ntoken_lifetime_s = 7200\n[feed]\nheartbeat_ms = 5000\nsync_timeout_ms = 1000\n[record_types.\"bad name\"]\nmax_in_flight = 0\n",
        );
        let expected = [
            "listen: \"nowhere\" is not an address",
            "upstream.token_lifetime_s: must be between 10 and 3600",
            "upstream.url: \"ftp://x\" is not an http:// or https:// URL",
            "feed.sync_timeout_ms: must be longer than feed.heartbeat_ms (5000 ms)",
            "record_types.bad name: expected a record type name of 1 to 64",
            "record_types.bad name.max_in_flight: must be at least 1",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (found, expected) in found.iter().zip(expected) {
            assert!(found.starts_with(expected), "{found} / {expected}");
        }
        assert_eq!(
            problems("[upstream]\nurl = \"http://x\"\n"),
            ["record_types: name at least one record type to serve, as [record_types.NAME]"]
        );
        assert_eq!(
            problems("[record_types.t]\n"),
            [
                "upstream.url: no upstream droid: set upstream.url (one URL or a list) or pass --upstream URL[,URL...]"
            ]
        );
    }

    #[test]
    fn limits_and_timings_out_of_range_are_named() {
        let found = problems(
            "max_batch_keys = 0\n[upstream]\nurl = \"http://x\"\nconnect_timeout_ms = 0\n[feed]\nreconnect_initial_ms = 500\nreconnect_max_ms = 100\n[record_types.t]\ncapacity_bytes = 0\n",
        );
        assert_eq!(
            found,
            [
                "max_batch_keys: must be between 1 and 10000, found 0",
                "upstream.connect_timeout_ms: must be more than 0",
                "feed.reconnect_max_ms: must be at least feed.reconnect_initial_ms",
                "record_types.t.capacity_bytes: must be more than 0",
            ]
        );
    }

    #[test]
    fn unknown_fields_are_named_with_their_line() {
        let e = parse("[upstream]\nurl = \"http://x\"\n[record_types.t]\nttl = 5\n").unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("/etc/droid/sidecar.toml: line 4: record_types.t"),
            "{text}"
        );
        assert!(text.contains("unknown field `ttl`"), "{text}");
    }
}
