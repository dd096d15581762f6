//! What the admin API and `droid plugins list` show about plugins.

use serde::{Deserialize, Serialize};

use super::plugin::{Plugin, Rollback, VersionState};
use crate::config::Share;
use crate::runtime::StatsSnapshot;

/// One plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginStatus {
    /// Its name.
    pub name: String,
    /// `adapter` or `transformer`.
    pub world: String,
    /// Its versions, current first.
    pub versions: Vec<VersionStatus>,
    /// The last rollback and its reason.
    pub last_rollback: Option<Rollback>,
}

/// One held version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionStatus {
    /// Its label (declared version plus content hash).
    pub label: String,
    /// The version it declares, if any.
    pub version: Option<String>,
    /// current, candidate, previous, standby or rolled-back.
    pub state: String,
    /// The share of tenants it serves.
    pub share: Share,
    /// The file it came from.
    pub file: String,
    /// Whether that file still holds it (a version may serve on after its file
    /// was replaced or removed).
    pub on_disk: bool,
    /// SHA-256 of the file.
    pub sha256: String,
    /// What made it trusted, if anything.
    pub trusted_by: Option<String>,
    /// When it was loaded, in seconds since the Unix epoch.
    pub loaded_at: u64,
    /// Whether it was compiled or came from the artifact cache.
    pub source: String,
    /// How long loading took, in milliseconds.
    pub load_ms: u64,
    /// Its calls since it was loaded.
    pub calls: StatsSnapshot,
    /// Mean call duration in microseconds.
    pub mean_call_us: f64,
}

/// A file that did not load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadFailure {
    /// The file, inside the plugin folder.
    pub file: String,
    /// Why.
    pub reason: String,
    /// Its hash, when it was read.
    pub sha256: Option<String>,
    /// When, in seconds since the Unix epoch.
    pub at: u64,
}

impl PluginStatus {
    /// The status of `plugin` now.
    pub fn of(plugin: &Plugin) -> Self {
        let deployment = plugin.deployment();
        let candidate_share = deployment
            .candidate
            .as_ref()
            .map_or(Share::NONE, |c| c.share);
        let versions = plugin
            .versions()
            .into_iter()
            .map(|(v, state)| {
                let share = match state {
                    VersionState::Current => {
                        Share::parse_const(10_000 - candidate_share.basis_points())
                    }
                    VersionState::Candidate(share) => share,
                    _ => Share::NONE,
                };
                let stats = v.stats();
                let info = v.plugin.info();
                VersionStatus {
                    label: v.label().to_owned(),
                    version: v.declared().map(str::to_owned),
                    state: state.as_str().to_owned(),
                    share,
                    file: v.file().to_owned(),
                    on_disk: plugin.on_disk(&v),
                    sha256: v.sha256().to_owned(),
                    trusted_by: v.trusted_by.clone(),
                    loaded_at: v
                        .loaded_at
                        .duration_since(std::time::SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    source: format!("{:?}", info.provenance).to_lowercase(),
                    load_ms: info.load_time.as_millis() as u64,
                    calls: stats,
                    mean_call_us: stats.mean_micros(),
                }
            })
            .collect();
        Self {
            name: plugin.name().to_owned(),
            world: plugin.world().to_string(),
            versions,
            last_rollback: plugin.last_rollback(),
        }
    }
}
