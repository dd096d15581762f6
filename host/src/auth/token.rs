//! The rules a service token must follow before its signature is even checked,
//! and the claims it carries.
//!
//! Tokens are ASAP-style JWTs: signed with an asymmetric algorithm, a `kid`
//! that names the issuer's key as `ISSUER/KEY-ID`, and short-lived claims.
//! Everything that can be refused without a key is refused here, so a bad
//! token never costs a key fetch.

use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::AuthError;

/// The most bytes a token may have; larger ones are refused unread.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The most bytes its header segment may have (a `kid` and an `alg`).
const MAX_HEADER_BYTES: usize = 1024;

/// The longest a token may live (`exp - iat`), in seconds.
pub const MAX_LIFETIME_S: u64 = 3600;

/// The algorithms tokens may be signed with. `none` and the HMAC family are
/// refused: a shared secret cannot tell the issuer from the service.
const ALGORITHMS: &[(&str, Algorithm)] = &[
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
];

/// What the token's header says, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The signing algorithm.
    pub alg: Algorithm,
    /// The key id: `ISSUER/...`.
    pub kid: String,
}

#[derive(Debug, Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
}

/// The token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// The issuer: the calling service.
    pub iss: String,
    /// The subject; the issuer when absent.
    #[serde(default)]
    pub sub: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time, seconds since the epoch.
    pub iat: u64,
    /// Not before, seconds since the epoch.
    #[serde(default)]
    pub nbf: Option<u64>,
    /// The token's unique id, for replay protection.
    pub jti: String,
}

/// Splits `token` and checks its header: size, shape, algorithm and `kid`.
pub fn check_header(token: &str) -> Result<Header, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_claims), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("not three dot-separated parts"));
    };
    if header.len() > MAX_HEADER_BYTES {
        return Err(AuthError::TooLarge);
    }
    let raw: RawHeader = decode_segment(header).ok_or(AuthError::Malformed("unreadable header"))?;
    let alg_name = raw
        .alg
        .ok_or(AuthError::Malformed("no alg in the header"))?;
    let alg = ALGORITHMS
        .iter()
        .find(|(name, _)| *name == alg_name)
        .map(|(_, alg)| *alg)
        .ok_or(AuthError::Algorithm)?;
    let kid = raw.kid.ok_or(AuthError::Kid("the header has no kid"))?;
    check_kid(&kid)?;
    Ok(Header { alg, kid })
}

/// The claims of `token`, unverified: only to check the `kid` against the
/// issuer before fetching a key. Never trusted beyond that.
pub fn unverified_issuer(token: &str) -> Result<String, AuthError> {
    #[derive(Deserialize)]
    struct Issuer {
        iss: Option<String>,
    }
    let segment = token.split('.').nth(1).unwrap_or_default();
    let claims: Issuer =
        decode_segment(segment).ok_or(AuthError::Malformed("unreadable claims"))?;
    claims.iss.ok_or(AuthError::Claims("no iss claim"))
}

fn decode_segment<T: serde::de::DeserializeOwned>(segment: &str) -> Option<T> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A `kid` is a relative path below a key repository: `[A-Za-z0-9_.+/-]`, with
/// no empty, `.` or `..` segment, so it can never leave the repository.
pub fn check_kid(kid: &str) -> Result<(), AuthError> {
    if kid.is_empty() || kid.len() > 256 {
        return Err(AuthError::Kid("empty or longer than 256 bytes"));
    }
    if !kid
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.+/-".contains(&b))
    {
        return Err(AuthError::Kid("characters outside [A-Za-z0-9_.+/-]"));
    }
    if kid
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(AuthError::Kid("an empty, . or .. segment"));
    }
    Ok(())
}

/// The `kid` must name a key of the token's own issuer: `ISSUER/...`.
pub fn check_kid_issuer(kid: &str, issuer: &str) -> Result<(), AuthError> {
    match kid.strip_prefix(issuer) {
        Some(rest) if !issuer.is_empty() && rest.starts_with('/') => Ok(()),
        _ => Err(AuthError::KidIssuer),
    }
}

/// The checks on verified claims the JWT library does not make: issue time
/// not in the future (beyond `skew_s`), a lifetime of at most an hour, a `jti`.
pub fn check_claims(claims: &Claims, now_s: u64, skew_s: u64) -> Result<(), AuthError> {
    if claims.iat > now_s + skew_s {
        return Err(AuthError::IssuedInFuture);
    }
    if claims.exp.saturating_sub(claims.iat) > MAX_LIFETIME_S {
        return Err(AuthError::Lifetime);
    }
    if claims.exp < claims.iat {
        return Err(AuthError::Claims("exp before iat"));
    }
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(AuthError::Claims("jti empty or longer than 256 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(value: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn token(header: serde_json::Value) -> String {
        format!(
            "{}.{}.sig",
            encode(&header),
            encode(&serde_json::json!({"iss": "a"}))
        )
    }

    #[test]
    fn kids_stay_inside_the_repository() {
        for good in ["svc/key-1", "svc.a/2024+1/k_1"] {
            assert_eq!(check_kid(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "svc//k",
            "svc/../k",
            "../k",
            "svc/./k",
            "svc/%2e%2e/k",
            "svc/k\n",
            "/svc/k",
            "svc/k/",
        ] {
            assert!(check_kid(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_kid_issuer("svc/key", "svc"), Ok(()));
        assert_eq!(
            check_kid_issuer("svc-other/key", "svc"),
            Err(AuthError::KidIssuer)
        );
        assert_eq!(check_kid_issuer("svc", "svc"), Err(AuthError::KidIssuer));
    }

    #[test]
    fn headers_name_a_permitted_algorithm_and_a_kid() {
        let ok = token(serde_json::json!({"alg": "ES256", "kid": "a/k"}));
        assert_eq!(check_header(&ok).unwrap().alg, Algorithm::ES256);
        for alg in ["none", "HS256", "HS512", "EdDSA"] {
            let t = token(serde_json::json!({"alg": alg, "kid": "a/k"}));
            assert_eq!(check_header(&t), Err(AuthError::Algorithm), "{alg}");
        }
        let no_kid = token(serde_json::json!({"alg": "RS256"}));
        assert!(matches!(check_header(&no_kid), Err(AuthError::Kid(_))));
        assert!(matches!(check_header("a.b"), Err(AuthError::Malformed(_))));
        assert_eq!(
            check_header(&"a".repeat(MAX_TOKEN_BYTES + 1)),
            Err(AuthError::TooLarge)
        );
    }

    #[test]
    fn claims_are_short_lived_and_not_from_the_future() {
        let claims = Claims {
            iss: "a".into(),
            sub: None,
            exp: 1_000 + 3_600,
            iat: 1_000,
            nbf: None,
            jti: "j".into(),
        };
        assert_eq!(check_claims(&claims, 1_000, 30), Ok(()));
        let long = Claims {
            exp: 1_000 + 3_601,
            ..claims.clone()
        };
        assert_eq!(check_claims(&long, 1_000, 30), Err(AuthError::Lifetime));
        assert_eq!(
            check_claims(&claims, 900, 30),
            Err(AuthError::IssuedInFuture)
        );
        assert_eq!(check_claims(&claims, 970, 30), Ok(()));
    }
}
