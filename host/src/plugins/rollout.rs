//! Judging a rollout: is the candidate doing worse than the version it would
//! replace? Both are measured over the same period (since the rollout started),
//! on the calls each made, so a backing store's bad minute hurts both alike.

use super::deployment::Candidate;
use super::version::Version;
use crate::config::RolloutPolicy;

/// What a candidate is judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Calls that failed by the plugin's own fault (traps, panics, deadlines,
    /// the memory cap, invalid results, limits).
    Traps,
    /// Calls that produced no result, reported failures included.
    Failures,
}

/// Why a candidate is rolled back: it did worse than the version it would
/// replace by more than the margin, on one measure. Its `Display` is the
/// reason kept in the rollback record and shown to operators.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What it did worse on.
    pub measure: Measure,
    /// The candidate's rate (0 to 1) and its calls.
    pub candidate: (f64, u64),
    /// The current version's rate and calls over the same period.
    pub current: (f64, u64),
    /// The current version's label.
    pub current_label: String,
    /// The margin allowed (0 to 1).
    pub margin: f64,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.measure {
            Measure::Traps => "trap",
            Measure::Failures => "failure",
        };
        write!(
            f,
            "{what} rate {:.1}% over {} calls, against {:.1}% over {} calls for {} (margin {:.1} points)",
            self.candidate.0 * 100.0,
            self.candidate.1,
            self.current.0 * 100.0,
            self.current.1,
            self.current_label,
            self.margin * 100.0
        )
    }
}

/// Why a candidate should be rolled back, or `None` while it holds up (or has
/// not answered enough calls to tell).
pub fn judge(policy: &RolloutPolicy, current: &Version, candidate: &Candidate) -> Option<Verdict> {
    let cand = candidate
        .version
        .stats()
        .since(&candidate.baseline.candidate);
    if cand.calls < policy.rollback_min_calls {
        return None;
    }
    let base = current.stats().since(&candidate.baseline.current);
    let margin = policy.rollback_margin;
    let worse = |measure: Measure, cand_rate: f64, base_rate: f64| {
        (cand_rate > base_rate + margin).then(|| Verdict {
            measure,
            candidate: (cand_rate, cand.calls),
            current: (base_rate, base.calls),
            current_label: current.label().to_owned(),
            margin,
        })
    };
    worse(Measure::Traps, cand.trap_rate(), base.trap_rate())
        .or_else(|| worse(Measure::Failures, cand.failure_rate(), base.failure_rate()))
}
