//! Judging a rollout: is the candidate doing worse than the version it would
//! replace? Both are measured over the same period (since the rollout started),
//! on the calls each made, so a backing store's bad minute hurts both alike.

use super::deployment::Candidate;
use super::version::Version;
use crate::config::RolloutPolicy;

/// Why a candidate should be rolled back, or `None` while it holds up (or has
/// not answered enough calls to tell).
pub fn judge(policy: &RolloutPolicy, current: &Version, candidate: &Candidate) -> Option<String> {
    let cand = candidate
        .version
        .stats()
        .since(&candidate.baseline.candidate);
    if cand.calls < policy.rollback_min_calls {
        return None;
    }
    let base = current.stats().since(&candidate.baseline.current);
    let margin = policy.rollback_margin;
    let worse = |what: &str, cand_rate: f64, base_rate: f64| {
        (cand_rate > base_rate + margin).then(|| {
            format!(
                "{what} rate {:.1}% over {} calls, against {:.1}% over {} calls for {} (margin {:.1} points)",
                cand_rate * 100.0,
                cand.calls,
                base_rate * 100.0,
                base.calls,
                current.label(),
                margin * 100.0
            )
        })
    };
    worse("trap", cand.trap_rate(), base.trap_rate())
        .or_else(|| worse("failure", cand.failure_rate(), base.failure_rate()))
}
