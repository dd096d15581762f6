//! How loading or calling a plugin can fail.
//!
//! Load errors name the file and say why it was refused, in words an operator can
//! act on. Call errors separate what the plugin reported on purpose (a
//! [`PluginFailure`](crate::entity::PluginFailure)) from what happened to it: a
//! deadline, the memory cap, a trap or panic. Each call error maps to its own API
//! error code and metric outcome.

use std::path::PathBuf;
use std::time::Duration;

use crate::entity::PluginFailure;

use super::stats::Outcome;
use super::world::WorldKind;

/// Why a plugin file was not loaded. The running version, if any, stays in place.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{}: cannot read the plugin file: {reason}", path.display())]
    Read {
        /// The plugin file.
        path: PathBuf,
        /// What the operating system said.
        reason: String,
    },
    /// Trust is required and nothing vouches for the file.
    #[error("{}: {reason}", path.display())]
    Untrusted {
        /// The plugin file.
        path: PathBuf,
        /// Why it is not trusted.
        reason: String,
    },
    /// The file is not a WebAssembly component.
    #[error("{}: not a WebAssembly component: {reason}", path.display())]
    NotAComponent {
        /// The plugin file.
        path: PathBuf,
        /// What the file looks like instead.
        reason: String,
    },
    /// wasmtime could not compile the component.
    #[error("{}: the component does not compile: {reason}", path.display())]
    Compile {
        /// The plugin file.
        path: PathBuf,
        /// wasmtime's explanation.
        reason: String,
    },
    /// The component exports none of the droid plugin worlds.
    #[error(
        "{}: not a droid plugin: it exports neither droid:plugin/read-through (adapter world) nor droid:plugin/transform (transformer world); its exports are: {}",
        path.display(),
        if exports.is_empty() { "none".to_owned() } else { exports.join(", ") }
    )]
    NotADroidPlugin {
        /// The plugin file.
        path: PathBuf,
        /// What the component exports instead.
        exports: Vec<String>,
    },
    /// The component was built against a droid:plugin version this host does not speak.
    #[error(
        "{}: built against droid:plugin@{found}, but this host accepts droid:plugin@{accepted} (a different major version); rebuild the plugin with a droid-sdk for {accepted}",
        path.display()
    )]
    IncompatibleVersion {
        /// The plugin file.
        path: PathBuf,
        /// The package version the component was built against.
        found: String,
        /// The versions this host accepts, as a semver requirement.
        accepted: String,
    },
    /// The component implements the other world than the record type needs.
    #[error(
        "{}: is {} component, but record type {record_type:?} needs {}",
        path.display(),
        found.with_article(),
        expected.with_article()
    )]
    WrongWorld {
        /// The plugin file.
        path: PathBuf,
        /// The record type that asked for it.
        record_type: String,
        /// The world the record type needs.
        expected: WorldKind,
        /// The world the component implements.
        found: WorldKind,
    },
    /// The component imports something droid does not give plugins.
    #[error("{}: imports {import}, {reason}", path.display())]
    UnsupportedImport {
        /// The plugin file.
        path: PathBuf,
        /// The import's full name.
        import: String,
        /// Why droid does not provide it.
        reason: String,
    },
    /// The component's imports or exports do not have the types this host expects.
    #[error("{}: does not match the droid:plugin interfaces this host implements: {reason}", path.display())]
    Link {
        /// The plugin file.
        path: PathBuf,
        /// wasmtime's explanation.
        reason: String,
    },
    /// The component links but cannot be instantiated (its start-up traps, or
    /// its initial memory exceeds the largest cap).
    #[error("{}: fails to instantiate: {reason}", path.display())]
    Instantiate {
        /// The plugin file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
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
