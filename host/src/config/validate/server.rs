//! The listener's settings: connection limits (droid's `[server]`, the
//! sidecar's top level) and the change feed's budgets.

use std::time::Duration;

use super::super::raw::RawServer;
use super::super::{ConnectionLimits, FeedSettings, Problem};
use super::{Checker, MIB};

/// Connections: a request head must arrive within 10 s of its first byte;
/// a connection with nothing happening closes after a minute (longer than
/// the usual client pools' idle time, so clients close first).
const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// A peer that reads nothing for this long is gone as far as droid cares.
const DEFAULT_WRITE_TIMEOUT_MS: u64 = 30_000;
/// Descriptors kept free beyond the connection cap by default: the store,
/// plugin and key files, outbound HTTP and the change feed's own needs.
const FD_RESERVE: u64 = 256;
/// Connections beyond the cap kept for operators when none is idle.
const DEFAULT_RESERVE_CONNECTIONS: u64 = 32;
/// The change feed: a megabyte per subscriber, 64 MiB for all of them, and
/// the newest 16 MiB of changes shared by the caught-up ones.
const DEFAULT_FEED_SUBSCRIBER_BYTES: u64 = MIB;
const DEFAULT_FEED_BUFFER_BYTES: u64 = 64 * MIB;
const DEFAULT_FEED_TAIL_BYTES: u64 = 16 * MIB;

/// Connection limits of a listener at the top level of a file that checks
/// itself its own way (the sidecar's): the limits and the problems found.
pub(crate) fn check_connection_limits(raw: RawConnections) -> (ConnectionLimits, Vec<Problem>) {
    let mut c = Checker {
        problems: Vec::new(),
    };
    let limits = connection_limits(&mut c, "", raw);
    (limits, c.problems)
}

/// The connection settings of a listener, as written.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RawConnections {
    pub header_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub write_timeout_ms: Option<u64>,
    pub max_connections: Option<u64>,
    pub reserve_connections: Option<u64>,
}

/// Connection limits of a listener, under `table` (droid's `[server]`). By
/// default the cap and its reserve leave [`FD_RESERVE`] descriptors of the
/// open-files limit for everything else.
pub(super) fn connection_limits(
    c: &mut Checker,
    table: &str,
    raw: RawConnections,
) -> ConnectionLimits {
    let descriptors = open_files_limit();
    let reserve_connections = c.number(
        table,
        "reserve_connections",
        raw.reserve_connections,
        DEFAULT_RESERVE_CONNECTIONS,
        0,
        10_000,
    );
    let default_cap = descriptors
        .saturating_sub(FD_RESERVE + reserve_connections)
        .clamp(16, 10_000);
    let max_connections = c.number(
        table,
        "max_connections",
        raw.max_connections,
        default_cap,
        1,
        1_000_000,
    );
    if (max_connections + reserve_connections).saturating_add(64) > descriptors {
        tracing::warn!(
            max_connections,
            reserve_connections,
            open_files_limit = descriptors,
            "max_connections and reserve_connections are close to or above the open-files limit (ulimit -n): accepts may fail before the cap is reached"
        );
    }
    ConnectionLimits {
        header_timeout: c.millis(
            table,
            "header_timeout_ms",
            raw.header_timeout_ms,
            Duration::from_millis(DEFAULT_HEADER_TIMEOUT_MS),
            100,
            600_000,
        ),
        idle_timeout: c.millis(
            table,
            "idle_timeout_ms",
            raw.idle_timeout_ms,
            Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
            100,
            3_600_000,
        ),
        write_timeout: c.millis(
            table,
            "write_timeout_ms",
            raw.write_timeout_ms,
            Duration::from_millis(DEFAULT_WRITE_TIMEOUT_MS),
            100,
            3_600_000,
        ),
        max_connections: max_connections as usize,
        reserve_connections: reserve_connections as usize,
    }
}

/// The soft limit on open files of this process (`ulimit -n`).
fn open_files_limit() -> u64 {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        limit.current.unwrap_or(u64::MAX)
    }
    #[cfg(not(unix))]
    {
        u64::MAX
    }
}

/// The change feed's settings under `[server]`.
pub(super) fn feed(c: &mut Checker, raw: &RawServer) -> FeedSettings {
    let feed = FeedSettings {
        heartbeat: Duration::from_millis(c.number(
            "server",
            "feed_heartbeat_ms",
            raw.feed_heartbeat_ms,
            5_000,
            50,
            600_000,
        )),
        send_timeout: Duration::from_millis(c.number(
            "server",
            "feed_send_timeout_ms",
            raw.feed_send_timeout_ms,
            10_000,
            10,
            600_000,
        )),
        subscriber_bytes: c.number(
            "server",
            "feed_subscriber_bytes",
            raw.feed_subscriber_bytes,
            DEFAULT_FEED_SUBSCRIBER_BYTES,
            64 * 1024,
            1024 * MIB,
        ) as usize,
        buffer_bytes: c.number(
            "server",
            "feed_buffer_bytes",
            raw.feed_buffer_bytes,
            DEFAULT_FEED_BUFFER_BYTES,
            64 * 1024,
            64 * 1024 * MIB,
        ) as usize,
        tail_bytes: c.number(
            "server",
            "feed_tail_bytes",
            raw.feed_tail_bytes,
            DEFAULT_FEED_TAIL_BYTES,
            0,
            64 * 1024 * MIB,
        ) as usize,
    };
    if feed.buffer_bytes < feed.subscriber_bytes {
        c.problem(
            "server.feed_buffer_bytes",
            format!(
                "expected at least server.feed_subscriber_bytes ({}), found {}",
                feed.subscriber_bytes, feed.buffer_bytes
            ),
        );
    }
    feed
}
