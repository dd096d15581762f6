//! The backfill's memory between runs: the cursor after the last page droid
//! acknowledged, kept in a small JSON file, and the lock that keeps two
//! backfills of one source from interleaving.
//!
//! The file is replaced atomically (write a sibling, sync, rename, sync the
//! folder) after every acknowledged page, so a backfill killed at any moment
//! resumes at a page boundary: at worst it sends the page it was on again,
//! which the event ids make harmless.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// What a backfill has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The source the events were posted to.
    pub source: String,
    /// The bootstrap endpoint paged through; a resumed run must use the same.
    pub bootstrap_url: String,
    /// The cursor of the next page to fetch; `None` before the first page.
    pub cursor: Option<String>,
    /// Whether the last page was acknowledged.
    pub complete: bool,
    /// Pages acknowledged.
    pub pages: u64,
    /// Events sent and acknowledged, whatever their outcome.
    pub events: u64,
    /// The endpoint's estimate of all events, if it gives one.
    pub total: Option<u64>,
    /// Outcomes as droid counted them.
    pub outcomes: Outcomes,
}

/// Per-outcome counts from droid's ingestion answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    /// Written to the store.
    pub applied: u64,
    /// Seen before (a resent page, or live ingestion got there first).
    pub duplicate: u64,
    /// Not events at all; not kept.
    pub invalid: u64,
    /// Refused by the transformer or its output checks; in dead letters.
    pub rejected: u64,
    /// The transformer call failed; in dead letters.
    pub failed: u64,
}

impl Outcomes {
    /// Adds the counts of one ingestion answer.
    pub fn add(&mut self, answer: &serde_json::Value) {
        let n = |field: &str| answer[field].as_u64().unwrap_or(0);
        self.applied += n("applied");
        self.duplicate += n("duplicate");
        self.invalid += n("invalid");
        self.rejected += n("rejected");
        self.failed += n("failed");
    }
}

/// The state file of one backfill, locked for as long as this value lives.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// Held for the lock: the kernel lets it go when the process ends, however it ends.
    _lock: File,
}

impl StateFile {
    /// Locks the state at `path`, refusing if another backfill holds it.
    pub fn lock(path: &Path) -> anyhow::Result<Self> {
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)
                .with_context(|| format!("cannot create {}", folder.display()))?;
        }
        let lock_path = sibling(path, "lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another backfill is running with the state file {} (its lock {} is held)",
                path.display(),
                lock_path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
            }
        }
        Ok(Self {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved progress, if there is any.
    pub fn load(&self) -> anyhow::Result<Option<Progress>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.path.display()));
            }
        };
        serde_json::from_str(&text).map(Some).with_context(|| {
            format!(
                "{}: not a backfill state file (remove it, or pass --restart)",
                self.path.display()
            )
        })
    }

    /// Replaces the saved progress, durably, in one step.
    pub fn save(&self, progress: &Progress) -> anyhow::Result<()> {
        let temporary = sibling(&self.path, "tmp");
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&temporary)?;
            file.write_all(&serde_json::to_vec_pretty(progress)?)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)?;
            if let Some(folder) = self.path.parent() {
                File::open(folder)?.sync_all()?;
            }
            Ok(())
        };
        write().with_context(|| format!("cannot save the cursor to {}", self.path.display()))
    }
}

/// `FILE.EXT` beside `FILE`.
fn sibling(path: &Path, extension: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".");
    name.push(extension);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_survives_a_save_and_the_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backfill/tracker.json");
        let state = StateFile::lock(&path).unwrap();
        assert_eq!(state.load().unwrap(), None);
        let progress = Progress {
            source: "tracker".into(),
            bootstrap_url: "http://x/".into(),
            cursor: Some("c-2".into()),
            pages: 2,
            events: 200,
            ..Progress::default()
        };
        state.save(&progress).unwrap();
        assert_eq!(state.load().unwrap(), Some(progress));
        let second = StateFile::lock(&path).unwrap_err().to_string();
        assert!(second.contains("another backfill is running"), "{second}");
        drop(state);
        StateFile::lock(&path).unwrap();
    }

    #[test]
    fn a_damaged_state_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(&path, "{").unwrap();
        let error = StateFile::lock(&path).unwrap().load().unwrap_err();
        assert!(
            format!("{error:#}").contains("s.json: not a backfill state file"),
            "{error:#}"
        );
    }
}
