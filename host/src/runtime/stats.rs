//! Running totals of one loaded plugin version's calls: what rollout compares
//! when it decides whether a new version is worse than the one it replaces.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::failure::Outcome;

/// Counters of one version's calls, updated as each call ends.
#[derive(Debug, Default)]
pub struct CallStats {
    calls: AtomicU64,
    failures: AtomicU64,
    traps: AtomicU64,
    nanos: AtomicU64,
}

/// The counters at one moment; subtract two to get what happened in between.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    /// Calls that ended, whatever their outcome (host capacity refusals excluded).
    pub calls: u64,
    /// Calls that did not produce a result: the plugin reported an error, or it
    /// trapped, panicked, timed out, ran out of memory or answered nonsense.
    pub failures: u64,
    /// The part of `failures` that was the plugin's own fault at run time: traps,
    /// panics, deadlines, the memory cap, invalid results.
    pub traps: u64,
    /// Total time spent in calls, in nanoseconds.
    #[serde(skip)]
    pub nanos: u64,
}

impl CallStats {
    /// Counts one call that ended with `outcome` after `elapsed`.
    pub(crate) fn record(&self, outcome: Outcome, elapsed: Duration) {
        if !outcome.counts() {
            return;
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        if outcome.is_failure() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        if outcome.is_trap() {
            self.traps.fetch_add(1, Ordering::Relaxed);
        }
        self.nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            traps: self.traps.load(Ordering::Relaxed),
            nanos: self.nanos.load(Ordering::Relaxed),
        }
    }
}

impl StatsSnapshot {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &StatsSnapshot) -> StatsSnapshot {
        StatsSnapshot {
            calls: self.calls.saturating_sub(earlier.calls),
            failures: self.failures.saturating_sub(earlier.failures),
            traps: self.traps.saturating_sub(earlier.traps),
            nanos: self.nanos.saturating_sub(earlier.nanos),
        }
    }

    /// Failed calls over all calls (0 when there were none).
    pub fn failure_rate(&self) -> f64 {
        ratio(self.failures, self.calls)
    }

    /// Trapped calls over all calls (0 when there were none).
    pub fn trap_rate(&self) -> f64 {
        ratio(self.traps, self.calls)
    }

    /// Mean call duration in microseconds (0 when there were no calls).
    pub fn mean_micros(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.nanos as f64 / self.calls as f64 / 1_000.0
        }
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_sorted_into_failures_and_traps() {
        let stats = CallStats::default();
        for outcome in [
            Outcome::Ok,
            Outcome::Ok,
            Outcome::PluginError,
            Outcome::Trap,
            Outcome::Panic,
            Outcome::Capacity,
        ] {
            stats.record(outcome, Duration::from_micros(10));
        }
        let s = stats.snapshot();
        assert_eq!((s.calls, s.failures, s.traps), (5, 3, 2));
        assert!((s.failure_rate() - 0.6).abs() < 1e-9);
        assert!((s.mean_micros() - 10.0).abs() < 1e-9);
        let later = stats.snapshot();
        assert_eq!(later.since(&s).calls, 0);
    }
}
