//! Which plugin files may be loaded: with trust required, a file must have its
//! SHA-256 pinned in the configuration or carry an ed25519 signature
//! (`FILE.wasm.sig`, made by `droid plugins sign`) from a key the configuration
//! trusts. The check runs on the exact bytes before anything is compiled.
//!
//! A signature covers a domain tag plus the file's SHA-256, so it can never be
//! mistaken for a signature over anything else. Keys are PEM files: PKCS#8 for
//! the private key a provider keeps, SPKI for the public key an operator trusts.

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::config::TrustSettings;

/// What every signature signs before the file's hash.
const DOMAIN: &[u8] = b"droid plugin signature v1\n";
/// How a signature file starts.
const SIG_PREFIX: &str = "ed25519:";

/// Why keys or signatures could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A key file could not be read or parsed.
    #[error("{}: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        reason: String,
    },
}

/// The trust rule in force, with its keys loaded.
#[derive(Debug, Default)]
pub struct Trust {
    required: bool,
    pinned: Vec<String>,
    keys: Vec<(String, VerifyingKey)>,
}

impl Trust {
    /// Loads the keys `settings` names.
    pub fn load(settings: &TrustSettings) -> Result<Self, TrustError> {
        let keys = settings
            .trusted_keys
            .iter()
            .map(|path| {
                let key = read_public_key(path)?;
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| path.display().to_string());
                Ok((name, key))
            })
            .collect::<Result<_, TrustError>>()?;
        Ok(Self {
            required: settings.required,
            pinned: settings.pinned_sha256.clone(),
            keys,
        })
    }

    /// Judges the file at `path` whose content hashes to `sha256`: `Ok(Some(why))`
    /// when trusted, `Ok(None)` when trust is not required and nothing vouches
    /// for it, `Err(reason)` when it must be refused.
    pub fn check(&self, path: &Path, sha256: &str) -> Result<Option<String>, String> {
        if self.pinned.iter().any(|p| p == sha256) {
            return Ok(Some("pinned sha256".to_owned()));
        }
        let sig_path = signature_path(path);
        let text = match std::fs::read_to_string(&sig_path) {
            Ok(text) => text,
            Err(_) if !self.required => return Ok(None),
            Err(_) => {
                return Err(format!(
                    "untrusted: its sha256 {sha256} is not pinned and it has no signature file {}",
                    display_name(&sig_path)
                ));
            }
        };
        let verdict = self.verify(&text, sha256);
        match verdict {
            Ok(key) => Ok(Some(format!("signed by {key}"))),
            Err(why) if self.required => {
                Err(format!("untrusted: {}: {why}", display_name(&sig_path)))
            }
            Err(why) => {
                tracing::warn!(file = %path.display(), reason = %why, "ignoring a signature that does not verify (trust is not required)");
                Ok(None)
            }
        }
    }

    fn verify(&self, text: &str, sha256: &str) -> Result<String, String> {
        let hex = text
            .trim()
            .strip_prefix(SIG_PREFIX)
            .ok_or_else(|| format!("expected `{SIG_PREFIX}` followed by 128 hex digits"))?;
        let bytes = decode_hex(hex).ok_or("the signature is not 128 hex digits")?;
        let bytes: [u8; 64] = bytes
            .try_into()
            .map_err(|_| "the signature is not 128 hex digits")?;
        let signature = Signature::from_bytes(&bytes);
        if self.keys.is_empty() {
            return Err("no trusted keys are configured".to_owned());
        }
        let message = message(sha256);
        self.keys
            .iter()
            .find(|(_, key)| key.verify_strict(&message, &signature).is_ok())
            .map(|(name, _)| name.clone())
            .ok_or_else(|| {
                "the signature does not verify with any trusted key (the file changed after signing, or it was signed with another key)".to_owned()
            })
    }
}

