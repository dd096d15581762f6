//! The layout of a backup file: a header naming what it holds (a snapshot
//! part or a segment of the change log, its realm and its sequence range),
//! then frames, each one tenant's entries sealed with that tenant's data key
//! and bound to the header (a frame moved to another file does not open).
//!
//! ```text
//! file   = "DROIDBK1" kind:u8 realm_len:u16 realm first_seq:u64 last_seq:u64 frame*
//! frame  = key_id:[u8; 16] len:u32 sealed:[u8; len]   (big-endian numbers)
//! sealed = nonce:[u8; 24] XChaCha20-Poly1305(JSON array of entries)
//! ```

use sha2::{Digest, Sha256};

use super::keys::{DataKey, KeyId, encode_hex};

const MAGIC: &[u8; 8] = b"DROIDBK1";

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Records as of one sequence number.
    Snapshot,
    /// Changes of the log, in order.
    Segment,
    /// A chain's sealed page of segment entries (JSON, not a framed file).
    Page,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Snapshot => b'S',
            Kind::Segment | Kind::Page => b'G',
        }
    }

    /// The file name's ending.
    pub fn extension(self) -> &'static str {
        match self {
            Kind::Snapshot => "snap",
            Kind::Segment => "seg",
            Kind::Page => "page",
        }
    }
}

/// A file being written.
#[derive(Debug)]
pub struct FileWriter {
    bytes: Vec<u8>,
    header_end: usize,
    /// Frames written.
    pub frames: u64,
}

impl FileWriter {
    /// A file of `kind` for `realm`, holding sequence numbers `first..=last`.
    pub fn new(kind: Kind, realm: &str, first: u64, last: u64) -> Self {
        let mut bytes = Vec::with_capacity(1 << 16);
        bytes.extend_from_slice(MAGIC);
        bytes.push(kind.byte());
        let name = realm.as_bytes();
        bytes.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
        bytes.extend_from_slice(&name[..name.len().min(usize::from(u16::MAX))]);
        bytes.extend_from_slice(&first.to_be_bytes());
        bytes.extend_from_slice(&last.to_be_bytes());
        let header_end = bytes.len();
        Self {
            bytes,
            header_end,
            frames: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends `plain` sealed with `key`.
    pub fn frame(&mut self, key: &DataKey, plain: &[u8]) {
        let aad = aad(&self.bytes[..self.header_end], &key.id);
        let sealed = key.seal(&aad, plain);
        self.bytes.extend_from_slice(&key.id);
        self.bytes.extend_from_slice(
            &u32::try_from(sealed.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        self.bytes.extend_from_slice(&sealed);
        self.frames += 1;
    }

    /// The file's bytes and their SHA-256 (hex): its content address.
    pub fn finish(self) -> (Vec<u8>, String) {
        let sha = sha256_hex(&self.bytes);
        (self.bytes, sha)
    }
}

/// What binds a frame to its file and key.
fn aad(header: &[u8], key_id: &KeyId) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(key_id);
    aad
}

/// The SHA-256 of `bytes`, as hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    encode_hex(&Sha256::digest(bytes))
}

/// A file read back: its header and where its frames are.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// What it holds.
    pub kind: Kind,
    /// Its realm.
    pub realm: String,
    /// The first sequence number it holds.
    pub first_seq: u64,
    /// The last.
    pub last_seq: u64,
    header: &'a [u8],
    /// Its frames: the key each names, and its sealed bytes.
    pub frames: Vec<(KeyId, &'a [u8])>,
}

impl Parsed<'_> {
    /// Frame `sealed`'s entries, if `key` opens it.
    pub fn open(&self, key: &DataKey, sealed: &[u8]) -> Option<Vec<u8>> {
        key.open(&aad(self.header, &key.id), sealed)
    }
}

/// Reads `bytes` as a backup file; `Err` says where it stops making sense.
pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>, String> {
    let mut cursor = Cursor { bytes, at: 0 };
    if cursor.take(8)? != MAGIC {
        return Err("it does not start as a droid backup file".to_owned());
    }
    let kind = match cursor.take(1)?[0] {
        b'S' => Kind::Snapshot,
        b'G' => Kind::Segment,
        other => return Err(format!("unknown file kind {other}")),
    };
    let len = usize::from(u16::from_be_bytes(cursor.array()?));
    let realm =
        String::from_utf8(cursor.take(len)?.to_vec()).map_err(|_| "its realm is not UTF-8")?;
    let first_seq = u64::from_be_bytes(cursor.array()?);
    let last_seq = u64::from_be_bytes(cursor.array()?);
    let header_end = cursor.at;
    let mut frames = Vec::new();
    while cursor.at < bytes.len() {
        let key: KeyId = cursor.array()?;
        let n = u32::from_be_bytes(cursor.array()?) as usize;
        frames.push((key, cursor.take(n)?));
    }
    Ok(Parsed {
        kind,
        realm,
        first_seq,
        last_seq,
        header: &bytes[..header_end],
        frames,
    })
}

/// Reads a file's fields in order.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "it ends at byte {} in the middle of a field",
                    self.bytes.len()
                )
            })?;
        let part = &self.bytes[self.at..end];
        self.at = end;
        Ok(part)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("N bytes taken"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_reads_back_and_a_truncated_one_does_not() {
        let key = super::super::keys::tests_key();
        let mut file = FileWriter::new(Kind::Segment, "eu", 5, 9);
        file.frame(&key, b"[1,2]");
        file.frame(&key, b"[3]");
        let (bytes, sha) = file.finish();
        assert_eq!(sha, sha256_hex(&bytes));
        let parsed = parse(&bytes).unwrap();
        assert_eq!((parsed.kind, parsed.realm.as_str()), (Kind::Segment, "eu"));
        assert_eq!((parsed.first_seq, parsed.last_seq), (5, 9));
        assert_eq!(parsed.frames.len(), 2);
        assert_eq!(parsed.open(&key, parsed.frames[1].1).unwrap(), b"[3]");
        assert!(parse(&bytes[..bytes.len() - 3]).is_err());
        // A frame moved into another file's header does not open.
        let mut other = FileWriter::new(Kind::Segment, "eu", 10, 12);
        other.frame(&key, b"[4]");
        let (other, _) = other.finish();
        let other = parse(&other).unwrap();
        assert!(other.open(&key, parsed.frames[0].1).is_none());
    }
}
