//! The only clock a plugin sees: the host's wall clock.

use crate::host;

/// Milliseconds since the Unix epoch, UTC.
pub fn now_ms() -> u64 {
    host::now_ms()
}
