//! Rollout decisions that survive a restart: which version of each plugin is
//! current, which one is rolling out to what share, and which were rolled back
//! and why. Without this, a restart would bring back a version droid had taken
//! out of service (the newest file in the folder wins by default).
//!
//! The file is JSON, rewritten whole (to a temporary name, then renamed) after
//! every change, so a crash leaves either the old or the new decisions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plugin::Rollback;

/// The decisions about every plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// By plugin name.
    pub plugins: BTreeMap<String, SavedPlugin>,
}

/// The decisions about one plugin. Versions are named by content hash.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedPlugin {
    /// The current version.
    pub current: Option<String>,
    /// The version rolling out, and its share (`"5%"`).
    pub candidate: Option<(String, String)>,
    /// Versions taken out of service, with the reason.
    #[serde(default)]
    pub rolled_back: BTreeMap<String, String>,
    /// The last rollback.
    pub last_rollback: Option<Rollback>,
}

/// Where the decisions are kept.
#[derive(Debug, Clone)]
pub struct SavedFile {
    path: PathBuf,
}

impl SavedFile {
    /// Decisions kept at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    /// The decisions saved, or none when there is no file yet. A file that
    /// cannot be read is reported and ignored: droid then starts from the
    /// folder's contents alone.
    pub fn load(&self) -> Saved {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!(file = %self.path.display(), error = %e, "cannot read the saved rollout decisions; starting from the plugin folder alone");
                Saved::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(e) => {
                tracing::error!(file = %self.path.display(), error = %e, "cannot read the saved rollout decisions; starting from the plugin folder alone");
                Saved::default()
            }
        }
    }

    /// Replaces the saved decisions with `saved`.
    pub fn store(&self, saved: &Saved) {
        if let Err(e) = write_atomically(&self.path, saved) {
            tracing::error!(file = %self.path.display(), error = %e, "cannot save rollout decisions; a restart would not know them");
        }
    }
}

fn write_atomically(path: &Path, saved: &Saved) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(saved)?)?;
    std::fs::rename(&tmp, path)
}
