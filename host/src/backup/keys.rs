//! Per-tenant encryption of backups: each tenant's data in backup files is
//! encrypted (XChaCha20-Poly1305, a random 24-byte nonce per frame) with a
//! data key of its own, and each data key is kept in the target wrapped by
//! the master key (a key file now, a KMS later). Destroying a tenant's key
//! file makes every backup of it unreadable while other tenants stay
//! restorable from the same files.
//!
//! A tenant's key file is `keys/{name}.key`, the name a keyed hash of the
//! tenant id (HMAC-SHA-256 under the master key), so the target lists no
//! tenant ids; frames name their key by a random id, so a tenant erased and
//! created again under the same id never opens its predecessor's data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{BackupError, Target};

/// The folder of key files in the target.
pub const KEYS: &str = "keys";

/// The id a frame names its data key by.
pub type KeyId = [u8; 16];

/// The master key: wraps every data key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Reads the key file `file`: 64 hex digits (surrounding space ignored).
    pub fn load(file: &std::path::Path) -> Result<Self, BackupError> {
        let fail = |reason: String| BackupError::MasterKey {
            file: file.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(file).map_err(|e| fail(e.to_string()))?;
        Self::parse(text.trim()).map_err(|why| fail(why.to_owned()))
    }

    /// The key written as 64 hex digits (as seal keys are).
    pub fn parse(hex: &str) -> Result<Self, &'static str> {
        droid_seal::parse_key(hex)
            .map(Self)
            .map_err(|_| "expected 64 hex digits (32 bytes)")
    }

    /// A new random key, as 64 hex digits.
    pub fn generate() -> String {
        encode_hex(&random::<32>())
    }

    /// The name of `tenant`'s key file: not its id, which only holders of
    /// the master key can tell from it.
    fn key_name(&self, tenant: &str) -> String {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes any key length");
        mac.update(b"droid-backup-tenant\0");
        mac.update(tenant.as_bytes());
        encode_hex(&mac.finalize().into_bytes()[..16])
    }
}

/// A tenant's data key.
#[derive(Clone)]
pub struct DataKey {
    /// What frames encrypted with it name it by.
    pub id: KeyId,
    key: [u8; 32],
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({})", encode_hex(&self.id))
    }
}

impl DataKey {
    /// `plain` encrypted, bound to `aad`: the nonce, then the ciphertext.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Vec<u8> {
        seal(&self.key, aad, plain)
    }

    /// The plain text of `sealed` (see [`DataKey::seal`]), if it is
    /// intact and was sealed with this key and `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        open(&self.key, aad, sealed)
    }
}

fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let nonce = random::<24>();
    let cipher = XChaCha20Poly1305::new(key.into());
    let sealed = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: plain, aad })
        .expect("XChaCha20-Poly1305 encrypts any length droid handles");
    let mut out = Vec::with_capacity(24 + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 24 {
        return None;
    }
    let (nonce, body) = sealed.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().ok()?;
    XChaCha20Poly1305::new(key.into())
        .decrypt(&XNonce::from(nonce), Payload { msg: body, aad })
        .ok()
}

/// A key file as the target keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeyFile {
    format: u32,
    /// The data key's id (hex).
    key_id: String,
    /// The data key wrapped by the master key (base64 of nonce and ciphertext).
    wrapped: String,
}

/// A key file that could not be read: named, for verification to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedKey {
    /// The file.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// The tenants' data keys: created on first use, read from the target once
/// and remembered.
#[derive(Debug)]
pub struct Keyring {
    master: MasterKey,
    target: Target,
    known: Mutex<HashMap<String, Arc<DataKey>>>,
}

impl Keyring {
    /// The keys in `target`, wrapped by `master`.
    pub fn new(master: MasterKey, target: Target) -> Self {
        Self {
            master,
            target,
            known: Mutex::new(HashMap::new()),
        }
    }

    fn file_of(&self, tenant: &str) -> String {
        format!("{KEYS}/{}.key", self.master.key_name(tenant))
    }

    /// `tenant`'s key, created if it has none.
    pub async fn for_tenant(&self, tenant: &str) -> Result<Arc<DataKey>, BackupError> {
        if let Some(key) = self.existing(tenant).await? {
            return Ok(key);
        }
        let file = self.file_of(tenant);
        let key = DataKey {
            id: random::<16>(),
            key: random::<32>(),
        };
        let row = KeyFile {
            format: 1,
            key_id: encode_hex(&key.id),
            wrapped: B64.encode(seal(&self.master.0, file.as_bytes(), &key.key)),
        };
        let json = serde_json::to_vec(&row).expect("a key file encodes");
        // Two writers creating one tenant's key at once: the first file
        // stays, and the other reads it back.
        if self.target.put_new(&file, json).await? {
            let key = Arc::new(key);
            crate::locks::lock(&self.known).insert(tenant.to_owned(), key.clone());
            return Ok(key);
        }
        self.existing(tenant)
            .await?
            .ok_or_else(|| BackupError::Target {
                operation: "read",
                name: file,
                reason: "the key file just written is not there".to_owned(),
            })
    }

