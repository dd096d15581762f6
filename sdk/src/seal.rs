//! Sealing sensitive fields before they leave the plugin.
//!
//! A record type that declares sensitive fields (`sensitive_fields` in
//! `droid.toml`) refuses records that carry them in plain text. Seal them with
//! the record type's key, which droid hands the plugin through its
//! configuration:
//!
//! ```ignore
//! let email = droid_sdk::seal::hash(&person.email)?;      // matchable, not readable
//! let address = droid_sdk::seal::encrypt(&person.address)?; // readable with the key
//! ```
//!
//! Equal values seal to equal strings, so consumers can still match on them.
//! The format and the checks droid makes are those of the [`droid_seal`] crate.

pub use droid_seal::{Kind, SealError, SealKey, open, parse_key as key_from_hex, verify};

use crate::PluginError;

/// The configuration value droid puts the record type's seal key under.
pub const KEY_VALUE: &str = "droid.seal_key";

/// The record type's seal key, from the plugin's configuration.
pub fn key() -> Result<SealKey, PluginError> {
    let hex = crate::config::get(KEY_VALUE).ok_or_else(|| {
        PluginError::Internal(
            "this record type has no seal key (seal_key_file in droid.toml)".to_owned(),
        )
    })?;
    key_from_hex(&hex).map_err(|e| PluginError::Internal(format!("the seal key: {e}")))
}

/// `value` sealed as a keyed hash with the record type's key.
pub fn hash(value: &str) -> Result<String, PluginError> {
    Ok(droid_seal::hash(&key()?, value))
}

/// `value` encrypted with the record type's key.
pub fn encrypt(value: &str) -> Result<String, PluginError> {
    Ok(droid_seal::encrypt(&key()?, value))
}
