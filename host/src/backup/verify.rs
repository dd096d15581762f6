//! Verifying backups: every chain's manifest against its own checksum,
//! every file it lists against its SHA-256 and size, the chain's
//! continuity (each segment starting right after the last), and every
//! frame's decryption with its tenant's key. Frames whose key was destroyed
//! (an erased tenant) are counted, not reported: they are meant to be
//! unreadable. What is wrong is named by file and range.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::frames::{self, Kind, sha256_hex};
use super::keys::{DataKey, KeyId};
use super::manifest::{self, Chain, FileEntry};
use super::{BackupError, Target};
use crate::store::now_ms;

/// One thing wrong with a realm's backups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The file (or manifest, or key file).
    pub file: String,
    /// The sequence numbers it concerns.
    pub range: String,
    /// What is wrong.
    pub reason: String,
}

impl From<BackupError> for Problem {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Corrupt {
                file,
                range,
                reason,
            } => Problem {
                file,
                range,
                reason,
            },
            other => Problem {
                file: String::new(),
                range: String::new(),
                reason: other.to_string(),
            },
        }
    }
}

/// What a verification of one realm found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The realm.
    pub realm: String,
    /// When it ran (ms since the epoch).
    pub at_ms: u64,
    /// Chains read.
    pub chains: usize,
    /// Files checked.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Frames opened.
    pub frames: u64,
    /// Frames of destroyed keys (erased tenants), left unopened.
    pub erased_frames: u64,
    /// The oldest instant it can restore to (ms since the epoch), if any.
    pub restorable_from_ms: Option<u64>,
    /// The last sequence number backed up.
    pub last_seq: Option<u64>,
    /// Everything wrong.
    pub problems: Vec<Problem>,
}

/// Verifies every chain of `realm` with `keys`.
pub async fn verify_realm(
    target: &Target,
    keys: &HashMap<KeyId, DataKey>,
    realm: &str,
) -> Result<Report, BackupError> {
    let mut report = Report {
        realm: realm.to_owned(),
        at_ms: now_ms(),
        ..Report::default()
    };
    for name in manifest::manifests(target, realm).await? {
        report.chains += 1;
        let chain = match manifest::load(target, &name).await {
            Ok(chain) => chain,
            Err(e) => {
                report.problems.push(e.into());
                continue;
            }
        };
        let before = report.problems.len();
        verify_chain(target, keys, &chain, &mut report).await;
        if report.problems.len() == before {
            report.restorable_from_ms = Some(
                report
                    .restorable_from_ms
                    .map_or(chain.base_ms, |t| t.min(chain.base_ms)),
            );
        }
        report.last_seq = Some(report.last_seq.unwrap_or(0).max(chain.last_seq()));
    }
    Ok(report)
}

/// Checks every file of `chain`, adding what is wrong to `report`.
async fn verify_chain(
    target: &Target,
    keys: &HashMap<KeyId, DataKey>,
    chain: &Chain,
    report: &mut Report,
) {
    // The sealed pages, checked as they are read.
    let segments = match chain.all_segments(target).await {
        Ok(segments) => segments,
        Err(e) => {
            report.problems.push(e.into());
            return;
        }
    };
    report.files += chain.pages.len();
    let mut expected = chain.base_seq + 1;
    for segment in &segments {
        if segment.first_seq != expected {
            report.problems.push(Problem {
                file: chain.manifest_name(),
                range: format!("seq {expected}..{}", segment.first_seq),
                reason: format!(
                    "the chain has a gap: changes {expected} to {} are in no segment",
                    segment.first_seq.saturating_sub(1)
                ),
            });
        }
        expected = segment.last_seq + 1;
    }
    let files = chain
        .snapshot
        .iter()
        .map(|f| (Kind::Snapshot, f))
        .chain(segments.iter().map(|f| (Kind::Segment, f)));
    for (kind, entry) in files {
        report.files += 1;
        if let Err(problem) = verify_file(target, keys, &chain.realm, kind, entry, report).await {
            report.problems.push(problem);
        }
    }
}

async fn verify_file(
    target: &Target,
    keys: &HashMap<KeyId, DataKey>,
    realm: &str,
    kind: Kind,
    entry: &FileEntry,
    report: &mut Report,
) -> Result<(), Problem> {
    let bytes = read_checked(target, entry).await.map_err(Problem::from)?;
    report.bytes += bytes.len() as u64;
    let parsed = parse_checked(&bytes, realm, kind, entry).map_err(Problem::from)?;
    for (i, (key_id, sealed)) in parsed.frames.iter().enumerate() {
        match keys.get(key_id) {
            Some(key) => {
                if parsed.open(key, sealed).is_none() {
                    return Err(Problem {
                        file: entry.name.clone(),
                        range: entry.range(),
                        reason: format!("frame {i} does not decrypt"),
                    });
                }
                report.frames += 1;
            }
            None => report.erased_frames += 1,
        }
    }
    Ok(())
}

/// `bytes` parsed as a backup file, checked against what `entry` (a file of
/// `kind` of `realm`) says of it.
pub(super) fn parse_checked<'a>(
    bytes: &'a [u8],
    realm: &str,
    kind: Kind,
    entry: &FileEntry,
) -> Result<frames::Parsed<'a>, BackupError> {
    let corrupt = |reason: String| BackupError::Corrupt {
        file: entry.name.clone(),
        range: entry.range(),
        reason,
    };
    let parsed = frames::parse(bytes).map_err(corrupt)?;
    if parsed.kind != kind || parsed.realm != realm {
        return Err(corrupt(format!(
            "its header says a {:?} of realm {:?}, its manifest a {kind:?} of {realm:?}",
            parsed.kind, parsed.realm
        )));
    }
    if kind == Kind::Segment
        && (parsed.first_seq, parsed.last_seq) != (entry.first_seq, entry.last_seq)
    {
        return Err(corrupt(format!(
            "its header says seq {}..={}",
            parsed.first_seq, parsed.last_seq
        )));
    }
    Ok(parsed)
}

/// The bytes of `entry`, checked against its size and SHA-256.
pub async fn read_checked(target: &Target, entry: &FileEntry) -> Result<bytes::Bytes, BackupError> {
    let corrupt = |reason: String| BackupError::Corrupt {
        file: entry.name.clone(),
        range: entry.range(),
        reason,
    };
    let bytes = target
        .get(&entry.name)
        .await?
        .ok_or_else(|| corrupt("it is missing".to_owned()))?;
    if bytes.len() as u64 != entry.bytes {
        return Err(corrupt(format!(
            "it holds {} bytes, its manifest says {}",
            bytes.len(),
            entry.bytes
        )));
    }
    if sha256_hex(&bytes) != entry.sha256 {
        return Err(corrupt(
            "its SHA-256 does not match its manifest's".to_owned(),
        ));
    }
    Ok(bytes)
}
