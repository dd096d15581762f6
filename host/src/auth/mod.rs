//! Service authentication: who is calling, proven by an ASAP-style bearer JWT.
//!
//! A token is checked in order of cost: its size and header (algorithm, `kid`
//! syntax) and the `kid`'s issuer prefix first ([`token`]), then the issuer's
//! public key from the key repositories ([`keys`]), then the signature and the
//! claims (audience, expiry, not-before, issue time, lifetime). A token that
//! passed is remembered until it expires, keyed by its exact text, so a
//! consumer reusing its token pays for one signature check, not one per
//! request. Replay protection ([`replay`]) refuses a `jti` used again within
//! its token's life: always for mutating calls (ingestion, invalidation,
//! admin), for reads only when configured, since consumers commonly reuse a
//! token for most of its life.
//!
//! What a caller may do once known is [`crate::access`]'s business.

pub mod keys;
pub mod mint;
mod replay;
pub mod token;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::Validation;
use moka::Expiry;

pub use crate::config::{AuthSettings, KeySettings, Repository};
pub use keys::KeyError;
use replay::Replay;
use token::Claims;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials are checked (`--insecure-no-auth`): everything is allowed.
    Insecure,
    /// A service that proved itself with a token.
    Service {
        /// The token's issuer, which grants name.
        issuer: String,
        /// The token's subject (the issuer unless the token says otherwise).
        subject: String,
    },
}

impl Caller {
    /// The issuer, for a service.
    pub fn issuer(&self) -> Option<&str> {
        match self {
            Caller::Insecure => None,
            Caller::Service { issuer, .. } => Some(issuer),
        }
    }
}

/// Why a request's credentials were not accepted. The messages say which
/// check failed, never which key material was tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token: send Authorization: Bearer <token>")]
    Missing,
    /// The token or its header is larger than allowed.
    #[error("the token is larger than allowed")]
    TooLarge,
    /// Not a JWT.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// An algorithm outside the allowed asymmetric ones (`none` and HMAC included).
    #[error("the token's algorithm is not allowed (RS256/384/512, PS256/384/512, ES256/384)")]
    Algorithm,
    /// A `kid` that is missing or not a safe relative path.
    #[error("the token's kid is invalid: {0}")]
    Kid(&'static str),
    /// The `kid` does not start with the issuer and `/`.
    #[error("the token's kid does not belong to its issuer")]
    KidIssuer,
    /// No key repository has the `kid`.
    #[error("the token's key is not known")]
    UnknownKey,
    /// The token's issuer is named by no grant: it can do nothing, so its
    /// key is not looked up.
    #[error("the token's issuer is not granted anything here")]
    UnknownIssuer,
    /// The key repositories could not be reached in time.
    #[error("the token's key cannot be fetched right now; try again")]
    KeyUnavailable,
    /// The signature does not verify with the issuer's key.
    #[error("the token's signature does not verify")]
    Signature,
    /// `aud` does not name this service.
    #[error("the token is for another audience")]
    Audience,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is still ahead.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is ahead of this clock by more than the skew.
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// `exp - iat` is over an hour.
    #[error("the token lives longer than an hour")]
    Lifetime,
    /// A claim is missing or of the wrong form.
    #[error("the token's claims are invalid: {0}")]
    Claims(&'static str),
    /// The `jti` was used before within the token's life.
    #[error("the token was used before (replayed jti)")]
    Replayed,
}

/// What a call does, for the replay rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Reads records (or the change feed).
    Read,
    /// Changes something: ingestion, invalidation, administration.
    Mutate,
}

/// A token that passed every check, remembered until it expires.
#[derive(Debug)]
struct Verified {
    caller: Caller,
    issuer: String,
    jti: String,
    exp: u64,
}

/// Verified tokens expire with their tokens.
struct UntilTokenExpiry {
    skew: Duration,
}

impl Expiry<Arc<str>, Arc<Verified>> for UntilTokenExpiry {
    fn expire_after_create(
        &self,
        _token: &Arc<str>,
        verified: &Arc<Verified>,
        _now: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(verified.exp.saturating_sub(now_s())) + self.skew)
    }
}

/// Checks bearer tokens.
#[derive(Debug)]
pub struct Authenticator {
    settings: AuthSettings,
    keys: keys::Keys,
    /// The issuers some grant names (`None`: any may read), from the
    /// configuration in force.
    granted: arc_swap::ArcSwap<Option<std::collections::HashSet<String>>>,
    replay: Replay,
    verified: moka::sync::Cache<Arc<str>, Arc<Verified>>,
}

impl Authenticator {
    /// An authenticator with `settings`.
    pub fn new(settings: AuthSettings) -> Self {
        Self {
            keys: keys::Keys::new(settings.keys.clone()),
            granted: arc_swap::ArcSwap::from_pointee(None),
            replay: Replay::new(settings.replay_entries),
            verified: moka::sync::Cache::builder()
                .max_capacity(settings.verified_entries)
                .expire_after(UntilTokenExpiry {
                    skew: settings.clock_skew,
                })
                .build(),
            settings,
        }
    }

