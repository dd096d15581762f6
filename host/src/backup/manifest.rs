//! Chains and their manifests. A chain is a snapshot of a realm's records
//! at one sequence number (in parts) and the segments of the change log
//! after it, each following the last without a gap. Its manifest lists
//! every file with its SHA-256, size, sequence range and time range, and
//! carries the SHA-256 of its own contents, so a damaged or truncated
//! manifest is told from a good one. A chain's manifest is rewritten as
//! segments join it (the only objects replaced, with the key files); the
//! files it lists never are. So that rewriting it stays cheap however long
//! the chain grows, every [`PAGE_SEGMENTS`] segments are sealed into a page
//! (an immutable file of their entries, listed like any file) and the
//! manifest keeps only the pages and the open tail.
//!
//! Names in the target: `realms/{realm}/chains/{base_seq:020}-{created_ms}.json`
//! and `realms/{realm}/files/{sha256}.{snap|seg|page}`.

use serde::{Deserialize, Serialize};

/// Segments a page seals.
pub const PAGE_SEGMENTS: usize = 256;

use super::frames::{Kind, sha256_hex};
use super::{BackupError, Target};

/// One backup file, as its chain lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its name in the target.
    pub name: String,
    /// The SHA-256 of its bytes (hex).
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// The first sequence number it holds (a snapshot part: the chain's base).
    pub first_seq: u64,
    /// The last.
    pub last_seq: u64,
    /// When its first change was committed (a snapshot part: when it was taken).
    pub first_ms: u64,
    /// When its last change was committed.
    pub last_ms: u64,
    /// The records or changes it holds.
    pub entries: u64,
}

/// What a new file holds: its sequence and time ranges, and its entries.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    /// The first sequence number.
    pub first_seq: u64,
    /// The last.
    pub last_seq: u64,
    /// When its first change was committed.
    pub first_ms: u64,
    /// When its last change was committed.
    pub last_ms: u64,
    /// The records or changes it holds.
    pub entries: u64,
}

impl FileEntry {
    /// Writes `bytes` (whose SHA-256 is `sha256`) as a new file of `kind`
    /// in `realm`, named by that hash, and lists it as holding `span`.
    pub async fn write(
        target: &Target,
        realm: &str,
        kind: Kind,
        bytes: Vec<u8>,
        sha256: String,
        span: Span,
    ) -> Result<Self, BackupError> {
        let entry = FileEntry {
            name: file_name(realm, kind, &sha256),
            sha256,
            bytes: bytes.len() as u64,
            first_seq: span.first_seq,
            last_seq: span.last_seq,
            first_ms: span.first_ms,
            last_ms: span.last_ms,
            entries: span.entries,
        };
        target.put_new(&entry.name, bytes).await?;
        metrics::counter!(crate::metrics::BACKUP_BYTES).increment(entry.bytes);
        Ok(entry)
    }

    /// Its sequence range, for people.
    pub fn range(&self) -> String {
        if self.first_seq == self.last_seq {
            format!("seq {}", self.first_seq)
        } else {
            format!("seq {}..={}", self.first_seq, self.last_seq)
        }
    }
}

/// A chain: a snapshot and the segments after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// The manifest's layout.
    pub format: u32,
    /// The realm.
    pub realm: String,
    /// The store it backs up (`Records::instance`): sequence numbers are
    /// that store's, and only its own change log continues the chain.
    pub store: String,
    /// The sequence number the snapshot was taken at: the last change it
    /// includes.
    pub base_seq: u64,
    /// When the snapshot was taken (ms since the epoch).
    pub base_ms: u64,
    /// When the chain was started (ms since the epoch): with `base_seq`, its name.
    pub created_ms: u64,
    /// The snapshot's parts.
    pub snapshot: Vec<FileEntry>,
    /// Sealed pages of segments, in order (each entry's range and count are
    /// its segments'; `entries` counts their changes).
    #[serde(default)]
    pub pages: Vec<FileEntry>,
    /// The segments after the last page, in order.
    pub segments: Vec<FileEntry>,
}

