//! Rebuilding chosen tenants' records as of an instant: the newest intact
//! chain whose snapshot is not after it (each file checked as it is read:
//! a damaged one is never restored from), its segments up to the instant, then the live change log
//! for what the backups have not shipped yet; or the change log alone while
//! it still holds everything from its start. Only the chosen tenants'
//! frames are opened.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use super::frames::Kind;
use super::keys::{DataKey, KeyId};
use super::manifest::{self, Chain};
use super::verify;
use super::writer::SnapshotEntry;
use super::{BackupError, Keyring, Target};
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
    let instance = records.instance()?;
    let mut damaged: Vec<String> = Vec::new();
    if let Some((target, keyring)) = backups {
        let keys = tenant_keys(runtime, keyring, wanted)?;
        // The newest chain first; a damaged one is passed by for an older
        // one (and named, if none will do). Each file is checked as it is
        // read, once: what is restored from is what was verified.
        for chain in runtime.block_on(chains_for(target, wanted, &instance))? {
            let mut out = Rebuilt {
                source: format!("backup chain {}", chain.manifest_name()),
                ..Rebuilt::default()
            };
            match runtime.block_on(from_chain(target, &keys, &chain, wanted, &mut out)) {
                Ok(ChainEnd::ReachedTheInstant) => return Ok(out),
                Ok(ChainEnd::At(_)) if chain.store != instance => {
                    // Another store's (this one was made anew): its log does
                    // not continue the chain, which ends the past.
                    out.source.push_str(" of an earlier store");
                    return Ok(out);
                }
                Ok(ChainEnd::At(shipped)) => {
                    out.source.push_str(" and the change log");
                    from_log(records, wanted, shipped, &mut out)?;
                    return Ok(out);
                }
                Err(BackupError::Corrupt {
                    file,
                    range,
                    reason,
                }) => {
                    tracing::error!(%file, %range, %reason, "a restore passes a damaged backup by");
                    damaged.push(format!("{file} ({range}): {reason}"));
                }
                Err(e) => return Err(e),
            }
        }
    }
    // No intact chain reaches back: the change log alone, while it holds
    // everything from its start.
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
    let mut out = Rebuilt {
        source: "the change log, from its start".to_owned(),
        ..Rebuilt::default()
    };
    from_log(records, wanted, 0, &mut out)?;
    Ok(out)
}

/// Where reading a chain stopped.
enum ChainEnd {
    /// At a segment past the instant: nothing later is wanted.
    ReachedTheInstant,
    /// At the chain's end, this sequence number: the log goes on from there.
    At(u64),
}

/// Adds to `out` what `chain` holds of `wanted` up to the instant, each
/// file read once and checked (size, SHA-256, header, continuity, the
/// frames of `keys` decrypting): `Err(Corrupt)` names what is damaged.
async fn from_chain(
    target: &Target,
    keys: &HashMap<KeyId, DataKey>,
    chain: &Chain,
    wanted: Wanted<'_>,
    out: &mut Rebuilt,
) -> Result<ChainEnd, BackupError> {
    for part in &chain.snapshot {
        let bytes = verify::read_checked(target, part).await?;
        for entry in open_frames::<SnapshotEntry>(&bytes, keys, &chain.realm, Kind::Snapshot, part)?
        {
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
    let mut shipped = chain.base_seq;
    for segment in chain.all_segments(target).await? {
        if !wanted.at.includes(segment.first_seq, segment.first_ms) {
            return Ok(ChainEnd::ReachedTheInstant);
        }
        if segment.first_seq != shipped + 1 {
            return Err(BackupError::Corrupt {
                file: chain.manifest_name(),
                range: segment.range(),
                reason: format!("the chain has a gap before seq {}", segment.first_seq),
            });
        }
        let bytes = verify::read_checked(target, &segment).await?;
        for change in open_frames::<Change>(&bytes, keys, &chain.realm, Kind::Segment, &segment)? {
            apply(out, &wanted, change);
        }
        shipped = segment.last_seq;
    }
    Ok(ChainEnd::At(shipped))
}

/// Adds to `out` what the live change log holds of `wanted` after
/// `shipped`, up to the instant.
fn from_log(
    records: &Arc<dyn Records>,
    wanted: Wanted<'_>,
    mut shipped: u64,
    out: &mut Rebuilt,
) -> Result<(), BackupError> {
    let first = records.first_seq()?;
    if first > shipped + 1 {
        return Err(BackupError::OutOfRange(format!(
            "changes {} to {} of realm {:?} are in neither the backups nor the change log",
            shipped + 1,
            first - 1,
            wanted.realm
        )));
    }
    loop {
        let changes = records.changes(shipped, LOG_PAGE)?;
        let Some(last) = changes.last() else {
            return Ok(());
        };
        shipped = last.seq;
        for change in changes {
            if !wanted.at.includes(change.seq, change.committed_at_ms) {
                return Ok(());
            }
            apply(out, &wanted, change);
        }
    }
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

/// The entries of every frame of `bytes` (a file of `kind` of `realm`, as
/// `entry` lists it) sealed with one of `keys`.
fn open_frames<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    keys: &HashMap<KeyId, DataKey>,
    realm: &str,
    kind: Kind,
    entry: &manifest::FileEntry,
) -> Result<Vec<T>, BackupError> {
    let parsed = verify::parse_checked(bytes, realm, kind, entry)?;
    let mut out = Vec::new();
    for (i, (key_id, sealed)) in parsed.frames.iter().enumerate() {
        let Some(key) = keys.get(key_id) else {
            continue;
        };
        let corrupt = |reason: String| BackupError::Corrupt {
            file: entry.name.clone(),
            range: entry.range(),
            reason,
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