    /// Sets the issuers some grant names (`None`: any may be granted):
    /// tokens of other issuers are refused before their key is looked up.
    pub fn set_granted_issuers(&self, issuers: Option<std::collections::HashSet<String>>) {
        self.granted.store(Arc::new(issuers));
    }

    /// The settings it was made with (a changed configuration makes a new one).
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// Who sent `authorization` (the `Authorization` header's value), for a call of `kind`.
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        kind: CallKind,
    ) -> Result<Caller, AuthError> {
        let token = bearer(authorization)?;
        let now = now_s();
        let skew = self.settings.clock_skew.as_secs();
        let verified = match self.verified.get(token) {
            Some(verified) => verified,
            None => {
                let verified = Arc::new(self.verify(token, now).await?);
                self.verified.insert(Arc::from(token), verified.clone());
                verified
            }
        };
        if now > verified.exp + skew {
            return Err(AuthError::Expired);
        }
        if kind == CallKind::Mutate || self.settings.replay_protect_reads {
            let lives_for = Duration::from_secs(verified.exp + skew - now);
            if !self
                .replay
                .first_use(&verified.issuer, &verified.jti, lives_for)
            {
                return Err(AuthError::Replayed);
            }
        }
        Ok(verified.caller.clone())
    }

    /// Every check of a token not seen before.
    async fn verify(&self, token: &str, now: u64) -> Result<Verified, AuthError> {
        let header = token::check_header(token)?;
        let issuer = token::unverified_issuer(token)?;
        token::check_kid_issuer(&header.kid, &issuer)?;
        if let Some(granted) = &**self.granted.load()
            && !granted.contains(&issuer)
        {
            metrics::counter!(crate::metrics::KEY_LOOKUPS_REFUSED, "reason" => "issuer_not_granted")
                .increment(1);
            return Err(AuthError::UnknownIssuer);
        }
        let key = self
            .keys
            .get(&header.kid, &issuer)
            .await
            .map_err(|e| match e {
                KeyError::Unknown => AuthError::UnknownKey,
                KeyError::Unavailable | KeyError::Busy => AuthError::KeyUnavailable,
            })?;
        // Only the header's algorithm (already one of the allowed ones): the
        // library also requires it to match the key's family.
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.settings.clock_skew.as_secs();
        validation.validate_nbf = true;
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| map_jwt_error(&e))?;
        let claims = data.claims;
        if claims.iss != issuer {
            return Err(AuthError::KidIssuer);
        }
        token::check_claims(&claims, now, self.settings.clock_skew.as_secs())?;
        Ok(Verified {
            caller: Caller::Service {
                subject: claims.sub.clone().unwrap_or_else(|| claims.iss.clone()),
                issuer: claims.iss.clone(),
            },
            issuer: claims.iss,
            jti: claims.jti,
            exp: claims.exp,
        })
    }
}

/// The token of an `Authorization: Bearer` header.
fn bearer(authorization: Option<&[u8]>) -> Result<&str, AuthError> {
    let value = authorization.ok_or(AuthError::Missing)?;
    if value.len() > token::MAX_TOKEN_BYTES + 7 {
        return Err(AuthError::TooLarge);
    }
    let text = std::str::from_utf8(value).map_err(|_| AuthError::Malformed("not ASCII"))?;
    let (scheme, token) = text.split_once(' ').ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token.trim())
}

fn map_jwt_error(e: &jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => AuthError::Signature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::Audience,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            AuthError::Claims("a required claim is missing or malformed")
        }
        ErrorKind::Json(_) => AuthError::Claims("iss, aud, exp, iat and jti are required"),
        _ => AuthError::Malformed("not a JWT"),
    }
}

/// Seconds since the Unix epoch.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_minted_by_keygen_keys_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let repository = dir.path().join("repo");
        let private = dir.path().join("svc.key");
        mint::keygen(&repository, "svc", Some("k1"), &private).unwrap();
        let token = mint::mint(
            &private,
            &mint::TokenRequest {
                kid: None,
                issuer: None,
                audience: vec!["droid".into()],
                subject: None,
                lifetime: Duration::from_secs(60),
            },
        )
        .unwrap();
        let auth = Authenticator::new(AuthSettings {
            audience: "droid".into(),
            keys: KeySettings {
                repositories: vec![Repository::Folder(repository)],
                max_entries: 10,
                max_age: Duration::from_secs(60),
                missing_for: Duration::from_secs(1),
                fetch_timeout: Duration::from_secs(1),
                fetch_concurrency: 4,
                fetches_per_s: 5,
            },
            clock_skew: Duration::from_secs(30),
            replay_protect_reads: false,
            replay_entries: 1000,
            verified_entries: 1000,
        });
        let header = format!("Bearer {token}");
        let caller = auth
            .authenticate(Some(header.as_bytes()), CallKind::Read)
            .await
            .unwrap();
        assert_eq!(caller.issuer(), Some("svc"));
    }
}
