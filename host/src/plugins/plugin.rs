//! One plugin (a name record types refer to) and the versions of it droid holds:
//! which one is current, which one is rolling out, what was rolled back and why.
//!
//! Readers take the [`Deployment`] without locking (it is swapped whole);
//! changes take the plugin's lock, so two changes never interleave and the
//! deployment always matches the bookkeeping beside it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use super::deployment::{Baseline, Candidate, Deployment};
use super::saved::SavedPlugin;
use super::version::Version;
use crate::config::Share;
use crate::runtime::WorldKind;

/// A plugin and its versions.
#[derive(Debug)]
pub struct Plugin {
    name: String,
    world: WorldKind,
    deployment: ArcSwap<Deployment>,
    state: Mutex<State>,
}

/// The bookkeeping beside the deployment.
#[derive(Debug, Default)]
struct State {
    /// Every version held, current and candidate included.
    versions: Vec<Arc<Version>>,
    /// The version current before the last promotion: what a rollback of a
    /// promoted version returns to.
    previous: Option<Arc<Version>>,
    /// What each file of this plugin held when last seen (`None`: removed).
    files: BTreeMap<String, Option<String>>,
    /// Versions taken back, by hash, with the reason: never rolled out again
    /// automatically.
    rolled_back: BTreeMap<String, String>,
    /// The last rollback.
    last_rollback: Option<Rollback>,
}

/// A rollback that happened.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rollback {
    /// The version taken back.
    pub version: String,
    /// The version serving instead.
    pub serving: String,
    /// Why.
    pub reason: String,
    /// Whether droid decided it (rather than an operator).
    pub automatic: bool,
    /// When, in seconds since the Unix epoch.
    pub at: u64,
}

/// What became of a newly arrived version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// It serves every tenant.
    Current,
    /// It serves this share of tenants.
    Candidate(Share),
    /// It was already held under that label; nothing changed.
    Known(String),
    /// It was rolled back before, for this reason; it only serves again by an
    /// operator's rollout.
    PreviouslyRolledBack(String),
}

/// Why an operator's request cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No plugin of that name is held.
    #[error("no plugin named {0:?} is loaded; `droid plugins list` shows the loaded ones")]
    UnknownPlugin(String),
    /// No held version answers to the reference.
    #[error(
        "plugin {plugin:?} has no version {reference:?}; `droid plugins list` shows its versions"
    )]
    UnknownVersion {
        /// The plugin.
        plugin: String,
        /// What was asked for.
        reference: String,
    },
    /// Several held versions answer to the reference.
    #[error("{reference:?} names several versions of plugin {plugin:?} ({}); use a label or a longer hash prefix", matches.join(", "))]
    AmbiguousVersion {
        /// The plugin.
        plugin: String,
        /// What was asked for.
        reference: String,
        /// The labels it matches.
        matches: Vec<String>,
    },
    /// The state does not allow it.
    #[error("{0}")]
    Conflict(String),
}

/// What a rollback took out of service.
#[derive(Debug, Clone)]
pub struct RolledBack {
    /// The version taken back; cache entries it produced are to be dropped.
    pub version: Arc<Version>,
    /// The record of it.
    pub record: Rollback,
}

