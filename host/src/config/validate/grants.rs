//! `[auth]`, the grants (who may read, invalidate, publish and administer),
//! and the sensitive fields of record types.

use std::path::Path;
use std::time::Duration;

use super::Checker;
use crate::config::raw::RawAuth;
use crate::config::{ANY_ISSUER, AuthSettings, KeySettings, Repository};
use crate::sensitive::SecretKey;

/// `[auth]`: token checking, and the admin issuers. No section: no
/// authentication configured (the server then refuses to start unless told
/// `--insecure-no-auth`).
pub(in crate::config) fn auth(
    c: &mut Checker,
    base_dir: &Path,
    raw: Option<RawAuth>,
) -> (Option<AuthSettings>, Vec<String>) {
    let Some(raw) = raw else {
        return (None, Vec::new());
    };
    let admins = issuers(c, "auth.admins", raw.admins, false);
    let audience = match raw.audience {
        Some(a) if !a.trim().is_empty() => a,
        _ => {
            c.problem(
                "auth.audience",
                "required: the audience tokens must name (this service's name)",
            );
            String::new()
        }
    };
    let repositories: Vec<Repository> = raw
        .key_repositories
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(n, text)| {
            repository(c, base_dir, &format!("auth.key_repositories[{n}]"), &text)
        })
        .collect();
    if repositories.is_empty() {
        c.problem(
            "auth.key_repositories",
            "required: at least one folder or http(s) base URL holding issuers' public keys by kid",
        );
    }
    let settings = AuthSettings {
        audience,
        keys: KeySettings {
            repositories,
            max_entries: c.number(
                "auth",
                "key_cache_entries",
                raw.key_cache_entries,
                1_000,
                1,
                1_000_000,
            ),
            max_age: Duration::from_secs(c.number(
                "auth",
                "key_max_age_s",
                raw.key_max_age_s,
                3_600,
                0,
                7 * 86_400,
            )),
            missing_for: Duration::from_secs(30),
            fetch_timeout: Duration::from_millis(c.number(
                "auth",
                "key_fetch_timeout_ms",
                raw.key_fetch_timeout_ms,
                1_000,
                1,
                60_000,
            )),
            fetch_concurrency: c.number(
                "auth",
                "key_fetch_concurrency",
                raw.key_fetch_concurrency,
                8,
                1,
                1_000,
            ) as u32,
            fetches_per_s: c.number(
                "auth",
                "key_fetches_per_s",
                raw.key_fetches_per_s,
                5,
                1,
                10_000,
            ) as u32,
        },
        clock_skew: Duration::from_secs(c.number(
            "auth",
            "clock_skew_s",
            raw.clock_skew_s,
            30,
            0,
            600,
        )),
        replay_protect_reads: raw.replay_protect_reads.unwrap_or(false),
        replay_entries: c.number(
            "auth",
            "replay_entries",
            raw.replay_entries,
            1_000_000,
            1_000,
            100_000_000,
        ),
        verified_entries: c.number(
            "auth",
            "verified_entries",
            raw.verified_entries,
            100_000,
            1,
            10_000_000,
        ),
    };
    (Some(settings), admins)
}

/// A key repository: an http(s) base URL, or a folder (relative to the config file).
fn repository(c: &mut Checker, base_dir: &Path, field: &str, text: &str) -> Option<Repository> {
    if text.starts_with("http://") || text.starts_with("https://") {
        return match url::Url::parse(text) {
            Ok(url)
                if url.query().is_none() && url.fragment().is_none() && url.host().is_some() =>
            {
                Some(Repository::Http(url))
            }
            _ => {
                c.problem(
                    field,
                    format!(
                        "expected an http(s) base URL without query or fragment, found {text:?}"
                    ),
                );
                None
            }
        };
    }
    // A folder that does not exist yet may be filled later (keys are looked up
    // per request); something else in its place is a mistake.
    let dir = base_dir.join(text);
    if dir.exists() && !dir.is_dir() {
        c.problem(
            field,
            format!("{} is not a folder (nor an http(s) URL)", dir.display()),
        );
        return None;
    }
    if !dir.exists() {
        tracing::warn!(folder = %dir.display(), "key repository folder does not exist (yet): tokens of its keys are refused until it does");
    }
    Some(Repository::Folder(dir))
}

/// A list of issuers for a grant; `"*"` (any authenticated issuer) only where
/// `any_allowed`.
pub(in crate::config) fn issuers(
    c: &mut Checker,
    field: &str,
    raw: Option<Vec<String>>,
    any_allowed: bool,
) -> Vec<String> {
    let list = raw.unwrap_or_default();
    for issuer in &list {
        if issuer == ANY_ISSUER {
            if !any_allowed {
                c.problem(
                    field,
                    "allow-all (\"*\") is not accepted here: list the issuers that may do this",
                );
            }
            continue;
        }
        let valid = !issuer.is_empty()
            && issuer.len() <= 128
            && issuer
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b));
        if !valid {
            c.problem(
                field,
                format!(
                    "expected issuer names of [A-Za-z0-9_.+-] (1 to 128 bytes), found {issuer:?}"
                ),
            );
        }
    }
    list
}

/// `sensitive_fields` (JSON pointers) and `seal_key_file` (64 hex digits) of a record type.
pub(in crate::config) fn sensitivity(
    c: &mut Checker,
    field: &str,
    base_dir: &Path,
    fields: Option<Vec<String>>,
    key_file: Option<String>,
) -> (Vec<String>, Option<SecretKey>) {
    let fields = fields.unwrap_or_default();
    for pointer in &fields {
        if !pointer.starts_with('/') || pointer.len() > 256 {
            c.problem(
                format!("{field}.sensitive_fields"),
                format!("expected JSON pointers such as \"/reporter/email\", found {pointer:?}"),
            );
        }
    }
    let key = key_file.and_then(|file| {
        let path = base_dir.join(&file);
        let read = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|text| {
                droid_seal::parse_key(&text).map_err(|e| format!("{}: {e}", path.display()))
            });
        read.map(SecretKey)
            .map_err(|why| c.problem(format!("{field}.seal_key_file"), why))
            .ok()
    });
    (fields, key)
}
