//! Rebuilding chosen tenants' records as of an instant: the newest chain
//! whose snapshot is not after it (verified first: a damaged file is never
//! restored from), its segments up to the instant, then the live change log
//! for what the backups have not shipped yet; or the change log alone while
//! it still holds everything from its start. Only the chosen tenants'
//! frames are opened.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use super::keys::{DataKey, KeyId};
use super::manifest::{self, Chain};
use super::verify::{self, Report};
use super::writer::SnapshotEntry;
use super::{BackupError, Keyring, Target, frames};
use crate::store::{Change, ChangeKind, RecordId, Records};

/// Changes read from the live log at a time.
const LOG_PAGE: usize = 10_000;

/// The instant a restore goes back to: a sequence number of the realm's
/// change log (the last change included), or a time (every change
/// committed at or before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum At {
    /// The last sequence number included.
    Seq(u64),
    /// Milliseconds since the epoch.
    Time(u64),
}

impl At {
    fn includes(self, seq: u64, committed_at_ms: u64) -> bool {
        match self {
            At::Seq(s) => seq <= s,
            At::Time(t) => committed_at_ms <= t,
        }
    }

    fn admits_chain(self, chain: &Chain) -> bool {
        self.includes(chain.base_seq, chain.base_ms)
    }
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Seq(s) => write!(f, "seq {s}"),
            At::Time(t) => write!(f, "{}", crate::tenancy::migration::rfc3339(*t)),
        }
    }
}

/// A record as of the instant: its body (`None`: deleted) and version.
pub type Version = (Option<String>, u64);

/// The chosen tenants' records as of an instant.
#[derive(Debug, Default)]
pub struct Rebuilt {
    /// Every record they had, deletions as `None` bodies.
    pub records: BTreeMap<RecordId, Version>,
    /// Where it came from, for people.
    pub source: String,
    /// The last sequence number the instant includes (of those read).
    pub through_seq: u64,
}

/// What to rebuild.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// The realm.
    pub realm: &'a str,
    /// Its tenants to rebuild.
    pub tenants: &'a BTreeSet<String>,
    /// Only these record types (`None`: all).
    pub record_types: Option<&'a BTreeSet<String>>,
    /// The instant.
    pub at: At,
}

impl Wanted<'_> {
    fn wants(&self, record_type: &str, tenant: &str) -> bool {
        self.tenants.contains(tenant) && self.record_types.is_none_or(|t| t.contains(record_type))
    }
}

/// Rebuilds `wanted` from the backups (when there are any) and the live
/// log of `records`. Blocking: call it off the async workers.
pub fn rebuild(
    runtime: &Handle,
    backups: Option<(&Target, &Keyring)>,
    records: &Arc<dyn Records>,
    wanted: Wanted<'_>,
) -> Result<Rebuilt, BackupError> {
    let mut out = Rebuilt::default();
    let mut damaged: Vec<String> = Vec::new();
    let chain = match backups {
        Some((target, keyring)) => {
            let keys = tenant_keys(runtime, keyring, wanted)?;
            let through = match wanted.at {
                At::Seq(s) => s,
                At::Time(_) => u64::MAX,
            };
            let mut usable = None;
            // The newest chain first; a damaged one is passed by for an
            // older one (and named, if none will do).
            let instance = records.instance()?;
            for chain in runtime.block_on(chains_for(target, wanted, &instance))? {
                let mut report = Report::default();
                runtime.block_on(verify::verify_chain(
                    target,
                    &keys,
                    &chain,
                    through,
                    &mut report,
                ));
                if report.problems.is_empty() {
                    usable = Some((target, keys, chain));
                    break;
                }
                for problem in report.problems {
                    tracing::error!(file = %problem.file, range = %problem.range, reason = %problem.reason, "a restore passes a damaged backup by");
                    damaged.push(format!(
                        "{} ({}): {}",
                        problem.file, problem.range, problem.reason
                    ));
                }
            }
            usable
        }
        None => None,
    };
    let mut from_seq = 0;
    let mut log_needed = true;
    match chain {
        Some((target, keys, chain)) => {
            out.source = format!("backup chain {}", chain.manifest_name());
            if chain.store != records.instance()? {
                // Another store's (this one was made anew): its log does
                // not continue the chain, which ends the past.
                log_needed = false;
                out.source.push_str(" of an earlier store");
            }
            out.through_seq = chain.base_seq;
            for part in &chain.snapshot {
                let bytes = runtime.block_on(verify::read_checked(target, part))?;
                for entry in open_frames::<SnapshotEntry>(&bytes, &keys, part)? {
                    if wanted.wants(&entry.record_type, &entry.tenant) {
                        out.records.insert(
                            RecordId {
                                record_type: entry.record_type,
                                tenant: entry.tenant,
                                key: entry.key,
                            },
                            (entry.body, entry.version),
                        );
                    }
                }
            }
            from_seq = chain.base_seq;
            let segments = runtime.block_on(chain.all_segments(target))?;
            for segment in &segments {
                if !wanted.at.includes(segment.first_seq, segment.first_ms) {
                    log_needed = false;
                    break;
                }
                if segment.first_seq != from_seq + 1 {
                    return Err(BackupError::Corrupt {
                        file: chain.manifest_name(),
                        range: segment.range(),
                        reason: format!("the chain has a gap before seq {}", segment.first_seq),
                    });
                }
                let bytes = runtime.block_on(verify::read_checked(target, segment))?;
                for change in open_frames::<Change>(&bytes, &keys, segment)? {
                    apply(&mut out, &wanted, change);
                }
                from_seq = segment.last_seq;
                out.through_seq = out.through_seq.max(segment.last_seq.min(match wanted.at {
                    At::Seq(s) => s,
                    At::Time(_) => u64::MAX,
                }));
            }
        }
        None => {
            let first = records.first_seq()?;
            if first > 1 && !damaged.is_empty() {
                return Err(BackupError::Corrupt {
                    file: format!("{} damaged", damaged.len()),
                    range: wanted.at.to_string(),
                    reason: format!(
                        "no intact backup of realm {:?} reaches back to {}, and its change log starts at seq {first}; damaged: {}",
                        wanted.realm,
                        wanted.at,
                        damaged.join("; ")
                    ),
                });
            }
            if first > 1 {
                return Err(BackupError::OutOfRange(format!(
                    "no backup of realm {:?} reaches back to {}, and its change log starts at seq {first}",
                    wanted.realm, wanted.at
                )));
            }
            out.source = "the change log, from its start".to_owned();
        }
    }
    if log_needed {
        let first = records.first_seq()?;
        if first > from_seq + 1 {
            return Err(BackupError::OutOfRange(format!(
                "changes {} to {} of realm {:?} are in neither the backups nor the change log",
                from_seq + 1,
                first - 1,
                wanted.realm
            )));
        }
        if from_seq > 0 {
            out.source.push_str(" and the change log");
        }
        'log: loop {
            let changes = records.changes(from_seq, LOG_PAGE)?;
            let Some(last) = changes.last() else { break };
            from_seq = last.seq;
            for change in changes {
                if !wanted.at.includes(change.seq, change.committed_at_ms) {
                    break 'log;
                }
                out.through_seq = change.seq;
                apply(&mut out, &wanted, change);
            }
        }
    }
    Ok(out)
}