impl Plugin {
    /// A plugin whose first version is `current`.
    pub fn new(name: &str, current: Arc<Version>, others: Vec<Arc<Version>>) -> Self {
        let mut state = State::default();
        for v in std::iter::once(&current).chain(&others) {
            state
                .files
                .insert(v.file().to_owned(), Some(v.sha256().to_owned()));
        }
        state.versions.push(current.clone());
        state.versions.extend(others);
        Self {
            name: name.to_owned(),
            world: current.world(),
            deployment: ArcSwap::from_pointee(Deployment::only(current)),
            state: Mutex::new(state),
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The world all its versions implement.
    pub fn world(&self) -> WorldKind {
        self.world
    }

    /// The deployment now.
    pub fn deployment(&self) -> Arc<Deployment> {
        self.deployment.load_full()
    }

    /// The version that serves `tenant` now. The caller keeps it for the whole
    /// call, so a swap meanwhile does not affect the call.
    pub fn select(&self, tenant: &str) -> Arc<Version> {
        self.deployment.load().select(&self.name, tenant).clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The held version with content hash `sha256`.
    pub fn held(&self, sha256: &str) -> Option<Arc<Version>> {
        self.lock()
            .versions
            .iter()
            .find(|v| v.sha256() == sha256)
            .cloned()
    }

    /// Takes in a version that just landed in its file (newly loaded, or one
    /// already held whose file holds it again): it becomes current at once when
    /// `initial_share` is everything, and a candidate for that share otherwise.
    /// A file seen before with the same content changes nothing.
    pub fn arrive(&self, version: Arc<Version>, initial_share: Share) -> Arrival {
        let mut state = self.lock();
        let file = version.file().to_owned();
        let unchanged = state.files.get(&file).and_then(|s| s.as_deref()) == Some(version.sha256());
        state.files.insert(file, Some(version.sha256().to_owned()));
        let held = state
            .versions
            .iter()
            .find(|v| v.sha256() == version.sha256())
            .cloned();
        let version = held.clone().unwrap_or(version);
        let deployment = self.deployment.load_full();
        let serving = Arc::ptr_eq(&deployment.current, &version)
            || deployment
                .candidate
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(&c.version, &version));
        if held.is_none() {
            state.versions.push(version.clone());
        }
        let arrival = if unchanged || serving {
            Arrival::Known(version.label().to_owned())
        } else if let Some(reason) = state.rolled_back.get(version.sha256()) {
            Arrival::PreviouslyRolledBack(reason.clone())
        } else if initial_share == Share::ALL {
            self.make_current(&mut state, version);
            Arrival::Current
        } else {
            self.start_rollout(&state, version, initial_share);
            Arrival::Candidate(initial_share)
        };
        self.prune(&mut state);
        arrival
    }

    /// Notes that `file` no longer exists. Versions that serve keep serving;
    /// others loaded only from it are let go. Returns the labels still serving
    /// without a file.
    pub fn file_removed(&self, file: &str) -> Vec<String> {
        let mut state = self.lock();
        state.files.insert(file.to_owned(), None);
        self.prune(&mut state);
        let deployment = self.deployment.load();
        std::iter::once(&deployment.current)
            .chain(deployment.candidate.as_ref().map(|c| &c.version))
            .filter(|v| v.file() == file)
            .map(|v| v.label().to_owned())
            .collect()
    }

    /// Whether any file of this plugin still exists.
    pub fn has_files(&self) -> bool {
        self.lock().files.values().any(Option::is_some)
    }

    /// Starts rolling `reference` out to `share` of tenants (100%: promotes it).
    pub fn rollout(&self, reference: &str, share: Share) -> Result<Arc<Version>, ControlError> {
        let mut state = self.lock();
        let version = self.find(&state, reference)?;
        state.rolled_back.remove(version.sha256());
        version.set_withdrawn(false);
        let deployment = self.deployment.load_full();
        if Arc::ptr_eq(&deployment.current, &version) {
            return Err(ControlError::Conflict(format!(
                "{} is already the current version of plugin {:?}",
                version.label(),
                self.name
            )));
        }
        if share == Share::ALL {
            self.make_current(&mut state, version.clone());
        } else {
            match &deployment.candidate {
                // Changing the share of the running rollout keeps its baseline.
                Some(c) if Arc::ptr_eq(&c.version, &version) => {
                    self.deployment.store(Arc::new(Deployment {
                        current: deployment.current.clone(),
                        candidate: Some(Candidate { share, ..c.clone() }),
                    }));
                }
                _ => self.start_rollout(&state, version.clone(), share),
            }
        }
        self.prune(&mut state);
        Ok(version)
    }

    /// Makes the candidate current for every tenant.
    pub fn promote(&self) -> Result<Arc<Version>, ControlError> {
        let mut state = self.lock();
        let Some(candidate) = self.deployment.load().candidate.clone() else {
            return Err(ControlError::Conflict(format!(
                "plugin {:?} has no version rolling out to promote",
                self.name
            )));
        };
        self.make_current(&mut state, candidate.version.clone());
        self.prune(&mut state);
        Ok(candidate.version)
    }

    /// Takes back the candidate, or, with none, the current version in favour
    /// of the one it replaced.
    pub fn rollback(&self, reason: &str, automatic: bool) -> Result<RolledBack, ControlError> {
        let mut state = self.lock();
        let deployment = self.deployment.load_full();
        let (taken, serving) = match &deployment.candidate {
            Some(c) => {
                self.deployment
                    .store(Arc::new(Deployment::only(deployment.current.clone())));
                (c.version.clone(), deployment.current.clone())
            }
            None => {
                let Some(previous) = state.previous.take() else {
                    return Err(ControlError::Conflict(format!(
                        "plugin {:?} has nothing to roll back: no version is rolling out and none was replaced since start",
                        self.name
                    )));
                };
                self.deployment
                    .store(Arc::new(Deployment::only(previous.clone())));
                (deployment.current.clone(), previous)
            }
        };
        taken.set_withdrawn(true);
        state
            .rolled_back
            .insert(taken.sha256().to_owned(), reason.to_owned());
        let record = Rollback {
            version: taken.label().to_owned(),
            serving: serving.label().to_owned(),
            reason: reason.to_owned(),
            automatic,
            at: unix_now(),
        };
        state.last_rollback = Some(record.clone());
        self.prune(&mut state);
        Ok(RolledBack {
            version: taken,
            record,
        })
    }

    /// The decisions to keep across a restart.
    pub fn saved(&self) -> SavedPlugin {
        let state = self.lock();
        let deployment = self.deployment.load();
        SavedPlugin {
            current: Some(deployment.current.sha256().to_owned()),
            candidate: deployment
                .candidate
                .as_ref()
                .map(|c| (c.version.sha256().to_owned(), c.share.to_string())),
            rolled_back: state.rolled_back.clone(),
            last_rollback: state.last_rollback.clone(),
        }
    }

    /// Re-applies decisions saved before a restart, as far as the versions they
    /// name are loaded: the saved current version, the rollout in progress, and
    /// what was rolled back (never current again unless nothing else loads).
    pub fn restore(&self, saved: &SavedPlugin) {
        let mut state = self.lock();
        state.rolled_back = saved.rolled_back.clone();
        for v in &state.versions {
            v.set_withdrawn(state.rolled_back.contains_key(v.sha256()));
        }
        state.last_rollback = saved.last_rollback.clone();
        let by_sha = |sha: &str| state.versions.iter().find(|v| v.sha256() == sha).cloned();
        let current = saved.current.as_deref().and_then(by_sha).or_else(|| {
            // The default choice, unless it was rolled back.
            state
                .versions
                .iter()
                .find(|v| !state.rolled_back.contains_key(v.sha256()))
                .cloned()
        });
        if let Some(current) = current {
            self.deployment.store(Arc::new(Deployment::only(current)));
        }
        if let Some((sha, share)) = &saved.candidate
            && let (Some(candidate), Ok(share)) = (by_sha(sha), Share::parse(share))
            && !Arc::ptr_eq(&candidate, &self.deployment.load().current)
        {
            self.start_rollout(&state, candidate, share);
        }
        self.prune(&mut state);
    }

    /// The last rollback, if any.
    pub fn last_rollback(&self) -> Option<Rollback> {
        self.lock().last_rollback.clone()
    }

    /// Every held version with its state, current first.
    pub fn versions(&self) -> Vec<(Arc<Version>, VersionState)> {
        let state = self.lock();
        let deployment = self.deployment.load();
        let mut out: Vec<_> = state
            .versions
            .iter()
            .map(|v| {
                let role = if Arc::ptr_eq(v, &deployment.current) {
                    VersionState::Current
                } else if let Some(c) = deployment
                    .candidate
                    .as_ref()
                    .filter(|c| Arc::ptr_eq(v, &c.version))
                {
                    VersionState::Candidate(c.share)
                } else if state.rolled_back.contains_key(v.sha256()) {
                    VersionState::RolledBack
                } else if state.previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, v)) {
                    VersionState::Previous
                } else {
                    VersionState::Standby
                };
                (v.clone(), role)
            })
            .collect();
        out.sort_by_key(|(_, role)| role.order());
        out
    }

