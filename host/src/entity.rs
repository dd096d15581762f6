//! The host's own vocabulary for what plugins consume and produce.
//!
//! These mirror the WIT types but belong to the host: the API, the caches and the
//! store use them without knowing that a WebAssembly component produced them.

use serde::{Deserialize, Serialize};

/// One entity record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    /// The record's key within its record type and tenant.
    pub key: String,
    /// The tenant that owns the record.
    pub tenant: String,
    /// The record as a JSON document.
    pub body: String,
    /// The provider's version of the record, if it has one.
    pub version: Option<u64>,
}

/// Names a record without its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRef {
    /// The record's key.
    pub key: String,
    /// The tenant that owns the record.
    pub tenant: String,
    /// The provider's version of the deletion, if it has one.
    pub version: Option<u64>,
}

/// One change a transformer asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum EntityOp {
    /// Create or replace the record.
    Upsert(Entity),
    /// Remove the record.
    Delete(EntityRef),
}

/// One event a provider published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceEvent {
    /// Unique within its source.
    pub id: String,
    /// The provider's source name.
    pub source: String,
    /// What happened, in the provider's words.
    pub kind: String,
    /// The tenant the event belongs to.
    pub tenant: String,
    /// When it happened, in milliseconds since the Unix epoch.
    pub occurred_at: u64,
    /// The provider's payload.
    #[serde(with = "payload_text")]
    pub payload: Vec<u8>,
}

/// What an adapter found for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The record exists.
    Found(Entity),
    /// The backing store has no record under the key.
    NotFound,
}

/// A failure the plugin itself reported, as opposed to a crash of the plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginFailure {
    /// The input is malformed; retrying will not help.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The backing store answered with a status outside the contract.
    #[error("backing store answered {status}: {message}")]
    UpstreamStatus {
        /// The status the backing store sent.
        status: u16,
        /// The plugin's explanation.
        message: String,
    },
    /// The backing store could not be reached.
    #[error("backing store unavailable: {0}")]
    UpstreamUnavailable(String),
    /// The backing store did not answer in time.
    #[error("backing store timed out: {0}")]
    UpstreamTimeout(String),
    /// Something else failed inside the plugin.
    #[error("plugin error: {0}")]
    Internal(String),
    /// The upstream droid (of a sidecar) does not serve the tenant: it
    /// lives in another realm, at the URL given.
    #[error("the tenant lives in another realm: {0}")]
    Elsewhere(String),
}

/// Payloads are bytes on the wire to plugins but usually JSON: in JSON files
/// (sample events, dead letters) they are written as the JSON value itself when
/// they parse as JSON, and as a string otherwise.
mod payload_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(payload: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(value) => serde::Serialize::serialize(&value, s),
            Err(_) => s.serialize_str(&String::from_utf8_lossy(payload)),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(match value {
            serde_json::Value::String(text) => text.into_bytes(),
            other => other.to_string().into_bytes(),
        })
    }
}