/// A manifest as written: the chain and the SHA-256 of its JSON.
#[derive(Debug, Serialize, Deserialize)]
struct Sealed {
    chain: Chain,
    sha256: String,
}

impl Chain {
    /// A chain of `realm`'s store `store` starting with a snapshot at `base_seq`.
    pub fn new(realm: &str, store: &str, base_seq: u64, base_ms: u64) -> Self {
        Self {
            format: 1,
            realm: realm.to_owned(),
            store: store.to_owned(),
            base_seq,
            base_ms,
            created_ms: crate::store::now_ms(),
            snapshot: Vec::new(),
            pages: Vec::new(),
            segments: Vec::new(),
        }
    }

    /// Its manifest's name.
    pub fn manifest_name(&self) -> String {
        format!(
            "{}/{:020}-{:013}.json",
            chains_folder(&self.realm),
            self.base_seq,
            self.created_ms
        )
    }

    /// The last sequence number the chain holds.
    pub fn last_seq(&self) -> u64 {
        self.segments
            .last()
            .or(self.pages.last())
            .map_or(self.base_seq, |s| s.last_seq)
    }

    /// When its last change was committed (its snapshot's time when none).
    pub fn last_ms(&self) -> u64 {
        self.segments
            .last()
            .or(self.pages.last())
            .map_or(self.base_ms, |s| s.last_ms)
    }

    /// The changes its segments hold.
    pub fn changes(&self) -> u64 {
        self.pages
            .iter()
            .chain(&self.segments)
            .map(|s| s.entries)
            .sum()
    }

    /// Whether it holds any segment.
    pub fn has_segments(&self) -> bool {
        !self.pages.is_empty() || !self.segments.is_empty()
    }

    /// Adds `segment`, sealing a page first when the tail is full.
    pub async fn push(&mut self, target: &Target, segment: FileEntry) -> Result<(), BackupError> {
        if self.segments.len() >= PAGE_SEGMENTS {
            let bytes = serde_json::to_vec(&self.segments).expect("entries encode");
            let sha256 = sha256_hex(&bytes);
            let (first, last) = (&self.segments[0], &self.segments[self.segments.len() - 1]);
            let span = Span {
                first_seq: first.first_seq,
                last_seq: last.last_seq,
                first_ms: first.first_ms,
                last_ms: last.last_ms,
                entries: self.segments.iter().map(|s| s.entries).sum(),
            };
            let page =
                FileEntry::write(target, &self.realm, Kind::Page, bytes, sha256, span).await?;
            self.pages.push(page);
            self.segments.clear();
        }
        self.segments.push(segment);
        Ok(())
    }

    /// Every segment, in order: the sealed pages' (read and checked) and the tail.
    pub async fn all_segments(&self, target: &Target) -> Result<Vec<FileEntry>, BackupError> {
        let mut out = Vec::new();
        for page in &self.pages {
            let bytes = super::verify::read_checked(target, page).await?;
            let segments: Vec<FileEntry> =
                serde_json::from_slice(&bytes).map_err(|e| BackupError::Corrupt {
                    file: page.name.clone(),
                    range: page.range(),
                    reason: format!("the page does not parse: {e}"),
                })?;
            out.extend(segments);
        }
        out.extend(self.segments.iter().cloned());
        Ok(out)
    }

    /// Writes its manifest.
    pub async fn save(&self, target: &Target) -> Result<(), BackupError> {
        let chain = serde_json::to_vec(self).expect("a chain encodes");
        let sealed = Sealed {
            chain: self.clone(),
            sha256: sha256_hex(&chain),
        };
        let bytes = serde_json::to_vec_pretty(&sealed).expect("a manifest encodes");
        target.put(&self.manifest_name(), bytes).await
    }

