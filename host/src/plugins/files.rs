//! How plugin files become versions: a plugin's first load (every file of
//! it, newest declared version current), a changed file (a new version taken
//! in, or a removal noted), a rescan, and the failures of files that did not
//! load, kept by file for the admin API.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::{Arrival, FileOutcome, LoadFailure, Plugin, Plugins, Version, plugin};
use crate::locks::{lock, read, write};
use crate::metrics::PLUGIN_LOAD_FAILURES;
use crate::runtime::{LoadError, naming};

impl Plugins {
    /// The plugin called `name`, loading every version of it from the folder if
    /// it is not held yet. The newest version (by semver, then by file time)
    /// becomes current. Fails only when no version of it loads.
    pub fn ensure(&self, name: &str) -> Result<Arc<Plugin>, Vec<LoadError>> {
        if let Some(plugin) = self.get(name) {
            return Ok(plugin);
        }
        let _loading = lock(&self.loading);
        if let Some(plugin) = self.get(name) {
            return Ok(plugin);
        }
        let files = self.files_of(name);
        if files.is_empty() {
            return Err(vec![LoadError::Read {
                path: self.dir.join(format!("{name}.wasm")),
                reason: format!(
                    "no file of plugin {name:?} in the plugin folder (expected {name}.wasm or {name}@VERSION.wasm)"
                ),
            }]);
        }
        let mut loaded = Vec::new();
        let mut errors = Vec::new();
        for path in files {
            let result = std::fs::read(&path)
                .map_err(|e| LoadError::Read {
                    path: path.clone(),
                    reason: e.to_string(),
                })
                .and_then(|bytes| self.load_file(&path, &bytes));
            match result {
                Ok(version) => loaded.push((modified(&path), version)),
                Err(e) => errors.push(e),
            }
        }
        loaded.sort_by(|(a_time, a), (b_time, b)| {
            newest_first(a.declared(), b.declared()).then(b_time.cmp(a_time))
        });
        let mut versions = loaded.into_iter().map(|(_, v)| v);
        let Some(current) = versions.next() else {
            return Err(errors);
        };
        let others: Vec<_> = versions
            .filter(|v| {
                let same = v.world() == current.world();
                if !same {
                    self.fail(
                        v.file(),
                        format!(
                            "is {} but other versions of plugin {name:?} are {}",
                            v.world().with_article(),
                            current.world().with_article()
                        ),
                        Some(v.sha256()),
                    );
                }
                same
            })
            .collect();
        let plugin = Arc::new(Plugin::new(name, current, others));
        if let Some(saved) = lock(&self.saved).plugins.get(name) {
            plugin.restore(saved);
        }
        self.publish_loaded(&plugin);
        write(&self.plugins).insert(name.to_owned(), plugin.clone());
        self.save(&plugin);
        Ok(plugin)
    }

    /// Handles a changed file in the plugin folder (a `.wasm` or its `.sig`):
    /// loads the new version and takes it in, or notes its removal.
    pub fn file_changed(&self, path: &Path) -> FileOutcome {
        let Some(wasm) = wasm_path(path) else {
            return FileOutcome::Ignored(format!("{} is not a plugin file", path.display()));
        };
        let Some(file) = wasm.file_name().map(|f| f.to_string_lossy().into_owned()) else {
            return FileOutcome::Ignored("no file name".to_owned());
        };
        let Some(named) = naming::parse_file_name(&file) else {
            return FileOutcome::Ignored(format!(
                "{file} is not named NAME.wasm or NAME@VERSION.wasm"
            ));
        };
        let _loading = lock(&self.loading);
        let Some(plugin) = self.get(&named.plugin) else {
            lock(&self.failures).remove(&file);
            return FileOutcome::Ignored(format!(
                "{file}: no record type uses plugin {:?}; it is loaded when the configuration names it",
                named.plugin
            ));
        };
        if !wasm.exists() {
            lock(&self.failures).remove(&file);
            let still_serving = plugin.file_removed(&file);
            for label in &still_serving {
                tracing::warn!(plugin = %named.plugin, version = %label, file = %file, "plugin file removed, but the version keeps serving: record types use it");
            }
            self.publish_loaded(&plugin);
            return FileOutcome::Removed {
                plugin: named.plugin,
                still_serving,
            };
        }
        let bytes = match std::fs::read(&wasm) {
            Ok(bytes) => bytes,
            Err(e) => {
                let reason = format!("{}: cannot read the plugin file: {e}", wasm.display());
                self.fail(&file, reason.clone(), None);
                return FileOutcome::Failed(reason);
            }
        };
        // A content already held (a version swapped back in) needs no loading.
        let held = plugin.held(&crate::runtime::sha256_hex(&bytes));
        let version = match held {
            Some(v) => {
                lock(&self.failures).remove(&file);
                v
            }
            None => match self.load_file(&wasm, &bytes) {
                Ok(v) => v,
                Err(e) => return FileOutcome::Failed(e.to_string()),
            },
        };
        if version.world() != plugin.world() {
            let reason = format!(
                "{file}: is {} but plugin {:?} is {}; the running version stays",
                version.world().with_article(),
                named.plugin,
                plugin.world().with_article()
            );
            self.fail(&file, reason.clone(), Some(version.sha256()));
            return FileOutcome::Failed(reason);
        }
        let label = version.label().to_owned();
        let policy = *read(&self.policy);
        let arrival = plugin.arrive(version, policy.initial_share);
        match &arrival {
            Arrival::Current => {
                tracing::info!(plugin = %named.plugin, version = %label, "new plugin version serves every tenant")
            }
            Arrival::Candidate(share) => {
                tracing::info!(plugin = %named.plugin, version = %label, share = %share, "new plugin version rolling out")
            }
            Arrival::Known(_) => {
                tracing::debug!(plugin = %named.plugin, version = %label, "plugin file unchanged")
            }
            Arrival::PreviouslyRolledBack(reason) => {
                tracing::warn!(plugin = %named.plugin, version = %label, %reason, "this version was rolled back before; it waits for an operator's rollout")
            }
        }
        self.publish_loaded(&plugin);
        self.save(&plugin);
        FileOutcome::Loaded {
            plugin: named.plugin,
            version: label,
            arrival,
        }
    }

