//! The record type's configuration values: the `config` table of its entry in
//! `droid.toml`. A plugin sees only its own record type's values.

use crate::host;

/// The value configured under `name`, if any.
pub fn get(name: &str) -> Option<String> {
    host::config_get(name)
}

/// The value under `name`, or `default` when it is not configured.
pub fn get_or(name: &str, default: &str) -> String {
    get(name).unwrap_or_else(|| default.to_owned())
}

/// Every configured name, sorted.
pub fn names() -> Vec<String> {
    host::config_names()
}
