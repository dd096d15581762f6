//! Real service tokens for the tests: a key repository folder with a key pair
//! per issuer (ES256 made by `droid keygen`'s code, plus two fixed RSA pairs
//! for the RS256 cases), and tokens signed exactly as a test needs them.

use std::path::PathBuf;
use std::time::Duration;

use droid_host::auth::mint::{self, TokenRequest};
pub use droid_host::auth::now_s;
pub use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

/// The audience every test droid is configured with.
pub const AUDIENCE: &str = "droid-test";

/// RSA key pairs kept in the repository (tests/keys), so no test waits for RSA
/// key generation.
pub const RSA_A: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/keys/rsa-a");
/// A second RSA pair, for signatures that must not verify with `RSA_A`.
pub const RSA_B: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/keys/rsa-b");

/// A key repository folder and the private keys of its issuers.
#[derive(Debug)]
pub struct Issuers {
    dir: tempfile::TempDir,
}

impl Issuers {
    /// A repository with an ES256 key (`ISSUER/es`) for each of `issuers`, and
    /// `RSA_A`'s public key as `ISSUER/rsa` for each too.
    pub fn new(issuers: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("key repository");
        std::fs::create_dir(dir.path().join("repository")).unwrap();
        std::fs::create_dir(dir.path().join("private")).unwrap();
        let this = Self { dir };
        for issuer in issuers {
            this.add(issuer);
        }
        this
    }

    /// Adds an issuer's keys.
    pub fn add(&self, issuer: &str) {
        mint::keygen(
            &self.repository(),
            issuer,
            Some("es"),
            &self.private_key(issuer),
        )
        .expect("keygen");
        std::fs::copy(
            format!("{RSA_A}.pub"),
            self.repository().join(issuer).join("rsa"),
        )
        .expect("copy the RSA public key");
    }

    /// The key repository folder (`auth.key_repositories`).
    pub fn repository(&self) -> PathBuf {
        self.dir.path().join("repository")
    }

    /// An issuer's ES256 private key file (its kid beside it).
    pub fn private_key(&self, issuer: &str) -> PathBuf {
        self.dir
            .path()
            .join("private")
            .join(format!("{issuer}.key"))
    }

    /// The `[auth]` table for a droid checking these issuers, with `admins`.
    pub fn auth_table(&self, admins: &[&str], extra: &str) -> String {
        format!(
            "[auth]\naudience = {AUDIENCE:?}\nkey_repositories = [{:?}]\nadmins = {admins:?}\n{extra}\n",
            self.repository().display().to_string()
        )
    }

    /// A fresh, valid token of `issuer` (ES256, five minutes).
    pub fn token(&self, issuer: &str) -> String {
        mint::mint(
            &self.private_key(issuer),
            &TokenRequest {
                kid: None,
                issuer: None,
                audience: vec![AUDIENCE.to_owned()],
                subject: None,
                lifetime: Duration::from_secs(300),
            },
        )
        .expect("mint")
    }

    /// `issuer`'s ES256 signing key.
    pub fn es_key(&self, issuer: &str) -> EncodingKey {
        EncodingKey::from_ec_pem(&std::fs::read(self.private_key(issuer)).unwrap()).unwrap()
    }
}

/// An RSA signing key of the repository's fixtures (`RSA_A` or `RSA_B`).
pub fn rsa_key(pair: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(format!("{pair}.key")).unwrap()).unwrap()
}

/// Valid claims of `issuer` for the test audience, to be spoilt by a test.
pub fn claims(issuer: &str) -> Value {
    let now = now_s();
    json!({
        "iss": issuer,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "jti": mint::random_hex(8),
    })
}

/// A token with exactly this header algorithm, kid and claims.
pub fn sign(alg: Algorithm, kid: &str, claims: &Value, key: &EncodingKey) -> String {
    mint::sign(alg, kid, claims, key).expect("sign")
}