    /// Loads every file of every held plugin again (files that changed while
    /// nobody watched); returns what became of each.
    pub fn rescan(&self) -> Vec<FileOutcome> {
        let names: Vec<String> = read(&self.plugins).keys().cloned().collect();
        let mut outcomes = Vec::new();
        for name in names {
            for path in self.files_of(&name) {
                outcomes.push(self.file_changed(&path));
            }
        }
        outcomes
    }

    /// Judges and loads one file's bytes, recording a failure by file name.
    fn load_file(&self, path: &Path, bytes: &[u8]) -> Result<Arc<Version>, LoadError> {
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let result = self.load_file_inner(path, bytes);
        match &result {
            Ok(version) => {
                lock(&self.failures).remove(&file);
                tracing::info!(
                    plugin = %version.plugin.info().name,
                    version = version.label(),
                    file = %file,
                    world = %version.world(),
                    source = ?version.plugin.info().provenance,
                    load_ms = version.plugin.info().load_time.as_millis() as u64,
                    trusted_by = version.trusted_by.as_deref().unwrap_or("-"),
                    "plugin version loaded"
                );
            }
            Err(e) => self.fail(&file, e.to_string(), None),
        }
        result
    }

    fn load_file_inner(&self, path: &Path, bytes: &[u8]) -> Result<Arc<Version>, LoadError> {
        let sha256 = crate::runtime::sha256_hex(bytes);
        let trust = read(&self.trust).clone();
        let trusted_by = trust
            .check(path, &sha256)
            .map_err(|reason| LoadError::Untrusted {
                path: path.to_path_buf(),
                reason,
            })?;
        let plugin = self.runtime.load_bytes(path, bytes, None)?;
        Ok(Arc::new(Version {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            plugin,
            loaded_at: SystemTime::now(),
            trusted_by,
            withdrawn: Default::default(),
        }))
    }

    fn fail(&self, file: &str, reason: String, sha256: Option<&str>) {
        tracing::error!(file, %reason, "plugin file not loaded; the running version stays");
        ::metrics::counter!(PLUGIN_LOAD_FAILURES, "file" => file.to_owned()).increment(1);
        lock(&self.failures).insert(
            file.to_owned(),
            LoadFailure {
                file: file.to_owned(),
                reason,
                sha256: sha256.map(str::to_owned),
                at: plugin::unix_now(),
            },
        );
    }

    /// The files of plugin `name` in the folder, sorted by name.
    fn files_of(&self, name: &str) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|f| naming::parse_file_name(&f.to_string_lossy()))
                    .is_some_and(|n| n.plugin == name)
            })
            .collect();
        files.sort();
        files
    }
}

/// The `.wasm` a changed path stands for: itself, or the file a `.sig` signs.
fn wasm_path(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    if name.ends_with(".wasm") {
        Some(path.to_path_buf())
    } else {
        name.strip_suffix(".sig")
            .filter(|n| n.ends_with(".wasm"))
            .map(|n| path.with_file_name(n))
    }
}

/// Orders declared versions newest first: semver ones by precedence, before
/// any that are not semver, before none.
fn newest_first(a: Option<&str>, b: Option<&str>) -> std::cmp::Ordering {
    let parse = |v: Option<&str>| v.and_then(|v| semver::Version::parse(v).ok());
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => b.cmp_precedence(&a),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}
