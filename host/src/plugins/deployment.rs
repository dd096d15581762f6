//! Which version serves which tenant: the current version, and optionally a
//! candidate serving a share of tenants while it proves itself.
//!
//! Tenants are assigned by a stable hash of plugin name and tenant into 10,000
//! buckets, so a tenant always sees the same version for a given share (growing
//! the share only adds tenants), the assignment survives restarts, and each
//! plugin's rollout falls on different tenants.

use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::version::Version;
use crate::config::Share;
use crate::runtime::StatsSnapshot;

/// The versions serving one plugin right now. Replaced whole on every change.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Serves every tenant the candidate does not.
    pub current: Arc<Version>,
    /// A version rolling out to a share of tenants.
    pub candidate: Option<Candidate>,
}

/// A version serving a share of tenants.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The version.
    pub version: Arc<Version>,
    /// The share of tenants it serves.
    pub share: Share,
    /// When its rollout started.
    pub since: SystemTime,
    /// Both versions' counters when the rollout started: the rollout is judged on
    /// the calls made since, side by side.
    pub baseline: Baseline,
}

/// Counters at the start of a rollout.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    /// The current version's.
    pub current: StatsSnapshot,
    /// The candidate's.
    pub candidate: StatsSnapshot,
}

impl Deployment {
    /// Only `current`, for every tenant.
    pub fn only(current: Arc<Version>) -> Self {
        Self {
            current,
            candidate: None,
        }
    }

    /// The version that serves `tenant` of plugin `plugin`.
    pub fn select(&self, plugin: &str, tenant: &str) -> &Arc<Version> {
        match &self.candidate {
            Some(c) if bucket(plugin, tenant) < c.share.basis_points() => &c.version,
            _ => &self.current,
        }
    }
}

/// The tenant's bucket (0 to 9,999) for `plugin`'s rollouts.
pub fn bucket(plugin: &str, tenant: &str) -> u16 {
    let digest = Sha256::new()
        .chain_update(plugin.as_bytes())
        .chain_update([0u8])
        .chain_update(tenant.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 10_000) as u16
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket("echo", "tenant-1"), bucket("echo", "tenant-1"));
        let under_ten_percent = (0..10_000)
            .filter(|i| bucket("echo", &format!("tenant-{i}")) < 1_000)
            .count();
        assert!(
            (850..=1150).contains(&under_ten_percent),
            "{under_ten_percent}"
        );
        // Another plugin's rollout picks other tenants.
        let same = (0..1_000)
            .filter(|i| {
                let t = format!("tenant-{i}");
                (bucket("echo", &t) < 1_000) == (bucket("other", &t) < 1_000)
            })
            .count();
        assert!(same < 1_000);
    }
}