/// Where the signature of plugin file `path` lives.
pub fn signature_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// Signs the plugin file at `file` with the private key at `key`, writing
/// `FILE.wasm.sig`. Returns the signature file's path.
pub fn sign(key: &Path, file: &Path) -> Result<PathBuf, TrustError> {
    let pem = std::fs::read_to_string(key).map_err(|e| TrustError::Io {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let signing = SigningKey::from_pkcs8_pem(&pem).map_err(|e| TrustError::Key {
        path: key.to_path_buf(),
        reason: format!("not an ed25519 private key in PKCS#8 PEM ({e})"),
    })?;
    let bytes = std::fs::read(file).map_err(|e| TrustError::Io {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })?;
    let sha256 = crate::runtime::sha256_hex(&bytes);
    let signature = signing.sign(&message(&sha256));
    let out = signature_path(file);
    let text = format!("{SIG_PREFIX}{}\n", encode_hex(&signature.to_bytes()));
    std::fs::write(&out, text).map_err(|e| TrustError::Io {
        path: out.clone(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// Makes a key pair: `PREFIX.key` (private, mode 0600) and `PREFIX.pub`.
pub fn keygen(prefix: &Path) -> Result<(PathBuf, PathBuf), TrustError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| TrustError::Key {
        path: prefix.to_path_buf(),
        reason: format!("no randomness from the operating system: {e}"),
    })?;
    let signing = SigningKey::from_bytes(&seed);
    let key_err = |e: String| TrustError::Key {
        path: prefix.to_path_buf(),
        reason: e,
    };
    let private = signing
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| key_err(e.to_string()))?;
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| key_err(e.to_string()))?;
    let with_ext = |ext: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(ext);
        PathBuf::from(name)
    };
    let (key_path, pub_path) = (with_ext(".key"), with_ext(".pub"));
    write_private(&key_path, private.as_bytes())?;
    std::fs::write(&pub_path, public).map_err(|e| TrustError::Io {
        path: pub_path.clone(),
        reason: e.to_string(),
    })?;
    Ok((key_path, pub_path))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TrustError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let io = |e: std::io::Error| TrustError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    options.open(path).map_err(io)?.write_all(bytes).map_err(io)
}

fn read_public_key(path: &Path) -> Result<VerifyingKey, TrustError> {
    let pem = std::fs::read_to_string(path).map_err(|e| TrustError::Key {
        path: path.to_path_buf(),
        reason: format!("cannot read the trusted key: {e}"),
    })?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| TrustError::Key {
        path: path.to_path_buf(),
        reason: format!("not an ed25519 public key in PEM (SPKI) form ({e})"),
    })
}

fn message(sha256: &str) -> Vec<u8> {
    [DOMAIN, sha256.as_bytes()].concat()
}

fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = keygen(&dir.path().join("provider")).unwrap();
        let (_, other_public) = keygen(&dir.path().join("other")).unwrap();
        let file = dir.path().join("echo.wasm");
        std::fs::write(&file, b"\0asm component bytes").unwrap();
        sign(&key, &file).unwrap();
        let sha = crate::runtime::sha256_hex(&std::fs::read(&file).unwrap());

        let settings = |keys: Vec<PathBuf>| TrustSettings {
            required: true,
            pinned_sha256: vec![],
            trusted_keys: keys,
        };
        let trusted = Trust::load(&settings(vec![public])).unwrap();
        assert_eq!(
            trusted.check(&file, &sha).unwrap().as_deref(),
            Some("signed by provider")
        );
        let wrong_hash = "0".repeat(64);
        assert!(trusted.check(&file, &wrong_hash).is_err());
        let stranger = Trust::load(&settings(vec![other_public])).unwrap();
        let why = stranger.check(&file, &sha).unwrap_err();
        assert!(why.contains("does not verify"), "{why}");

        std::fs::remove_file(signature_path(&file)).unwrap();
        let why = trusted.check(&file, &sha).unwrap_err();
        assert!(why.contains("no signature file echo.wasm.sig"), "{why}");
        let pinned = Trust::load(&TrustSettings {
            required: true,
            pinned_sha256: vec![sha.clone()],
            trusted_keys: vec![],
        })
        .unwrap();
        assert_eq!(
            pinned.check(&file, &sha).unwrap().as_deref(),
            Some("pinned sha256")
        );
    }
}
