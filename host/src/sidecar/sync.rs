//! How far the sidecar is behind its droid: the position it has applied, the
//! end of the droid's log as last heard, and when it last heard anything.
//! Answers are marked stale, and health says so, whenever this is not in sync.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::metrics::{
    SIDECAR_CHANGES_APPLIED, SIDECAR_IN_SYNC, SIDECAR_LAG_SECONDS, SIDECAR_LAG_SEQ,
    SIDECAR_PROPAGATION,
};

/// The follower's progress, shared with the request path.
#[derive(Debug)]
pub struct SyncState {
    inner: Mutex<Inner>,
    /// The position, for whoever waits on it (benchmarks, tests).
    position: tokio::sync::watch::Sender<u64>,
    timeout: Duration,
    metrics: SyncMetrics,
}

#[derive(Debug, Default)]
struct Inner {
    /// A feed stream is open.
    connected: bool,
    /// The last sequence number applied (every change up to it is reflected).
    position: Option<u64>,
    /// The end of the droid's log, as last heard.
    head: u64,
    /// When the feed last said anything.
    heard_at: Option<Instant>,
    /// The commit time (ms since the epoch) of the last change applied while
    /// behind the head: how old the sidecar's view is.
    behind_since_ms: Option<u64>,
    /// Full resynchronisations so far.
    resyncs: u64,
    /// Changes applied so far.
    applied: u64,
}

#[derive(Debug)]
struct SyncMetrics {
    in_sync: metrics::Gauge,
    lag_seq: metrics::Gauge,
    lag_seconds: metrics::Gauge,
    propagation: metrics::Histogram,
    /// Applied changes by kind, registered up front: applying a change costs
    /// no label lookup.
    applied: [(&'static str, metrics::Counter); 3],
}

/// What health and metrics report.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// Connected, heard from within the sync timeout, and caught up.
    pub in_sync: bool,
    /// A feed stream is open.
    pub connected: bool,
    /// The last sequence number applied.
    pub position: Option<u64>,
    /// The end of the droid's log, as last heard.
    pub head: u64,
    /// How many changes behind.
    pub lag_seq: u64,
    /// How old the sidecar's view may be, in seconds.
    pub lag_seconds: f64,
    /// Milliseconds since the feed last said anything.
    pub last_heard_ms: Option<u64>,
    /// Full resynchronisations since start.
    pub resyncs: u64,
    /// Changes applied since start (each once: the follower skips any at or
    /// below its position).
    pub applied: u64,
}

impl SyncState {
    /// Not yet connected; out of sync past `timeout` without a word.
    pub fn new(timeout: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            position: tokio::sync::watch::Sender::new(0),
            timeout,
            metrics: SyncMetrics {
                in_sync: metrics::gauge!(SIDECAR_IN_SYNC),
                lag_seq: metrics::gauge!(SIDECAR_LAG_SEQ),
                lag_seconds: metrics::gauge!(SIDECAR_LAG_SECONDS),
                propagation: metrics::histogram!(SIDECAR_PROPAGATION),
                applied: ["upsert", "delete", "invalidate"].map(|kind| {
                    (
                        kind,
                        metrics::counter!(SIDECAR_CHANGES_APPLIED, "kind" => kind),
                    )
                }),
            },
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().expect("sync state lock"))
    }

    /// The last sequence number applied.
    pub fn position(&self) -> Option<u64> {
        self.with(|s| s.position)
    }

    /// The last sequence number applied, now and as it moves: a change is
    /// visible through the sidecar once this reaches its sequence number.
    pub fn watch_position(&self) -> tokio::sync::watch::Receiver<u64> {
        self.position.subscribe()
    }

    /// A stream opened or closed.
    pub fn set_connected(&self, connected: bool) {
        self.with(|s| s.connected = connected);
    }

    /// Starts over: nothing applied, the next stream starts from now.
    pub fn restart(&self) {
        self.with(|s| {
            s.position = None;
            s.behind_since_ms = None;
            s.resyncs += 1;
        });
    }

    /// A heartbeat: the stream is at `position`, the log ends at `head`.
    pub fn heartbeat(&self, position: u64, head: u64) {
        self.with(|s| {
            s.heard_at = Some(Instant::now());
            s.position = Some(position.max(s.position.unwrap_or(0)));
            s.head = head.max(s.head);
            if s.head <= position {
                s.behind_since_ms = None;
            }
        });
    }

