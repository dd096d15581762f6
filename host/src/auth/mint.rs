//! Making keys and tokens, for local development, the quickstart and tests:
//! `droid keygen` and `droid token`. Production issuers mint their own tokens
//! with their own libraries; these follow the same rules the service checks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use super::token::check_kid;

/// Why a key or a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The key id is not acceptable.
    #[error("key id {kid:?}: {reason}")]
    Kid {
        /// The key id.
        kid: String,
        /// Why.
        reason: String,
    },
    /// The private key is neither an EC P-256 nor an RSA key in PEM.
    #[error("{0}: not an EC P-256 or RSA private key in PEM")]
    Key(String),
    /// Signing failed.
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> MintError {
    MintError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// A new key pair.
#[derive(Debug)]
pub struct KeyPair {
    /// The key id (`ISSUER/KEY`).
    pub kid: String,
    /// The public key, at `{repository}/{kid}`.
    pub public: PathBuf,
    /// The private key (mode 0600), with the key id beside it in `FILE.kid`.
    pub private: PathBuf,
}

/// Makes an ES256 (P-256) key pair: the public key into `repository` at its
/// `kid` (`ISSUER/KEY_ID`), the private key into `private`.
pub fn keygen(
    repository: &Path,
    issuer: &str,
    key_id: Option<&str>,
    private: &Path,
) -> Result<KeyPair, MintError> {
    let key_id = match key_id {
        Some(id) => id.to_owned(),
        None => random_hex(4),
    };
    let kid = format!("{issuer}/{key_id}");
    check_kid(&kid).map_err(|e| MintError::Kid {
        kid: kid.clone(),
        reason: e.to_string(),
    })?;
    let secret = loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| MintError::Sign(e.to_string()))?;
        // Almost every 32-byte string is a valid scalar; the rest are drawn again.
        if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
            break secret;
        }
    };
    let private_pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| MintError::Sign(e.to_string()))?;
    let public_pem = secret
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| MintError::Sign(e.to_string()))?;
    let public = repository.join(&kid);
    if let Some(folder) = public.parent() {
        std::fs::create_dir_all(folder).map_err(|e| file_error(folder, e))?;
    }
    std::fs::write(&public, public_pem).map_err(|e| file_error(&public, e))?;
    write_private(private, private_pem.as_bytes())?;
    let kid_file = kid_file(private);
    std::fs::write(&kid_file, format!("{kid}\n")).map_err(|e| file_error(&kid_file, e))?;
    Ok(KeyPair {
        kid,
        public,
        private: private.to_owned(),
    })
}

fn write_private(path: &Path, pem: &[u8]) -> Result<(), MintError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| file_error(path, e))?;
    file.write_all(pem).map_err(|e| file_error(path, e))
}

/// `FILE.kid`, where `keygen` notes a private key's key id.
fn kid_file(private: &Path) -> PathBuf {
    let mut name = private.file_name().unwrap_or_default().to_owned();
    name.push(".kid");
    private.with_file_name(name)
}

/// What a token says.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The key id; read from `KEY.kid` when not given.
    pub kid: Option<String>,
    /// The issuer; the key id's first segment when not given.
    pub issuer: Option<String>,
    /// The audiences.
    pub audience: Vec<String>,
    /// The subject, if other than the issuer.
    pub subject: Option<String>,
    /// How long it lives (at most an hour is accepted by droid).
    pub lifetime: Duration,
}

impl TokenRequest {
    /// A token for `audience` living `lifetime`, with the kid beside the key
    /// and the issuer and subject it names.
    pub fn new(audience: &str, lifetime: Duration) -> Self {
        Self {
            kid: None,
            issuer: None,
            audience: vec![audience.to_owned()],
            subject: None,
            lifetime,
        }
    }
}

/// A signed token from the private key at `key`.
pub fn mint(key: &Path, request: &TokenRequest) -> Result<String, MintError> {
    let pem = std::fs::read(key).map_err(|e| file_error(key, e))?;
    let kid = match &request.kid {
        Some(kid) => kid.clone(),
        None => {
            let path = kid_file(key);
            std::fs::read_to_string(&path)
                .map_err(|e| file_error(&path, format!("{e} (pass --kid)")))?
                .trim()
                .to_owned()
        }
    };
    let issuer = match &request.issuer {
        Some(issuer) => issuer.clone(),
        None => kid.split('/').next().unwrap_or_default().to_owned(),
    };
    let (alg, encoding) = match EncodingKey::from_ec_pem(&pem) {
        Ok(k) => (Algorithm::ES256, k),
        Err(_) => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&pem)
                .map_err(|_| MintError::Key(key.display().to_string()))?,
        ),
    };
    let now = super::now_s();
    let claims = serde_json::json!({
        "iss": issuer,
        "sub": request.subject.clone().unwrap_or_else(|| issuer.clone()),
        "aud": request.audience,
        "iat": now,
        "exp": now + request.lifetime.as_secs(),
        "jti": random_hex(16),
    });
    sign(alg, &kid, &claims, &encoding)
}

/// Signs `claims` with `key`, naming `kid`: for tools and tests that need a
/// token exactly as they say.
pub fn sign(
    alg: Algorithm,
    kid: &str,
    claims: &serde_json::Value,
    key: &EncodingKey,
) -> Result<String, MintError> {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).map_err(|e| MintError::Sign(e.to_string()))
}

/// `bytes` random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the operating system gives random bytes");
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}