    /// `tenant`'s key, if it has one (`None`: it never had backups, or its
    /// key was destroyed).
    pub async fn existing(&self, tenant: &str) -> Result<Option<Arc<DataKey>>, BackupError> {
        if let Some(key) = crate::locks::lock(&self.known).get(tenant) {
            return Ok(Some(key.clone()));
        }
        let file = self.file_of(tenant);
        let Some(bytes) = self.target.get(&file).await? else {
            return Ok(None);
        };
        let key = Arc::new(
            self.unwrap(&file, &bytes)
                .map_err(|reason| BackupError::Corrupt {
                    file: file.clone(),
                    range: "a tenant's data key".to_owned(),
                    reason,
                })?,
        );
        crate::locks::lock(&self.known).insert(tenant.to_owned(), key.clone());
        Ok(Some(key))
    }

    fn unwrap(&self, file: &str, bytes: &[u8]) -> Result<DataKey, String> {
        let row: KeyFile =
            serde_json::from_slice(bytes).map_err(|e| format!("does not parse: {e}"))?;
        let id: KeyId = decode_hex(&row.key_id)
            .and_then(|b| b.try_into().ok())
            .ok_or("its key id is not 32 hex digits")?;
        let wrapped = B64
            .decode(&row.wrapped)
            .map_err(|_| "its wrapped key is not base64")?;
        let key: [u8; 32] = open(&self.master.0, file.as_bytes(), &wrapped)
            .ok_or("it does not unwrap with this master key")?
            .try_into()
            .map_err(|_| "its data key is not 32 bytes")?;
        Ok(DataKey { id, key })
    }

    /// Every data key in the target by id, and the key files that could
    /// not be read: what verification opens every frame with.
    pub async fn all(&self) -> Result<(HashMap<KeyId, DataKey>, Vec<DamagedKey>), BackupError> {
        let mut keys = HashMap::new();
        let mut damaged = Vec::new();
        for file in self.target.list(KEYS).await? {
            let Some(bytes) = self.target.get(&file).await? else {
                continue;
            };
            match self.unwrap(&file, &bytes) {
                Ok(key) => {
                    keys.insert(key.id, key);
                }
                Err(reason) => damaged.push(DamagedKey { file, reason }),
            }
        }
        Ok((keys, damaged))
    }

    /// Forgets what this process remembers of `tenant`'s key: the next use
    /// reads the target (where another node may have destroyed it).
    pub fn forget(&self, tenant: &str) {
        crate::locks::lock(&self.known).remove(tenant);
    }

    /// Destroys `tenant`'s key: every backup of its data becomes
    /// unreadable. Says whether it had one.
    pub async fn destroy(&self, tenant: &str) -> Result<bool, BackupError> {
        let file = self.file_of(tenant);
        let had = self.target.get(&file).await?.is_some();
        self.target.delete(&file).await?;
        crate::locks::lock(&self.known).remove(tenant);
        Ok(had)
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the system's random source works");
    bytes
}

/// `bytes` as lowercase hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// A random data key, for tests of what uses one.
#[cfg(test)]
pub(super) fn tests_key() -> DataKey {
    DataKey {
        id: random::<16>(),
        key: random::<32>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_frame_opens_with_its_key_and_aad_only() {
        let key = DataKey {
            id: random::<16>(),
            key: random::<32>(),
        };
        let other = DataKey {
            id: random::<16>(),
            key: random::<32>(),
        };
        let sealed = key.seal(b"aad", b"grace hopper");
        assert_eq!(
            key.open(b"aad", &sealed).as_deref(),
            Some(&b"grace hopper"[..])
        );
        assert_eq!(key.open(b"other", &sealed), None);
        assert_eq!(other.open(b"aad", &sealed), None);
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert_eq!(key.open(b"aad", &flipped), None);
    }

    #[test]
    fn a_master_key_is_64_hex_digits() {
        assert!(MasterKey::parse(&MasterKey::generate()).is_ok());
        assert!(MasterKey::parse("abc").is_err());
        assert!(MasterKey::parse(&"zz".repeat(32)).is_err());
    }
}
