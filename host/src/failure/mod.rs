//! How a fetch or a plugin call fails: the vocabulary the runtime, the read
//! path and both servers share. A call error separates what happened to a
//! plugin (a deadline, the memory cap, a trap or panic, a limit) from what it
//! reported on purpose (a [`PluginFailure`]); a fetch error adds egress
//! refusals, and is what any origin of the read path fails with (an adapter
//! plugin on droid, the upstream droid in a sidecar). Each maps to its own API
//! error code and metric outcome.

mod journal;

use std::time::Duration;

use crate::entity::PluginFailure;

pub use journal::{Context, ErrorId, Journal, Logged};

/// How a plugin call ended: its metric label, and what it says about the
/// plugin (what rollout compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It answered.
    Ok,
    /// It reported a failure on purpose.
    PluginError,
    /// It tried to reach something outside its base URL.
    EgressDenied,
    /// It ran past its deadline.
    Timeout,
    /// It hit its memory cap.
    MemoryExhausted,
    /// It panicked.
    Panic,
    /// It trapped.
    Trap,
    /// No call slot or instance was free: the host's capacity, not the plugin.
    Capacity,
    /// It returned something the host cannot use.
    InvalidResult,
    /// It went past a limit of its record type.
    LimitExceeded,
}

impl Outcome {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::PluginError => "plugin_error",
            Outcome::EgressDenied => "egress_denied",
            Outcome::Timeout => "timeout",
            Outcome::MemoryExhausted => "memory_exhausted",
            Outcome::Panic => "panic",
            Outcome::Trap => "trap",
            Outcome::Capacity => "capacity",
            Outcome::InvalidResult => "invalid_result",
            Outcome::LimitExceeded => "limit_exceeded",
        }
    }

    /// Whether the call counts for the plugin at all (a full pool does not).
    pub fn counts(self) -> bool {
        self != Outcome::Capacity
    }

    /// Whether the call produced no result.
    pub fn is_failure(self) -> bool {
        !matches!(self, Outcome::Ok | Outcome::Capacity)
    }

    /// Whether it failed by the plugin's own fault at run time (rather than
    /// reporting a failure, or being refused egress).
    pub fn is_trap(self) -> bool {
        self.is_failure() && !matches!(self, Outcome::PluginError | Outcome::EgressDenied)
    }
}

/// What happened to a plugin call that did not return normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The call ran past its deadline and was stopped.
    #[error("plugin exceeded its {} ms deadline", deadline.as_millis())]
    Timeout {
        /// The deadline it had.
        deadline: Duration,
    },
    /// The plugin tried to grow its memory past the record type's cap.
    #[error("plugin exceeded its memory cap of {limit_bytes} bytes")]
    MemoryExhausted {
        /// The cap.
        limit_bytes: u64,
    },
    /// The plugin panicked.
    #[error("plugin panicked: {message}")]
    Panic {
        /// The panic message the plugin printed.
        message: String,
    },
    /// The plugin trapped.
    #[error("plugin trapped: {message}")]
    Trap {
        /// The trap and where it happened.
        message: String,
    },
    /// Every instance slot of the runtime is in use.
    #[error("no plugin instance slot free; try again shortly")]
    Capacity,
    /// The plugin returned something the host cannot use.
    #[error("plugin returned an invalid result: {reason}")]
    InvalidResult {
        /// What was wrong with it.
        reason: String,
    },
    /// The plugin went past one of its record type's limits on what a call
    /// may do or hand back (`limits.*` in the configuration).
    #[error("plugin went past limits.{limit}: {detail}")]
    LimitExceeded {
        /// The limit's name in the configuration.
        limit: &'static str,
        /// What the plugin did.
        detail: String,
    },
}

impl CallError {
    /// The call's outcome.
    pub fn outcome(&self) -> Outcome {
        match self {
            CallError::Timeout { .. } => Outcome::Timeout,
            CallError::MemoryExhausted { .. } => Outcome::MemoryExhausted,
            CallError::Panic { .. } => Outcome::Panic,
            CallError::Trap { .. } => Outcome::Trap,
            CallError::Capacity => Outcome::Capacity,
            CallError::InvalidResult { .. } => Outcome::InvalidResult,
            CallError::LimitExceeded { .. } => Outcome::LimitExceeded,
        }
    }

    /// A limit of `record_type`'s exceeded: counted here, once.
    pub(crate) fn limit(record_type: &str, limit: &'static str, detail: String) -> Self {
        ::metrics::counter!(
            crate::metrics::PLUGIN_LIMITED,
            "record_type" => record_type.to_owned(),
            "limit" => limit
        )
        .increment(1);
        CallError::LimitExceeded { limit, detail }
    }
}

/// Why an adapter produced no record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The adapter reported a failure.
    #[error(transparent)]
    Plugin(PluginFailure),
    /// The adapter tried to reach something outside its base URL.
    #[error("egress denied: {0}")]
    EgressDenied(String),
    /// The call itself failed.
    #[error(transparent)]
    Call(CallError),
}