fn apply(out: &mut Rebuilt, wanted: &Wanted<'_>, change: Change) {
    if !wanted.at.includes(change.seq, change.committed_at_ms)
        || !wanted.wants(&change.record_type, &change.tenant)
    {
        return;
    }
    let body = match change.kind {
        ChangeKind::Upsert { body } => Some(body),
        ChangeKind::Delete => None,
        // Read-through keys, an erasure's marker: nothing stored to restore.
        ChangeKind::Invalidate | ChangeKind::Erase => return,
    };
    out.records.insert(
        RecordId {
            record_type: change.record_type,
            tenant: change.tenant,
            key: change.key,
        },
        (body, change.version),
    );
}

/// The chosen tenants' data keys, by id (tenants without one have no
/// backed-up data).
fn tenant_keys(
    runtime: &Handle,
    keyring: &Keyring,
    wanted: Wanted<'_>,
) -> Result<HashMap<KeyId, DataKey>, BackupError> {
    let mut keys = HashMap::new();
    for tenant in wanted.tenants {
        if let Some(key) = runtime.block_on(keyring.existing(tenant))? {
            keys.insert(key.id, (*key).clone());
        }
    }
    Ok(keys)
}

/// The chains of `wanted.realm` whose snapshot the instant includes,
/// newest first (damaged manifests passed by).
async fn chains_for(
    target: &Target,
    wanted: Wanted<'_>,
    instance: &str,
) -> Result<Vec<Chain>, BackupError> {
    let mut out = Vec::new();
    for name in manifest::manifests(target, wanted.realm).await? {
        match manifest::load(target, &name).await {
            // A sequence number is this store's: only its own chains have it.
            Ok(chain)
                if wanted.at.admits_chain(&chain)
                    && (matches!(wanted.at, At::Time(_)) || chain.store == instance) =>
            {
                out.push(chain)
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "a backup chain cannot be read; a restore passes it by");
            }
        }
    }
    out.sort_by_key(|c| std::cmp::Reverse((c.base_ms, c.created_ms)));
    Ok(out)
}

/// The entries of every frame of `bytes` sealed with one of `keys`.
fn open_frames<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    keys: &HashMap<KeyId, DataKey>,
    entry: &manifest::FileEntry,
) -> Result<Vec<T>, BackupError> {
    let corrupt = |reason: String| BackupError::Corrupt {
        file: entry.name.clone(),
        range: entry.range(),
        reason,
    };
    let parsed = frames::parse(bytes).map_err(corrupt)?;
    let mut out = Vec::new();
    for (i, (key_id, sealed)) in parsed.frames.iter().enumerate() {
        let Some(key) = keys.get(key_id) else {
            continue;
        };
        let plain = parsed
            .open(key, sealed)
            .ok_or_else(|| corrupt(format!("frame {i} does not decrypt")))?;
        let entries: Vec<T> = serde_json::from_slice(&plain)
            .map_err(|e| corrupt(format!("frame {i} does not decode: {e}")))?;
        out.extend(entries);
    }
    Ok(out)
}
