//! Continuous, immutable, encrypted backups of every realm this node serves
//! (`[backup]`), and reading them back for a restore.
//!
//! Each realm's backups are chains ([`manifest`]): a snapshot taken from one
//! read transaction of its store, then the change log shipped in segments
//! every `backup.segment_interval_ms` (so a lost data disk costs at most that
//! much acknowledged data), until the chain is due for a fresh snapshot.
//! Files are content-addressed and never rewritten ([`target`]); each
//! tenant's data in them is sealed with the tenant's own data key, wrapped
//! by the master key ([`keys`]). The change log is not trimmed past what was
//! shipped. Chains past `backup.retention_s` go whole ([`prune`]); every
//! file is verified every `backup.verify_interval_s` ([`verify`]) and before
//! a restore reads it ([`read`]).
//!
//! The work runs on a thread of its own with a small runtime for the
//! target's calls, apart from the workers serving requests.

mod error;
mod frames;
pub mod keys;
pub mod manifest;
mod prune;
pub mod read;
mod target;
pub mod verify;
mod writer;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use error::BackupError;
pub use keys::{Keyring, MasterKey};
pub use read::{At, Rebuilt, Wanted};
pub use target::Target;
pub use verify::{Problem, Report};

use crate::config::BackupSettings;
use crate::tenancy::Realms;

/// How often the backup thread looks whether the server is closing.
const TICK: Duration = Duration::from_millis(50);

/// The backups of this node's realms: their target and keys, how far each
/// realm is shipped, and what the last verification found.
#[derive(Debug)]
pub struct Backups {
    /// The settings in force (`[backup]`; a restart changes them).
    pub settings: BackupSettings,
    /// Where backups go.
    pub target: Target,
    /// The tenants' data keys.
    pub keys: Keyring,
    /// The last sequence number shipped, by realm served.
    shipped: BTreeMap<String, Arc<AtomicU64>>,
    /// The last verification of each realm.
    reports: Mutex<BTreeMap<String, Report>>,
}

impl Backups {
    /// The backups `settings` describe, for the realms `realms` serves:
    /// reads the master key file and opens the target.
    pub fn open(settings: &BackupSettings, realms: &Realms) -> Result<Self, BackupError> {
        let master = MasterKey::load(&settings.master_key_file)?;
        let target = Target::open(&settings.target)?;
        Ok(Self {
            settings: settings.clone(),
            keys: Keyring::new(master, target.clone()),
            target,
            shipped: realms
                .served()
                .map(|r| (r.name.clone(), Arc::new(AtomicU64::new(0))))
                .collect(),
            reports: Mutex::new(BTreeMap::new()),
        })
    }

    /// The last sequence number of `realm` backed up, if this node backs it
    /// up (0 until its first snapshot).
    pub fn shipped(&self, realm: &str) -> Option<u64> {
        self.shipped.get(realm).map(|s| s.load(Ordering::Acquire))
    }

    /// The last verification of every realm.
    pub fn reports(&self) -> Vec<Report> {
        crate::locks::lock(&self.reports)
            .values()
            .cloned()
            .collect()
    }

    /// Verifies every realm backed up now, keeps and returns the reports.
    /// Blocking.
    pub fn verify(&self, runtime: &tokio::runtime::Handle) -> Result<Vec<Report>, BackupError> {
        let (keys, damaged) = runtime.block_on(self.keys.all())?;
        let mut out = Vec::new();
        for realm in self.shipped.keys() {
            let mut report = runtime.block_on(verify::verify_realm(&self.target, &keys, realm))?;
            report.problems.extend(damaged.iter().map(|d| Problem {
                file: d.file.clone(),
                range: "a tenant's data key".to_owned(),
                reason: d.reason.clone(),
            }));
            for problem in &report.problems {
                tracing::error!(realm = %realm, file = %problem.file, range = %problem.range, reason = %problem.reason, "backup verification found a problem");
            }
            metrics::gauge!(crate::metrics::BACKUP_PROBLEMS, "realm" => realm.clone())
                .set(report.problems.len() as f64);
            metrics::gauge!(crate::metrics::BACKUP_VERIFIED_AT, "realm" => realm.clone())
                .set((report.at_ms / 1000) as f64);
            crate::locks::lock(&self.reports).insert(realm.clone(), report.clone());
            out.push(report);
        }
        Ok(out)
    }

    /// Starts the backup thread for the realms this node serves; it ships
    /// one last time and ends when `closing` turns true.
    pub fn start(
        self: &Arc<Self>,
        realms: &Arc<Realms>,
        mut closing: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let backups = self.clone();
        let mut writers: Vec<writer::RealmWriter> = realms
            .served()
            .filter_map(|realm| {
                let shipped = backups.shipped.get(&realm.name)?.clone();
                Some(writer::RealmWriter::new(realm.clone(), shipped))
            })
            .collect();
        // Held to the thread's end: whoever waits for the realms to be
        // released (a restart) waits for the last shipping too.
        let held = realms.clone();
        std::thread::Builder::new()
            .name("droid-backup".to_owned())
            .spawn(move || {
                // One worker of its own drives the target's I/O, so the
                // handle's `block_on` works from this thread and from calls
                // it makes (a current-thread runtime's handle drives none).
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("droid-backup-io")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        tracing::error!(error = %e, "the backup thread cannot start its runtime; no backups are taken");
                        return;
                    }
                };
                let mut verified = Instant::now();
                let mut first_verify = true;
                loop {
                    let started = Instant::now();
                    let ctx = writer::Context {
                        runtime: &runtime,
                        target: &backups.target,
                        keys: &backups.keys,
                        settings: &backups.settings,
                    };
                    let mut failed = false;
                    for writer in &mut writers {
                        failed |= !step(&ctx, writer);
                    }
                    if *closing.borrow_and_update() {
                        break;
                    }
                    if first_verify || verified.elapsed() >= backups.settings.verify_interval {
                        first_verify = false;
                        verified = Instant::now();
                        if let Err(e) = backups.verify(runtime.handle()) {
                            tracing::error!(error = %e, "backups could not be verified");
                        }
                    }
                    // The next round starts an interval after this one did
                    // (not after it ended), or as soon as a realm's log has
                    // grown by a whole segment: the recovery point stays
                    // within an interval, however long shipping takes.
                    while started.elapsed() < backups.settings.segment_interval {
                        let full = !failed
                            && writers
                                .iter()
                                .any(|w| w.backlog() >= backups.settings.segment_max_changes as u64);
                        if *closing.borrow() || full {
                            break;
                        }
                        std::thread::sleep(TICK.min(backups.settings.segment_interval));
                    }
                }
                drop(writers);
                drop(held);
            })
            .map(drop)
    }
}

/// One writer's step, its failure logged and counted (the next interval
/// tries again); says whether it went well.
fn step(ctx: &writer::Context<'_>, writer: &mut writer::RealmWriter) -> bool {
    let ok = match writer.step(ctx) {
        Ok(()) => true,
        Err(e) => {
            metrics::counter!(crate::metrics::BACKUP_ERRORS).increment(1);
            tracing::error!(realm = %writer.realm.name, error = %e, "a backup step failed; trying again at the next interval");
            false
        }
    };
    if let Ok(last) = writer.realm.stores.records.last_seq() {
        let lag = last.saturating_sub(writer.shipped.load(Ordering::Acquire));
        metrics::gauge!(crate::metrics::BACKUP_LAG, "realm" => writer.realm.name.clone())
            .set(lag as f64);
    }
    ok
}
