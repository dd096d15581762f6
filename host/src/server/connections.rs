//! Every open connection of a listener, and what it is doing: whether a
//! request is in progress, when bytes last moved, whether a request head has
//! started arriving. From that, a watchdog closes connections that take too
//! long to send a request head (slowloris) or sit idle, and a listener at its
//! cap closes the connection idle the longest to make room for a new one.
//!
//! A connection whose peer stops reading (droid's writes have not moved for
//! `write_timeout`) is dropped outright: what droid buffered for it is freed
//! at once.
//!
//! A connection is *idle* when no request is in progress on it (its response
//! sent in full) and no request head has started. Only idle connections are
//! closed for being idle or evicted: a slow answer, a long change-feed stream
//! or a request body still arriving are never cut here (their own deadlines
//! bound them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::ConnectionLimits;

/// Why droid closed a connection, for the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    /// Its request head did not arrive within `header_timeout`.
    HeaderTimeout,
    /// Nothing happened on it for `idle_timeout`.
    Idle,
    /// The listener was at its cap and this was the connection idle the longest.
    Evicted,
    /// Its peer read nothing droid wrote for `write_timeout`.
    WriteTimeout,
    /// The listener was at its cap and its reserve, none idle: answered `503`.
    Refused,
    /// The server is shutting down.
    Shutdown,
}

impl Reason {
    pub(super) fn label(self) -> &'static str {
        match self {
            Reason::HeaderTimeout => "header_timeout",
            Reason::Idle => "idle",
            Reason::WriteTimeout => "write_timeout",
            Reason::Evicted => "evicted",
            Reason::Refused => "refused",
            Reason::Shutdown => "shutdown",
        }
    }
}

/// What one connection is doing, updated by its I/O and its requests.
#[derive(Debug)]
pub(super) struct Activity {
    /// Milliseconds since the tracker started when bytes last moved.
    last_ms: AtomicU64,
    /// When the first byte of a request head arrived (ms), or 0: none pending.
    head_since_ms: AtomicU64,
    /// Requests in progress (HTTP/2 has several at once).
    in_flight: AtomicU32,
    /// Since when (ms) a write has been waiting for the peer to read, or 0.
    write_blocked_ms: AtomicU64,
    /// Set when droid decided to close it, and why.
    closing: Mutex<Option<Reason>>,
    close: Notify,
    /// Whether any request was seen on it (a connection refused in reserve
    /// mode answers its first request only).
    served: AtomicBool,
    epoch: Instant,
}

impl Activity {
    fn new(epoch: Instant) -> Self {
        let activity = Self {
            last_ms: AtomicU64::new(0),
            head_since_ms: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            write_blocked_ms: AtomicU64::new(0),
            closing: Mutex::new(None),
            close: Notify::new(),
            served: AtomicBool::new(false),
            epoch,
        };
        activity.touch();
        activity
    }

    fn now_ms(&self) -> u64 {
        // At least 1, so 0 can mean "not set".
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }

