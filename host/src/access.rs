//! What a caller may do: the grants of `droid.toml`.
//!
//! Grants name issuers (the `iss` of a verified token): per record type the
//! `readers` (or `"*"`: any authenticated service) and the `invalidators` (an
//! explicit list: allow-all is refused when the configuration loads); per
//! ingestion source the `publishers` (who may post events, snapshots and
//! backfills); and `[auth] admins` for the admin endpoints. Grants are read
//! from the live configuration, so a reload changes them for the next request.

use std::fmt;

pub use crate::auth::Caller;
pub use crate::config::ANY_ISSUER;
use crate::config::Config;

/// Something a caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Read records of a record type.
    Read(&'a str),
    /// Invalidate cached records of a record type.
    Invalidate(&'a str),
    /// Post events (or snapshots, or a backfill) as a source.
    Publish(&'a str),
    /// Use the admin endpoints.
    Administer,
}

impl fmt::Display for Action<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Read(rt) => write!(f, "read record type {rt:?} (not in its readers)"),
            Action::Invalidate(rt) => {
                write!(f, "invalidate record type {rt:?} (not in its invalidators)")
            }
            Action::Publish(source) => {
                write!(f, "publish to source {source:?} (not in its publishers)")
            }
            Action::Administer => write!(f, "administer droid (not in auth.admins)"),
        }
    }
}

/// Every issuer some grant of `config` names, or `None` when a record type
/// lets any authenticated issuer read it (then any issuer may need its key).
/// A token of an issuer outside this set can do nothing, so its key is
/// never fetched.
pub fn granted_issuers(config: &Config) -> Option<std::collections::HashSet<String>> {
    let mut issuers = std::collections::HashSet::new();
    for rt in config.record_types.values() {
        if rt.readers.iter().any(|i| i == ANY_ISSUER) {
            return None;
        }
        issuers.extend(rt.readers.iter().cloned());
        issuers.extend(rt.invalidators.iter().cloned());
    }
    for source in config.sources.values() {
        issuers.extend(source.publishers.iter().cloned());
    }
    issuers.extend(config.admins.iter().cloned());
    Some(issuers)
}

/// Whether `caller` may do `action` under `config`'s grants. Nothing can be
/// done with a record type or source that is not declared, so those are let
/// through for the handlers to answer `404` naming what is unknown.
pub fn permits(config: &Config, caller: &Caller, action: Action<'_>) -> bool {
    let Caller::Service { issuer, .. } = caller else {
        return true;
    };
    let listed = |list: &[String]| list.iter().any(|i| i == issuer);
    match action {
        Action::Read(rt) => config
            .record_types
            .get(rt)
            .is_none_or(|rt| listed(&rt.readers) || rt.readers.iter().any(|i| i == ANY_ISSUER)),
        Action::Invalidate(rt) => config
            .record_types
            .get(rt)
            .is_none_or(|rt| listed(&rt.invalidators)),
        Action::Publish(source) => config
            .sources
            .get(source)
            .is_none_or(|s| listed(&s.publishers)),
        Action::Administer => listed(&config.admins),
    }
}
