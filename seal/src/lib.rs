//! Sealed values: how a provider keeps PII and user-generated content out of
//! droid in plain text while consumers can still use it.
//!
//! A record type that declares sensitive fields has a 32-byte seal key, shared
//! by droid and the provider's plugin. A sensitive field is either absent,
//! `null`, or a *sealed* string:
//!
//! - [`hash`]: a keyed hash (HMAC-SHA-256) of the value. Equal values seal
//!   equally, so consumers can match and join on them, but nobody without the
//!   key can test a guess.
//! - [`encrypt`]: the value encrypted (ChaCha20-Poly1305, the nonce derived
//!   from the value, so equal values encrypt equally too); holders of the key
//!   can [`open`] it.
//!
//! Both forms end with a tag (a MAC over the sealed form, with a key derived
//! from the seal key), which is what droid checks with [`verify`]: a value
//! that merely looks sealed, or was sealed with another key, is refused.
//!
//! The form is `sealed:v1:{h|e}:{payload}:{tag}`, payload and tag in
//! unpadded base64url.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A seal key: 32 bytes, written as 64 hex digits in configuration.
pub type SealKey = [u8; 32];

/// The prefix of every sealed value.
pub const PREFIX: &str = "sealed:v1:";

/// Which kind of seal a value has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A keyed hash.
    Hash,
    /// Deterministic encryption.
    Encrypted,
}

/// Why a value is not a good seal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not of the form `sealed:v1:{h|e}:{payload}:{tag}`.
    #[error("not a sealed value (expected sealed:v1:h|e:...)")]
    NotSealed,
    /// The tag does not match: sealed with another key, or altered.
    #[error("the seal does not verify with this record type's key")]
    BadTag,
    /// A hashed value cannot be opened; an encrypted one did not decrypt.
    #[error("the sealed value cannot be opened")]
    CannotOpen,
    /// A key that is not 64 hex digits.
    #[error("a seal key is 64 hex digits (32 bytes)")]
    BadKey,
}

/// Parses a key written as 64 hex digits.
pub fn parse_key(hex: &str) -> Result<SealKey, SealError> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SealError::BadKey);
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| SealError::BadKey)?;
    }
    Ok(key)
}

/// HMAC-SHA-256 of `parts` under `key`.
fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A key for one purpose, derived from the seal key.
fn subkey(key: &SealKey, purpose: &str) -> [u8; 32] {
    mac(key, &[b"droid-seal v1 ", purpose.as_bytes()])
}

/// The tag of a sealed form's head (`sealed:v1:{kind}:{payload}`).
fn tag(key: &SealKey, head: &str) -> String {
    B64.encode(&mac(&subkey(key, "tag"), &[head.as_bytes()])[..16])
}

fn finish(key: &SealKey, kind: char, payload: &[u8]) -> String {
    let head = format!("{PREFIX}{kind}:{}", B64.encode(payload));
    let tag = tag(key, &head);
    format!("{head}:{tag}")
}

/// `value` sealed as a keyed hash.
pub fn hash(key: &SealKey, value: &str) -> String {
    finish(key, 'h', &mac(&subkey(key, "hash"), &[value.as_bytes()]))
}

/// `value` sealed by deterministic encryption.
pub fn encrypt(key: &SealKey, value: &str) -> String {
    let nonce_bytes = mac(&subkey(key, "nonce"), &[value.as_bytes()]);
    let nonce = Nonce::try_from(&nonce_bytes[..12]).expect("12 bytes");
    let cipher = ChaCha20Poly1305::new((&subkey(key, "encrypt")).into());
    let sealed = cipher
        .encrypt(&nonce, value.as_bytes())
        .expect("ChaCha20-Poly1305 encrypts any length droid handles");
    let mut payload = nonce_bytes[..12].to_vec();
    payload.extend_from_slice(&sealed);
    finish(key, 'e', &payload)
}

