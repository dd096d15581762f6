//! The admin API's answers as types: its handlers serialize them and `droid`'s
//! commands (`plugins`, `sources`, `dead-letters`) deserialize and print them,
//! so the API and its command-line client cannot drift apart.

use serde::{Deserialize, Serialize};

pub use crate::app::{ConfigStatus, NodeStatus, Pushed, ReloadReport};
use crate::config::Share;
pub use crate::failure::Logged;
pub use crate::ingest::{Health, Replayed};
pub use crate::plugins::{LoadFailure, PluginStatus, Rollback};
use crate::store::DeadLetter;

/// `GET /v1/admin/plugins`: every plugin, and every file that did not load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginList {
    /// The plugins loaded.
    pub plugins: Vec<PluginStatus>,
    /// Files of the plugin folder that did not load, with why.
    pub load_failures: Vec<LoadFailure>,
}

/// `POST .../rollout` and `.../promote`: the version that now serves, and to
/// what share of tenants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Serving {
    /// The version's label.
    pub version: String,
    /// The share of tenants it serves.
    pub share: Share,
}

/// `POST .../rollback`: the rollback that happened.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollbackDone {
    /// What was taken back and what serves instead.
    pub rollback: Rollback,
}

/// `GET /v1/admin/config`: the configuration file's status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigAnswer {
    /// How the file has fared since start.
    pub status: ConfigStatus,
    /// The record types configured.
    pub record_types: Vec<String>,
}

/// `POST /v1/admin/reload`: what the reload changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reloaded {
    /// What the configuration's reload changed.
    pub config: ReloadReport,
    /// What became of each plugin file, as a line each.
    pub plugin_files: Vec<String>,
}

/// `GET /v1/admin/sources`: every ingestion source's failures against its
/// thresholds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceList {
    /// One per configured source.
    pub sources: Vec<Health>,
}

/// `GET /v1/admin/errors/{id}`: a failed fetch's detail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The failure, as the journal keeps it.
    pub error: Logged,
}

/// `GET /v1/admin/dead-letters`: the dead letters asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetterList {
    /// In source and event id order.
    pub dead_letters: Vec<DeadLetter>,
}

/// `GET /v1/admin/fleet`: what each node said it holds and serves, and the
/// plugin files pushed to the fleet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetAnswer {
    /// Whether this node shares a store with others (otherwise it is alone,
    /// and both lists hold only what it knows).
    pub shared: bool,
    /// Each node's last report.
    pub nodes: Vec<NodeStatus>,
    /// The pushed files.
    pub files: Vec<PushedFileAnswer>,
}

/// A pushed plugin file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushedFileAnswer {
    /// Its name.
    pub file: String,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// Whether it came with a signature.
    pub signed: bool,
    /// When it was pushed (ms since the epoch).
    pub pushed_at_ms: u64,
}