    /// A change at `seq`, which occurred at `occurred_at_ms` and was committed
    /// at `committed_at_ms`, is now visible.
    pub fn applied(&self, seq: u64, kind: &'static str, occurred_at_ms: u64, committed_at_ms: u64) {
        let now_ms = crate::store::now_ms();
        self.metrics
            .propagation
            .record(now_ms.saturating_sub(occurred_at_ms) as f64 / 1000.0);
        if let Some((_, counter)) = self.metrics.applied.iter().find(|(k, _)| *k == kind) {
            counter.increment(1);
        }
        self.with(|s| {
            s.heard_at = Some(Instant::now());
            s.position = Some(seq);
            s.head = s.head.max(seq);
            s.behind_since_ms = (s.head > seq).then_some(committed_at_ms);
            s.applied += 1;
        });
        self.position.send_replace(seq);
    }

    /// Whether answers may count as current.
    pub fn in_sync(&self) -> bool {
        self.report().in_sync
    }

    /// The state, for health and metrics.
    pub fn report(&self) -> SyncReport {
        let now = Instant::now();
        self.with(|s| {
            let last_heard = s.heard_at.map(|at| now.duration_since(at));
            let heard_recently = last_heard.is_some_and(|d| d < self.timeout);
            let lag_seq = s.head.saturating_sub(s.position.unwrap_or(0));
            let lag = match (s.behind_since_ms, heard_recently) {
                // Silent: everything since the last word may be missing.
                (_, false) => last_heard.unwrap_or_default(),
                (Some(at), true) => {
                    Duration::from_millis(crate::store::now_ms().saturating_sub(at))
                }
                (None, true) => Duration::ZERO,
            };
            // Behind with nothing applied yet on this stream (just reconnected):
            // how old the gap is is unknown, so not in sync until it closes.
            let catching_up = lag_seq > 0 && s.behind_since_ms.is_none();
            SyncReport {
                in_sync: s.connected
                    && heard_recently
                    && s.position.is_some()
                    && !catching_up
                    && lag < self.timeout,
                connected: s.connected,
                position: s.position,
                head: s.head,
                lag_seq,
                lag_seconds: lag.as_secs_f64(),
                last_heard_ms: last_heard.map(|d| d.as_millis() as u64),
                resyncs: s.resyncs,
                applied: s.applied,
            }
        })
    }

    /// Publishes the gauges.
    pub fn publish_gauges(&self) {
        let report = self.report();
        self.metrics
            .in_sync
            .set(if report.in_sync { 1.0 } else { 0.0 });
        self.metrics.lag_seq.set(report.lag_seq as f64);
        self.metrics.lag_seconds.set(report.lag_seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_sync_needs_a_connection_a_recent_word_and_no_old_backlog() {
        let sync = SyncState::new(Duration::from_millis(200));
        assert!(!sync.in_sync(), "never connected");
        sync.set_connected(true);
        assert!(!sync.in_sync(), "connected, nothing heard");
        sync.heartbeat(10, 10);
        let report = sync.report();
        assert!(report.in_sync, "{report:?}");
        assert_eq!((report.position, report.lag_seq), (Some(10), 0));

        // Behind by 5, the last applied change committed a second ago.
        sync.heartbeat(10, 15);
        sync.applied(11, "upsert", 0, crate::store::now_ms() - 1000);
        let report = sync.report();
        assert_eq!(report.lag_seq, 4);
        assert!(report.lag_seconds >= 1.0, "{report:?}");
        assert!(!report.in_sync);

        sync.heartbeat(15, 15);
        assert!(sync.in_sync());
        sync.heartbeat(15, 20);
        assert!(!sync.in_sync(), "behind, and how far back unknown");
        sync.applied(20, "delete", 0, crate::store::now_ms());
        assert!(sync.in_sync());
        sync.heartbeat(20, 20);
        std::thread::sleep(Duration::from_millis(250));
        assert!(!sync.in_sync(), "silent past the timeout");
        sync.heartbeat(20, 20);
        sync.set_connected(false);
        assert!(!sync.in_sync(), "disconnected");
    }
}
