//! Each source's failures over a sliding window, against its two thresholds:
//! above `warn_above` the source is in a warning state, above `page_above` in an
//! incident (the provider's on-call should be paged). Failures are events the
//! transformer refused or could not process.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::EventResult;
use crate::config::SourceConfig;
use crate::metrics::{INGEST_EVENTS, INGEST_SOURCE_STATE};

/// A source's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Failures at or under the warning threshold.
    Ok,
    /// Failures above the warning threshold.
    Warning,
    /// Failures above the paging threshold.
    Incident,
}

impl State {
    /// Its name, as the admin API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warning => "warning",
            State::Incident => "incident",
        }
    }

    /// The value of the `droid_ingest_source_state` gauge.
    pub fn gauge(self) -> f64 {
        match self {
            State::Ok => 0.0,
            State::Warning => 1.0,
            State::Incident => 2.0,
        }
    }
}

/// Failures per source, by time.
#[derive(Debug, Default)]
pub struct SourceHealth {
    failures: Mutex<HashMap<String, VecDeque<(Instant, u64)>>>,
}

/// A source's health, as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// The source.
    pub source: String,
    /// Its state.
    pub state: State,
    /// Failed events within the window.
    pub failures: u64,
    /// The window, in seconds.
    pub window_s: u64,
    /// The warning threshold.
    pub warn_above: u64,
    /// The paging threshold.
    pub page_above: u64,
}

impl SourceHealth {
    /// Notes `failures` failed events of `source` at `now`; returns the state after.
    pub fn record(
        &self,
        source: &str,
        config: &SourceConfig,
        failures: u64,
        now: Instant,
    ) -> Health {
        let mut all = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entries = all.entry(source.to_owned()).or_default();
        if failures > 0 {
            entries.push_back((now, failures));
        }
        health(source, config, entries, now)
    }

    /// The state of `source` at `now`.
    pub fn health(&self, source: &str, config: &SourceConfig, now: Instant) -> Health {
        self.record(source, config, 0, now)
    }

    /// Counts outcomes and failures against the source's thresholds.
    pub fn note_outcomes(&self, source: &str, config: &SourceConfig, results: &[EventResult]) {
        let mut failures = 0u64;
        for result in results {
            let outcome = match result {
                EventResult::Applied { .. } => "applied",
                EventResult::Duplicate => "duplicate",
                EventResult::Staged => "staged",
                EventResult::Invalid { .. } => "invalid",
                EventResult::Rejected { .. } => "rejected",
                EventResult::Failed { .. } => "failed",
                EventResult::Refused { .. } => "refused",
            };
            if !matches!(outcome, "applied" | "duplicate" | "staged") {
                failures += 1;
            }
            metrics::counter!(INGEST_EVENTS, "source" => source.to_owned(), "outcome" => outcome)
                .increment(1);
        }
        let health = self.record(source, config, failures, Instant::now());
        metrics::gauge!(INGEST_SOURCE_STATE, "source" => source.to_owned())
            .set(health.state.gauge());
        match health.state {
            State::Ok => {}
            State::Warning if failures > 0 => tracing::warn!(
                source,
                failures = health.failures,
                window_s = health.window_s,
                "ingestion failures above the warning threshold"
            ),
            State::Incident if failures > 0 => tracing::error!(
                source,
                failures = health.failures,
                window_s = health.window_s,
                "ingestion failures above the paging threshold: incident"
            ),
            _ => {}
        }
    }
}

fn health(
    source: &str,
    config: &SourceConfig,
    entries: &mut VecDeque<(Instant, u64)>,
    now: Instant,
) -> Health {
    let window = config.failure_window;
    while entries
        .front()
        .is_some_and(|(at, _)| now.saturating_duration_since(*at) > window)
    {
        entries.pop_front();
    }
    let failures: u64 = entries.iter().map(|(_, n)| n).sum();
    let state = if failures > config.page_above {
        State::Incident
    } else if failures > config.warn_above {
        State::Warning
    } else {
        State::Ok
    };
    Health {
        source: source.to_owned(),
        state,
        failures,
        window_s: window.as_secs(),
        warn_above: config.warn_above,
        page_above: config.page_above,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn thresholds_trip_at_the_right_counts_and_failures_age_out() {
        let config = SourceConfig {
            record_type: "t".into(),
            rate_limit: None,
            burst: None,
            failure_window: Duration::from_secs(60),
            warn_above: 0,
            page_above: 3,
            bootstrap_url: None,
            publishers: Vec::new(),
            max_in_flight: 16,
            stream: None,
        };
        let health = SourceHealth::default();
        let start = Instant::now();
        assert_eq!(health.health("s", &config, start).state, State::Ok);
        assert_eq!(health.record("s", &config, 1, start).state, State::Warning);
        assert_eq!(health.record("s", &config, 2, start).state, State::Warning);
        let h = health.record("s", &config, 1, start);
        assert_eq!((h.state, h.failures), (State::Incident, 4));
        let later = start + Duration::from_secs(61);
        assert_eq!(health.health("s", &config, later).state, State::Ok);
    }
}
