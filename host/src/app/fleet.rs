//! Plugins across a fleet of nodes sharing a store: files operators push
//! (`POST /v1/admin/plugins/files/{file}`, `droid plugins push`) are kept in
//! the store, and every node writes them into its own plugin folder and loads
//! them there, checking trust itself; rollout decisions (current versions,
//! rollouts, promotions, rollbacks, automatic ones included) are kept in the
//! store too, and each node applies the others' (see `plugins::Plugins`,
//! which shares them). Each node also reports which versions it holds and
//! serves, for `GET /v1/admin/fleet`.
//!
//! A node alone (the embedded store) keeps a pushed file in its plugin folder
//! and its decisions in `plugins.state_file`, as before.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Control, Service};
use crate::plugins::{Arrival, FileOutcome, VersionState};
use crate::runtime::{naming, sha256_hex};
use crate::store::{Fleet, PushedPlugin, now_ms};

/// How often a node looks for pushed files and others' decisions.
const SYNC_INTERVAL: Duration = Duration::from_millis(250);

/// How often a node reports what it holds and serves.
const REPORT_INTERVAL: Duration = Duration::from_secs(2);

/// What a push did on the node that took it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pushed {
    /// The file.
    pub file: String,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// Whether the other nodes get it (the store is shared).
    pub shared: bool,
    /// What became of it here: `loaded` (with the version and what it does
    /// now) or `not_in_use` (no record type names the plugin yet).
    pub outcome: String,
    /// The version's label, when loaded.
    pub version: Option<String>,
    /// Its role now: `current`, `candidate` (with its share) or `staged`.
    pub serving: Option<String>,
}

/// Why a push was refused; nothing was kept.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The file name is not a plugin file's.
    #[error("{0:?} is not named NAME.wasm or NAME@VERSION.wasm")]
    Name(String),
    /// The component did not load here (trust, world, compile...).
    #[error("{0}")]
    Refused(String),
    /// The plugin folder or the store could not keep it.
    #[error("{0}")]
    Keep(String),
}

/// What one node says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node.
    pub node: String,
    /// When it last reported (ms since the epoch).
    pub at_ms: u64,
    /// Its plugins.
    pub plugins: Vec<NodePlugin>,
}

/// A plugin on one node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodePlugin {
    /// The plugin.
    pub name: String,
    /// The versions it holds, with what each does.
    pub versions: Vec<NodeVersion>,
}

/// A version on one node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeVersion {
    /// Its label.
    pub label: String,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// current, candidate, previous, standby or rolled-back.
    pub state: String,
    /// The share of tenants it serves here.
    pub share: String,
}

impl Control {
    /// Takes a pushed plugin file: into this node's plugin folder, loaded
    /// (refused files are removed again), then into the shared store for the
    /// other nodes. Blocking (it compiles).
    pub fn push_plugin(
        &self,
        file: &str,
        wasm: Vec<u8>,
        signature: Option<Vec<u8>>,
    ) -> Result<Pushed, PushError> {
        if file.contains('/') || naming::parse_file_name(file).is_none() {
            return Err(PushError::Name(file.to_owned()));
        }
        let dir = self.service.config().plugin_dir.clone();
        let path = dir.join(file);
        place(&path, &wasm, signature.as_deref()).map_err(PushError::Keep)?;
        let outcome = {
            let _changing = crate::locks::lock(&self.changing);
            self.plugins.file_changed(&path)
        };
        let (outcome, version, serving) = match outcome {
            FileOutcome::Loaded {
                version, arrival, ..
            } => ("loaded", Some(version), Some(describe(&arrival))),
            FileOutcome::Ignored(_) => ("not_in_use", None, None),
            FileOutcome::Failed(reason) => {
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(signature_path(&path));
                return Err(PushError::Refused(reason));
            }
            FileOutcome::Removed { .. } => {
                return Err(PushError::Keep(format!(
                    "{} vanished while it was loaded",
                    path.display()
                )));
            }
        };
        let sha256 = sha256_hex(&wasm);
        let shared = match &self.service.realms.base.fleet {
            Some(fleet) => {
                fleet
                    .push_plugin(&PushedPlugin {
                        file: file.to_owned(),
                        wasm,
                        sha256: sha256.clone(),
                        signature,
                        pushed_at_ms: now_ms(),
                    })
                    .map_err(|e| {
                        PushError::Keep(format!(
                            "loaded here, but the store cannot keep it for the other nodes: {e}"
                        ))
                    })?;
                true
            }
            None => false,
        };
        tracing::info!(file, sha256 = %sha256, shared, outcome, "plugin file pushed");
        Ok(Pushed {
            file: file.to_owned(),
            sha256,
            shared,
            outcome: outcome.to_owned(),
            version,
            serving,
        })
    }

    /// Applies the fleet's rollout decisions here, dropping what versions
    /// taken out of service had put in the caches.
    fn apply_fleet_decisions(&self, decisions: &std::collections::BTreeMap<String, String>) {
        let _changing = crate::locks::lock(&self.changing);
        for version in self.plugins.apply_decisions(decisions) {
            self.service.read_through.drop_produced_by(version.id);
        }
    }