    /// Whether the file a version came from still holds it.
    pub fn on_disk(&self, version: &Version) -> bool {
        self.lock()
            .files
            .get(version.file())
            .and_then(|s| s.as_deref())
            == Some(version.sha256())
    }

    fn find(&self, state: &State, reference: &str) -> Result<Arc<Version>, ControlError> {
        let matches: Vec<_> = state
            .versions
            .iter()
            .filter(|v| v.answers_to(reference))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(ControlError::UnknownVersion {
                plugin: self.name.clone(),
                reference: reference.to_owned(),
            }),
            many => Err(ControlError::AmbiguousVersion {
                plugin: self.name.clone(),
                reference: reference.to_owned(),
                matches: many.iter().map(|v| v.label().to_owned()).collect(),
            }),
        }
    }

    fn make_current(&self, state: &mut State, version: Arc<Version>) {
        let old = self.deployment.load_full();
        if !Arc::ptr_eq(&old.current, &version) {
            state.previous = Some(old.current.clone());
        }
        self.deployment.store(Arc::new(Deployment::only(version)));
    }

    fn start_rollout(&self, _state: &State, version: Arc<Version>, share: Share) {
        let old = self.deployment.load_full();
        let baseline = Baseline {
            current: old.current.stats(),
            candidate: version.stats(),
        };
        self.deployment.store(Arc::new(Deployment {
            current: old.current.clone(),
            candidate: Some(Candidate {
                version,
                share,
                since: SystemTime::now(),
                baseline,
            }),
        }));
    }

    /// Lets go of versions nobody can reach any more: not serving, not the one a
    /// rollback returns to, and no longer in any file.
    fn prune(&self, state: &mut State) {
        let deployment = self.deployment.load();
        let files = &state.files;
        let previous = state.previous.clone();
        state.versions.retain(|v| {
            Arc::ptr_eq(v, &deployment.current)
                || deployment
                    .candidate
                    .as_ref()
                    .is_some_and(|c| Arc::ptr_eq(v, &c.version))
                || previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, v))
                || files.get(v.file()).and_then(|s| s.as_deref()) == Some(v.sha256())
        });
    }
}

/// A held version's part in its plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    /// Serves every tenant not in a rollout.
    Current,
    /// Serves a share of tenants.
    Candidate(Share),
    /// Replaced by the current version; a rollback returns to it.
    Previous,
    /// Loaded and ready for a rollout.
    Standby,
    /// Taken back; serves again only by an operator's rollout.
    RolledBack,
}

impl VersionState {
    /// The state's name in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Current => "current",
            VersionState::Candidate(_) => "candidate",
            VersionState::Previous => "previous",
            VersionState::Standby => "standby",
            VersionState::RolledBack => "rolled-back",
        }
    }

    fn order(self) -> u8 {
        match self {
            VersionState::Current => 0,
            VersionState::Candidate(_) => 1,
            VersionState::Previous => 2,
            VersionState::Standby => 3,
            VersionState::RolledBack => 4,
        }
    }
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