/// Splits a sealed form into its kind, payload and tag.
fn parts(sealed: &str) -> Result<(Kind, &str, &str, &str), SealError> {
    let rest = sealed.strip_prefix(PREFIX).ok_or(SealError::NotSealed)?;
    let (head, tag) = sealed.rsplit_once(':').ok_or(SealError::NotSealed)?;
    let mut fields = rest.split(':');
    let (Some(kind), Some(payload), Some(_), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(SealError::NotSealed);
    };
    let kind = match kind {
        "h" => Kind::Hash,
        "e" => Kind::Encrypted,
        _ => return Err(SealError::NotSealed),
    };
    if payload.is_empty() || B64.decode(payload).is_err() {
        return Err(SealError::NotSealed);
    }
    Ok((kind, head, payload, tag))
}

/// Checks that `sealed` was sealed with `key`; says how.
pub fn verify(key: &SealKey, sealed: &str) -> Result<Kind, SealError> {
    let (kind, head, _, given) = parts(sealed)?;
    let expected = tag(key, head);
    // Compare in constant time: the MAC of the two tags under a throwaway key.
    let same = mac(key, &[expected.as_bytes()]) == mac(key, &[given.as_bytes()]);
    if same {
        Ok(kind)
    } else {
        Err(SealError::BadTag)
    }
}

/// The plain value of an encrypted seal.
pub fn open(key: &SealKey, sealed: &str) -> Result<String, SealError> {
    if verify(key, sealed)? != Kind::Encrypted {
        return Err(SealError::CannotOpen);
    }
    let (_, _, payload, _) = parts(sealed)?;
    let bytes = B64.decode(payload).map_err(|_| SealError::CannotOpen)?;
    if bytes.len() < 12 {
        return Err(SealError::CannotOpen);
    }
    let cipher = ChaCha20Poly1305::new((&subkey(key, "encrypt")).into());
    let plain = cipher
        .decrypt(
            &Nonce::try_from(&bytes[..12]).map_err(|_| SealError::CannotOpen)?,
            &bytes[12..],
        )
        .map_err(|_| SealError::CannotOpen)?;
    String::from_utf8(plain).map_err(|_| SealError::CannotOpen)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: SealKey = [7; 32];
    const OTHER: SealKey = [8; 32];

    #[test]
    fn hashes_are_stable_verifiable_and_hide_the_value() {
        let a = hash(&KEY, "grace@example.com");
        assert_eq!(a, hash(&KEY, "grace@example.com"));
        assert_ne!(a, hash(&KEY, "ada@example.com"));
        assert!(a.starts_with("sealed:v1:h:") && !a.contains("grace"));
        assert_eq!(verify(&KEY, &a), Ok(Kind::Hash));
        assert_eq!(verify(&OTHER, &a), Err(SealError::BadTag));
        assert_eq!(open(&KEY, &a), Err(SealError::CannotOpen));
    }

    #[test]
    fn encrypted_values_open_with_the_key_only() {
        let e = encrypt(&KEY, "Grace Hopper, 1 Navy Way");
        assert_eq!(e, encrypt(&KEY, "Grace Hopper, 1 Navy Way"));
        assert_eq!(verify(&KEY, &e), Ok(Kind::Encrypted));
        assert_eq!(open(&KEY, &e).unwrap(), "Grace Hopper, 1 Navy Way");
        assert_eq!(open(&OTHER, &e), Err(SealError::BadTag));
    }

    #[test]
    fn look_alikes_and_altered_seals_are_refused() {
        let a = hash(&KEY, "x");
        for bad in [
            "grace@example.com",
            "sealed:v1:h:",
            "sealed:v1:h:AAAA",
            "sealed:v1:z:AAAA:AAAA",
            "sealed:v1:h:AAAA:AAAA:AAAA",
            "sealed:v2:h:AAAA:AAAA",
        ] {
            assert_eq!(verify(&KEY, bad), Err(SealError::NotSealed), "{bad}");
        }
        let forged = format!(
            "{}:{}",
            &a[..a.rfind(':').unwrap()],
            "AAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(verify(&KEY, &forged), Err(SealError::BadTag));
        let swapped = a.replacen(":h:", ":e:", 1);
        assert_eq!(verify(&KEY, &swapped), Err(SealError::BadTag));
    }

    #[test]
    fn keys_are_64_hex_digits() {
        assert_eq!(parse_key(&"07".repeat(32)), Ok(KEY));
        assert_eq!(parse_key("abc"), Err(SealError::BadKey));
        assert_eq!(parse_key(&"zz".repeat(32)), Err(SealError::BadKey));
    }
}