    /// Reads manifest `name`: `Err` with the reason when it is damaged.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Self, BackupError> {
        let damaged = |reason: String| BackupError::Corrupt {
            file: name.to_owned(),
            range: "the chain's manifest".to_owned(),
            reason,
        };
        let sealed: Sealed = serde_json::from_slice(bytes)
            .map_err(|e| damaged(format!("it does not parse (truncated?): {e}")))?;
        let chain = serde_json::to_vec(&sealed.chain).expect("a chain encodes");
        if sha256_hex(&chain) != sealed.sha256 {
            return Err(damaged("its contents do not match its checksum".to_owned()));
        }
        Ok(sealed.chain)
    }
}

/// The folder of `realm`'s chain manifests.
pub fn chains_folder(realm: &str) -> String {
    format!("realms/{realm}/chains")
}

/// The name of a file of `kind` in `realm` with content address `sha256`.
pub fn file_name(realm: &str, kind: Kind, sha256: &str) -> String {
    format!("realms/{realm}/files/{sha256}.{}", kind.extension())
}

/// Every chain manifest of `realm`, oldest first (by base, then creation).
pub async fn manifests(target: &Target, realm: &str) -> Result<Vec<String>, BackupError> {
    let mut names = target.list(&chains_folder(realm)).await?;
    names.retain(|n| n.ends_with(".json"));
    Ok(names)
}

/// Reads the chain manifest `name` (`Err`: missing or damaged).
pub async fn load(target: &Target, name: &str) -> Result<Chain, BackupError> {
    let bytes = target
        .get(name)
        .await?
        .ok_or_else(|| BackupError::Corrupt {
            file: name.to_owned(),
            range: "the chain's manifest".to_owned(),
            reason: "it is missing".to_owned(),
        })?;
    Chain::parse(name, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(n: u64) -> FileEntry {
        FileEntry {
            name: format!("seg-{n}"),
            sha256: "00".into(),
            bytes: 1,
            first_seq: n * 10 + 1,
            last_seq: n * 10 + 10,
            first_ms: n,
            last_ms: n,
            entries: 10,
        }
    }

    #[tokio::test]
    async fn a_long_chain_seals_its_segments_into_pages_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::folder(dir.path()).unwrap();
        let mut chain = Chain::new("eu", "s1", 0, 0);
        let count = PAGE_SEGMENTS as u64 * 2 + 5;
        for n in 0..count {
            chain.push(&target, segment(n)).await.unwrap();
        }
        assert_eq!(chain.pages.len(), 2, "two full pages sealed");
        assert_eq!(chain.segments.len(), 5, "the tail");
        assert_eq!(chain.last_seq(), count * 10);
        assert_eq!(chain.changes(), count * 10);
        let all = chain.all_segments(&target).await.unwrap();
        assert_eq!(all, (0..count).map(segment).collect::<Vec<_>>());
        // A damaged page is named, not read.
        let page = dir.path().join(&chain.pages[1].name);
        let mut bytes = std::fs::read(&page).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&page, bytes).unwrap();
        let e = chain.all_segments(&target).await.unwrap_err();
        assert!(e.to_string().contains(&chain.pages[1].name), "{e}");
    }

    #[test]
    fn a_damaged_or_truncated_manifest_is_told_from_a_good_one() {
        let mut chain = Chain::new("eu", "s1", 7, 1_000);
        chain.segments.push(FileEntry {
            name: "f".into(),
            sha256: "00".into(),
            bytes: 3,
            first_seq: 8,
            last_seq: 9,
            first_ms: 1,
            last_ms: 2,
            entries: 2,
        });
        let sealed = Sealed {
            sha256: sha256_hex(&serde_json::to_vec(&chain).unwrap()),
            chain: chain.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&sealed).unwrap();
        assert_eq!(Chain::parse("m", &bytes).unwrap(), chain);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let edited = text.replace("\"last_seq\": 9", "\"last_seq\": 8");
        assert!(Chain::parse("m", edited.as_bytes()).is_err());
        let cut = Chain::parse("m", &bytes[..bytes.len() / 2]).unwrap_err();
        assert!(cut.to_string().contains("does not parse"), "{cut}");
    }
}