    /// What this node holds and serves.
    pub fn node_status(&self, node: &str) -> NodeStatus {
        let (plugins, _) = self.plugins.status();
        NodeStatus {
            node: node.to_owned(),
            at_ms: now_ms(),
            plugins: plugins
                .into_iter()
                .map(|p| NodePlugin {
                    name: p.name,
                    versions: p
                        .versions
                        .into_iter()
                        .map(|v| NodeVersion {
                            label: v.label,
                            sha256: v.sha256,
                            state: v.state,
                            share: v.share.to_string(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// A role for the answer: what an arrival made of the version.
fn describe(arrival: &Arrival) -> String {
    match arrival {
        Arrival::Current => VersionState::Current.as_str().to_owned(),
        Arrival::Candidate(share) => format!("candidate at {share}"),
        Arrival::Known(label) => format!("already held as {label}"),
        Arrival::PreviouslyRolledBack(reason) => {
            format!("rolled back before ({reason}); it serves again only by a rollout")
        }
    }
}

/// Writes a plugin file (and its signature first, so the component never
/// lands without it) under temporary names, then renames them into place.
fn place(path: &Path, wasm: &[u8], signature: Option<&[u8]>) -> Result<(), String> {
    let write = |target: &Path, bytes: &[u8]| {
        let tmp = target.with_file_name(format!(
            ".{}.tmp",
            target.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, target))
            .map_err(|e| format!("cannot write {}: {e}", target.display()))
    };
    match signature {
        Some(signature) => write(&signature_path(path), signature)?,
        None => match std::fs::remove_file(signature_path(path)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("cannot remove an old signature: {e}"));
            }
            _ => {}
        },
    }
    write(path, wasm)
}

fn signature_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// This node's name in reports: the configured one, else the host name and
/// port (and, for port 0, the process and an instance number).
pub(super) fn node_name(service: &Service) -> String {
    static INSTANCES: AtomicU64 = AtomicU64::new(0);
    if let Some(name) = &service.config().node_name {
        return name.clone();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "droid".to_owned());
    match service.config().listen.port() {
        0 => format!(
            "{host}/{}-{}",
            std::process::id(),
            INSTANCES.fetch_add(1, Ordering::Relaxed)
        ),
        port => format!("{host}:{port}"),
    }
}

/// Starts the node's fleet loop on a thread of its own (store calls block):
/// first the fleet's decisions replace this node's, then pushed files,
/// others' decisions and this node's report, over and over. It ends when the
/// server shuts down or the app goes away.
pub(super) fn start(
    service: &Arc<Service>,
    control: &Arc<Control>,
    fleet: Arc<dyn Fleet>,
    node: &str,
) {
    let node = node.to_owned();
    let (service, control): (Weak<Service>, Weak<Control>) =
        (Arc::downgrade(service), Arc::downgrade(control));
    let spawned = std::thread::Builder::new()
        .name("droid-fleet".into())
        .spawn(move || {
            if let (Some(service), Some(control)) = (service.upgrade(), control.upgrade()) {
                for version in control.plugins.share_decisions(fleet.clone()) {
                    service.read_through.drop_produced_by(version.id);
                }
            }
            let mut synced: HashMap<String, String> = HashMap::new();
            let mut revision = 0;
            let mut reported = Instant::now() - REPORT_INTERVAL;
            while let (Some(service), Some(control)) = (service.upgrade(), control.upgrade()) {
                if *service.closing().borrow() {
                    break;
                }
                sync_files(&*fleet, &control, &mut synced);
                sync_decisions(&*fleet, &control, &mut revision);
                if reported.elapsed() >= REPORT_INTERVAL {
                    reported = Instant::now();
                    report(&*fleet, &control, &node);
                }
                drop((service, control));
                std::thread::sleep(SYNC_INTERVAL);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the fleet thread; pushed plugins and others' rollout decisions will not reach this node");
    }
}

/// Writes pushed files this node does not have (as pushed) into its plugin
/// folder and loads them.
fn sync_files(fleet: &dyn Fleet, control: &Control, synced: &mut HashMap<String, String>) {
    let files = match fleet.pushed_files() {
        Ok(files) => files,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list pushed plugin files; trying again");
            return;
        }
    };
    let dir = control.service.config().plugin_dir.clone();
    for file in files {
        if synced.get(&file.file) == Some(&file.sha256) {
            continue;
        }
        let path = dir.join(&file.file);
        let held = std::fs::read(&path).is_ok_and(|bytes| sha256_hex(&bytes) == file.sha256);
        if !held {
            let pushed = match fleet.pushed_plugin(&file.file) {
                Ok(Some(pushed)) => pushed,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(file = %file.file, error = %e, "cannot read a pushed plugin file; trying again");
                    continue;
                }
            };
            if let Err(e) = place(&path, &pushed.wasm, pushed.signature.as_deref()) {
                tracing::error!(file = %file.file, error = %e, "cannot write a pushed plugin file into the plugin folder");
                continue;
            }
            tracing::info!(file = %file.file, sha256 = %file.sha256, "plugin file pushed to the fleet arrived");
        }
        control.file_changed(&path);
        synced.insert(file.file, file.sha256);
    }
}

/// Applies the fleet's decisions when any changed since the last look.
fn sync_decisions(fleet: &dyn Fleet, control: &Control, applied: &mut u64) {
    match fleet.decisions_revision() {
        Ok(revision) if revision == *applied => {}
        Ok(_) => match fleet.decisions() {
            Ok((revision, decisions)) => {
                control.apply_fleet_decisions(&decisions);
                *applied = revision;
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the fleet's decisions; trying again")
            }
        },
        Err(e) => tracing::debug!(error = %e, "cannot read the fleet's decisions; trying again"),
    }
}

fn report(fleet: &dyn Fleet, control: &Control, node: &str) {
    let status = control.node_status(node);
    match serde_json::to_string(&status) {
        Ok(text) => {
            if let Err(e) = fleet.report_node(node, &text) {
                tracing::debug!(error = %e, "cannot report this node to the fleet; trying again");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot encode this node's report"),
    }
}