    /// Bytes moved.
    pub(super) fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A write could not go out: the peer's window is full.
    pub(super) fn write_blocked(&self) {
        let now = self.now_ms();
        let _ =
            self.write_blocked_ms
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Bytes went out.
    pub(super) fn wrote(&self) {
        self.write_blocked_ms.store(0, Ordering::Relaxed);
        self.touch();
    }

    /// Bytes arrived: with nothing in progress, they start a request head.
    pub(super) fn read(&self) {
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ =
                self.head_since_ms
                    .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// A request's head arrived and its handling begins; the guard ends it.
    pub(super) fn begin(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since_ms.store(0, Ordering::Relaxed);
        self.served.store(true, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    /// Whether a request is in progress.
    pub(super) fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    /// Whether any request was seen on this connection.
    pub(super) fn served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    /// How long it has been idle, or `None` while it is not.
    fn idle_for(&self, now_ms: u64) -> Option<u64> {
        if self.busy() || self.head_since_ms.load(Ordering::Relaxed) != 0 {
            return None;
        }
        Some(now_ms.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }

    /// How long its pending request head has been arriving, if one is.
    fn head_for(&self, now_ms: u64) -> Option<u64> {
        match self.head_since_ms.load(Ordering::Relaxed) {
            0 => None,
            since if !self.busy() => Some(now_ms.saturating_sub(since)),
            _ => None,
        }
    }

    /// Asks the connection's task to close it, for `reason` (the first one wins).
    pub(super) fn close(&self, reason: Reason) {
        let mut closing = self.closing.lock().unwrap_or_else(|e| e.into_inner());
        if closing.is_none() {
            *closing = Some(reason);
            self.close.notify_one();
        }
    }

    /// Completes once droid decided to close the connection, with the reason.
    pub(super) async fn closed(&self) -> Reason {
        loop {
            let notified = self.close.notified();
            if let Some(reason) = *self.closing.lock().unwrap_or_else(|e| e.into_inner()) {
                return reason;
            }
            notified.await;
        }
    }
}

/// Marks a request in progress until dropped (with its response body).
#[derive(Debug)]
pub(super) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// The open connections of one listener.
#[derive(Debug)]
pub(super) struct Tracker {
    limits: ConnectionLimits,
    open: Mutex<HashMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
    epoch: Instant,
    /// The gauge of open connections, labelled by listener.
    gauge: metrics::Gauge,
    listener: &'static str,
}

impl Tracker {
    pub(super) fn new(limits: ConnectionLimits, listener: &'static str) -> Self {
        Self {
            limits,
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            epoch: Instant::now(),
            gauge: metrics::gauge!(crate::metrics::CONNECTIONS_OPEN, "listener" => listener),
            listener,
        }
    }

    /// How many connections are open.
    pub(super) fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Registers a new connection; it is forgotten when the handle drops.
    pub(super) fn open(self: &Arc<Self>) -> Handle {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(self.epoch));
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, activity.clone());
        self.gauge.increment(1.0);
        Handle {
            tracker: self.clone(),
            id,
            activity,
        }
    }

    /// Closes the connection idle the longest to make room; false when none is idle.
    pub(super) fn evict_one(&self) -> bool {
        let now = self.now_ms();
        let victim = {
            let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            open.values()
                .filter(|a| a.closing.lock().is_ok_and(|c| c.is_none()))
                .filter_map(|a| a.idle_for(now).map(|idle| (idle, a.clone())))
                .max_by_key(|(idle, _)| *idle)
                .map(|(_, a)| a)
        };
        match victim {
            Some(activity) => {
                activity.close(Reason::Evicted);
                true
            }
            None => false,
        }
    }

    /// Asks every connection to close: the server is shutting down.
    pub(super) fn close_all(&self) {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for activity in open.values() {
            activity.close(Reason::Shutdown);
        }
    }

    /// One pass of the watchdog: closes connections whose request head is
    /// late or that have been idle too long.
    pub(super) fn sweep(&self) {
        let now = self.now_ms();
        let header = self.limits.header_timeout.as_millis() as u64;
        let idle = self.limits.idle_timeout.as_millis() as u64;
        let write = self.limits.write_timeout.as_millis() as u64;
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for activity in open.values() {
            let blocked = activity.write_blocked_ms.load(Ordering::Relaxed);
            if blocked != 0 && now.saturating_sub(blocked) > write {
                activity.close(Reason::WriteTimeout);
            } else if activity.head_for(now).is_some_and(|t| t > header) {
                activity.close(Reason::HeaderTimeout);
            } else if activity.idle_for(now).is_some_and(|t| t > idle) {
                activity.close(Reason::Idle);
            }
        }
    }

    /// How often the watchdog should sweep: often enough to close within a
    /// tenth of the shorter timeout, at most four times a second.
    pub(super) fn sweep_interval(&self) -> Duration {
        (self
            .limits
            .header_timeout
            .min(self.limits.idle_timeout)
            .min(self.limits.write_timeout)
            / 10)
            .clamp(Duration::from_millis(10), Duration::from_millis(250))
    }

    pub(super) fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    fn now_ms(&self) -> u64 {
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }

    pub(super) fn count_closed(&self, reason: Reason) {
        metrics::counter!(
            crate::metrics::CONNECTIONS_CLOSED,
            "listener" => self.listener,
            "reason" => reason.label()
        )
        .increment(1);
    }
}

/// One connection's entry; dropping it forgets the connection.
#[derive(Debug)]
pub(super) struct Handle {
    tracker: Arc<Tracker>,
    id: u64,
    pub(super) activity: Arc<Activity>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.tracker
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        self.tracker.gauge.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(header_ms: u64, idle_ms: u64) -> Arc<Tracker> {
        Arc::new(Tracker::new(
            ConnectionLimits {
                header_timeout: Duration::from_millis(header_ms),
                idle_timeout: Duration::from_millis(idle_ms),
                write_timeout: Duration::from_secs(10),
                max_connections: 10,
                reserve_connections: 1,
            },
            "test",
        ))
    }

    fn closing(handle: &Handle) -> Option<Reason> {
        *handle.activity.closing.lock().unwrap()
    }

    #[test]
    fn a_late_head_and_an_idle_connection_are_closed_a_busy_one_is_not() {
        let tracker = tracker(30, 60);
        let (slow, idle, busy) = (tracker.open(), tracker.open(), tracker.open());
        slow.activity.read();
        let _request = busy.activity.begin();
        std::thread::sleep(Duration::from_millis(40));
        tracker.sweep();
        assert_eq!(closing(&slow), Some(Reason::HeaderTimeout));
        assert_eq!(closing(&idle), None);
        std::thread::sleep(Duration::from_millis(40));
        tracker.sweep();
        assert_eq!(closing(&idle), Some(Reason::Idle));
        assert_eq!(closing(&busy), None);
    }

    #[test]
    fn eviction_takes_the_longest_idle_connection() {
        let tracker = tracker(1_000, 1_000);
        let old = tracker.open();
        std::thread::sleep(Duration::from_millis(5));
        let newer = tracker.open();
        let busy = tracker.open();
        let _request = busy.activity.begin();
        assert!(tracker.evict_one());
        assert_eq!(
            (closing(&old), closing(&newer)),
            (Some(Reason::Evicted), None)
        );
        assert!(tracker.evict_one());
        assert!(!tracker.evict_one(), "the busy one stays");
        assert_eq!(tracker.len(), 3);
        drop(old);
        assert_eq!(tracker.len(), 2);
    }
}
