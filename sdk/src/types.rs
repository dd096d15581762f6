//! The data a plugin receives and returns, as plain Rust types.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// One event a provider published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEvent {
    /// Unique within its source; droid deduplicates and dead-letters by it.
    pub id: String,
    /// The provider's source name.
    pub source: String,
    /// What happened, in the provider's own words (for example `ticket.updated`).
    pub kind: String,
    /// The tenant the event belongs to.
    pub tenant: String,
    /// When the change happened at the provider, in milliseconds since the Unix epoch.
    pub occurred_at: u64,
    /// The provider's payload, usually JSON.
    pub payload: Vec<u8>,
}

impl SourceEvent {
    /// Parses the payload as JSON into `T`. A payload that does not parse is the
    /// event's fault, so the error is [`PluginError::InvalidInput`] (the event is
    /// dead-lettered rather than retried).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_slice(&self.payload).map_err(|e| {
            PluginError::InvalidInput(format!(
                "event {}: payload is not the expected JSON: {e}",
                self.id
            ))
        })
    }
}

/// One entity record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    /// The record's key within its record type and tenant.
    pub key: String,
    /// The tenant that owns the record.
    pub tenant: String,
    /// The record itself, a JSON document.
    pub body: String,
    /// The provider's version of the record, if it has one.
    pub version: Option<u64>,
}

impl Entity {
    /// A record whose body is `body` serialized as JSON.
    pub fn json(
        key: impl Into<String>,
        tenant: impl Into<String>,
        body: &impl Serialize,
    ) -> Result<Self, PluginError> {
        let body = serde_json::to_string(body)
            .map_err(|e| PluginError::Internal(format!("cannot serialize record: {e}")))?;
        Ok(Self {
            key: key.into(),
            tenant: tenant.into(),
            body,
            version: None,
        })
    }

    /// The same record with a version.
    pub fn with_version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }
}

/// Names a record without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRef {
    /// The record's key.
    pub key: String,
    /// The tenant that owns the record.
    pub tenant: String,
    /// The provider's version of the deletion, if it has one.
    pub version: Option<u64>,
}

/// One change a transformer asks droid to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityOp {
    /// Create or replace the record.
    Upsert(Entity),
    /// Remove the record.
    Delete(EntityRef),
}

/// What an adapter is asked to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// The record type, as configured in `droid.toml`.
    pub record_type: String,
    /// The key the consumer asked for; already checked by droid (no `/`, no control
    /// characters, at most 512 bytes).
    pub key: String,
    /// The tenant the consumer asked for.
    pub tenant: String,
}

/// A record an adapter found: what droid keeps of it. Its key and tenant are
/// the ones asked for, so an adapter never echoes them back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The record itself, a JSON document.
    pub body: String,
    /// The provider's version of the record, if it has one.
    pub version: Option<u64>,
}

impl Fetched {
    /// A record whose body is `body`, JSON text as the backing store served it.
    pub fn body(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            version: None,
        }
    }

    /// A record whose body is `value` serialized as JSON.
    pub fn json(value: &impl Serialize) -> Result<Self, PluginError> {
        let body = serde_json::to_string(value)
            .map_err(|e| PluginError::Internal(format!("cannot serialize record: {e}")))?;
        Ok(Self::body(body))
    }

    /// The same record with a version.
    pub fn with_version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }
}

/// What the backing store knows about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The record exists.
    Found(Fetched),
    /// The backing store has no record under the key.
    NotFound,
}

/// Why a plugin could not do what it was asked. droid maps each case to its own
/// API error code and metric, so pick the one that says whose problem it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// The input (an event payload, a key) is malformed; retrying will not help.
    InvalidInput(String),
    /// The backing store answered with a status the read-through contract does not allow.
    UpstreamStatus {
        /// The status it answered with.
        status: u16,
        /// What the plugin made of it.
        message: String,
    },
    /// The backing store could not be reached.
    UpstreamUnavailable(String),
    /// The backing store did not answer in time.
    UpstreamTimeout(String),
    /// Anything else that went wrong inside the plugin.
    Internal(String),
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            PluginError::UpstreamStatus { status, message } => {
                write!(f, "backing store answered {status}: {message}")
            }
            PluginError::UpstreamUnavailable(m) => write!(f, "backing store unavailable: {m}"),
            PluginError::UpstreamTimeout(m) => write!(f, "backing store timed out: {m}"),
            PluginError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for PluginError {}
