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

/// `GET /v1/admin/tenants`: the realms, and every tenant pinned to one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantList {
    /// Every realm declared.
    pub realms: Vec<RealmAnswer>,
    /// Every pin, by tenant.
    pub tenants: Vec<TenantPin>,
}

/// A realm as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealmAnswer {
    /// Its name.
    pub name: String,
    /// Where clients reach it.
    pub public_url: Option<String>,
    /// Whether the answering node serves it.
    pub served: bool,
    /// Whether unpinned tenants without a rule go to it.
    pub default: bool,
}

/// One pin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantPin {
    /// The tenant.
    pub tenant: String,
    /// Its realm.
    pub realm: String,
}

/// `GET /v1/admin/tenants/{tenant}` (and what a pin answers): where a
/// tenant lives, and its migrations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantAnswer {
    /// The tenant.
    pub tenant: String,
    /// Its realm.
    pub realm: String,
    /// Whether a pin (not a rule or the default) puts it there.
    pub pinned: bool,
    /// Whether the answering node serves it.
    pub served_here: bool,
    /// Where its realm is served.
    pub realm_url: Option<String>,
    /// Its migrations, newest first.
    pub migrations: Vec<MigrationAnswer>,
}

/// A realm migration as the admin API and the platform's hooks show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationAnswer {
    /// Its id.
    pub migration_id: String,
    /// The tenant it moves.
    pub tenant: String,
    /// From.
    pub source_realm: String,
    /// To.
    pub target_realm: String,
    /// The window's start (RFC 3339).
    pub start: String,
    /// The window's end (RFC 3339).
    pub end: String,
    /// `Scheduled`, `Copying`, `Ready-to-commit`, `Committing`,
    /// `Committed`, `Failed`, `Rolling back` or `Rolled back`.
    pub status: String,
    /// Records copied (or removed, while committing or rolling back).
    pub records: u64,
    /// What the copy verified on both sides: records and SHA-256.
    pub verified: Option<(u64, String)>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Every status it was in, with when (RFC 3339).
    pub history: Vec<(String, String)>,
    /// The node working on it, if one is.
    pub worker: Option<String>,
}

impl From<&crate::tenancy::Migration> for MigrationAnswer {
    fn from(m: &crate::tenancy::Migration) -> Self {
        use crate::tenancy::migration::rfc3339;
        Self {
            migration_id: m.id.clone(),
            tenant: m.tenant.clone(),
            source_realm: m.source_realm.clone(),
            target_realm: m.target_realm.clone(),
            start: rfc3339(m.window_start_ms),
            end: rfc3339(m.window_end_ms),
            status: m.state.as_str().to_owned(),
            records: m.copied,
            verified: m.tally.as_ref().map(|t| (t.records, t.sha256.clone())),
            error: m.error.clone(),
            history: m
                .history
                .iter()
                .map(|(s, at)| (s.as_str().to_owned(), rfc3339(*at)))
                .collect(),
            worker: m.worker.clone(),
        }
    }
}

/// `GET /v1/admin/migrations`: every migration, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MigrationList {
    /// The migrations.
    pub migrations: Vec<MigrationAnswer>,
}

/// `GET /v1/admin/restores`: every restore, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreList {
    /// The restores.
    pub restores: Vec<crate::recovery::Restore>,
}

/// How far one realm is backed up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealmBackup {
    /// The realm.
    pub realm: String,
    /// The last sequence number backed up.
    pub shipped_seq: u64,
    /// The last sequence number of its change log.
    pub last_seq: u64,
    /// Changes not yet backed up: what losing the store's disk now would cost.
    pub lag_changes: u64,
}

/// `GET /v1/admin/backups` and `POST /v1/admin/backups/verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupStatus {
    /// Where backups go.
    pub target: String,
    /// Each realm backed up.
    pub realms: Vec<RealmBackup>,
    /// The last verification of each realm.
    pub verifications: Vec<crate::backup::Report>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditAnswer {
    /// Its number.
    pub id: u64,
    /// When (RFC 3339).
    pub at: String,
    /// What it says: action, id, by, outcome, details.
    pub entry: serde_json::Value,
}

/// `GET /v1/admin/audit`: entries in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditList {
    /// The entries.
    pub entries: Vec<AuditAnswer>,
}

/// `GET /v1/admin/erasures`: every erasure, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErasureList {
    /// The erasures.
    pub erasures: Vec<crate::recovery::Erasure>,
}
