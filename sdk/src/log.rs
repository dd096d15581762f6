//! Logging into droid's log. Lines are tagged with the plugin and record type by
//! the host; long lines are truncated.

use crate::host;

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Useful while debugging.
    Debug,
    /// Normal operation worth recording.
    Info,
    /// Something unexpected that the plugin handled.
    Warn,
    /// Something failed.
    Error,
}

/// Writes one line at `level`.
pub fn log(level: Level, message: &str) {
    host::log(level, message);
}

/// Writes one line at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Writes one line at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Writes one line at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Writes one line at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Writes one line at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}
