//! Request counts and latency by record type and outcome, with every handle
//! registered up front so recording costs an atomic add and no label lookups.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use metrics::{Counter, Histogram};

use super::error::ErrorCode;
use crate::metrics::{HTTP_REQUEST_DURATION, HTTP_REQUESTS};

/// How a request ended, for its metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A record was served.
    Found,
    /// `304 Not Modified`.
    NotModified,
    /// An error with this code (including `not_found`).
    Error(ErrorCode),
}

impl RequestOutcome {
    fn index(self) -> usize {
        match self {
            RequestOutcome::Found => 0,
            RequestOutcome::NotModified => 1,
            RequestOutcome::Error(code) => 2 + code as usize,
        }
    }

    fn labels() -> impl Iterator<Item = &'static str> {
        ["found", "not_modified"]
            .into_iter()
            .chain(ErrorCode::ALL.iter().map(|c| c.as_str()))
    }
}

/// The handles of one record type.
#[derive(Debug)]
struct Handles(Vec<(Counter, Histogram)>);

impl Handles {
    fn new(record_type: &str) -> Self {
        Self(
            RequestOutcome::labels()
                .map(|outcome| {
                    let labels = [
                        ("record_type", record_type.to_owned()),
                        ("outcome", outcome.to_owned()),
                    ];
                    (
                        metrics::counter!(HTTP_REQUESTS, &labels),
                        metrics::histogram!(HTTP_REQUEST_DURATION, &labels),
                    )
                })
                .collect(),
        )
    }
}

/// Request metrics for every configured record type.
#[derive(Debug)]
pub struct RequestMetrics {
    by_type: ArcSwap<HashMap<String, Arc<Handles>>>,
    /// Names that are not configured share one label, so a scan of random names
    /// cannot blow up the metric's cardinality.
    unknown: Handles,
}

impl RequestMetrics {
    /// Handles for `record_types`.
    pub fn new<'a>(record_types: impl IntoIterator<Item = &'a str>) -> Self {
        let metrics = Self {
            by_type: ArcSwap::default(),
            unknown: Handles::new("(unknown)"),
        };
        metrics.register(record_types);
        metrics
    }

    /// Adds handles for record types configured since (a reload); those of
    /// removed record types stay, so their counters do not jump back to zero.
    pub fn register<'a>(&self, record_types: impl IntoIterator<Item = &'a str>) {
        let mut by_type = (**self.by_type.load()).clone();
        for rt in record_types {
            by_type
                .entry(rt.to_owned())
                .or_insert_with(|| Arc::new(Handles::new(rt)));
        }
        self.by_type.store(Arc::new(by_type));
    }

    /// Counts one request of `record_type` that started at `started`.
    pub fn record(&self, record_type: &str, outcome: RequestOutcome, started: Instant) {
        let by_type = self.by_type.load();
        let handles = by_type.get(record_type).map_or(&self.unknown, |h| &**h);
        let (count, latency) = &handles.0[outcome.index()];
        count.increment(1);
        latency.record(started.elapsed().as_secs_f64());
    }
}
