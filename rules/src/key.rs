//! Keys and tenant ids as they arrive from consumers, checked once at the edge.
//!
//! A key ends up in a backing-store URL, a cache, log lines and metric-free places
//! like the change log, so the rules keep out what breaks any of them: path
//! separators, dot segments, control characters and unbounded length. Beyond that a
//! key is any UTF-8 text: providers pick their own key shapes (emails, ARIs, ids).

use std::borrow::Cow;
use std::fmt;

/// The longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// The longest tenant id accepted, in bytes.
pub const MAX_TENANT_BYTES: usize = 128;
/// The tenant a request reads when it names none.
pub const DEFAULT_TENANT: &str = "default";

/// A record key that passed [`EntityKey::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityKey(String);

/// A tenant id that passed [`TenantId::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Cow<'static, str>);

/// Why a key or tenant id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Nothing was given.
    #[error("must not be empty")]
    Empty,
    /// Longer than allowed.
    #[error("is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// The length given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Holds a character that is never allowed.
    #[error("contains {0}, which is not allowed")]
    ForbiddenChar(&'static str),
    /// Is `.` or `..`, which a URL would resolve as a path step.
    #[error("must not be \".\" or \"..\"")]
    DotSegment,
    /// Was not valid UTF-8 once percent-decoded.
    #[error("is not valid UTF-8")]
    NotUtf8,
}

impl EntityKey {
    /// Checks a decoded key against the rules in the module docs.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        Self::from_string(text.to_owned())
    }

    /// Like [`EntityKey::parse`], keeping the given string instead of copying it.
    pub fn from_string(text: String) -> Result<Self, KeyError> {
        check_common(&text, MAX_KEY_BYTES)?;
        if text == "." || text == ".." {
            return Err(KeyError::DotSegment);
        }
        Ok(Self(text))
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TenantId {
    /// Tenant ids are narrower than keys: letters, digits and `-_.:` only, because
    /// they name realms, backups and metric-free audit trails.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        check_common(text, MAX_TENANT_BYTES)?;
        if text == "." || text == ".." {
            return Err(KeyError::DotSegment);
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        {
            return Err(KeyError::ForbiddenChar(if bad.is_whitespace() {
                "whitespace"
            } else {
                "a character other than letters, digits, '-', '_', '.' or ':'"
            }));
        }
        Ok(Self(Cow::Owned(text.to_owned())))
    }

    /// The tenant every request without a tenant reads.
    pub fn default_tenant() -> Self {
        Self(Cow::Borrowed(DEFAULT_TENANT))
    }

    /// The tenant id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_common(text: &str, max: usize) -> Result<(), KeyError> {
    if text.is_empty() {
        return Err(KeyError::Empty);
    }
    if text.len() > max {
        return Err(KeyError::TooLong {
            len: text.len(),
            max,
        });
    }
    for c in text.chars() {
        match c {
            '/' => return Err(KeyError::ForbiddenChar("'/'")),
            '\\' => return Err(KeyError::ForbiddenChar("'\\'")),
            c if c.is_control() => return Err(KeyError::ForbiddenChar("a control character")),
            _ => {}
        }
    }
    Ok(())
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_accept_the_shapes_providers_use() {
        for ok in [
            "TICKET-1",
            "a@b.example",
            "ari:cloud:jira::site/x".replace('/', ":").as_str(),
            "ünïcödé",
            "a..b",
        ] {
            assert!(EntityKey::parse(ok).is_ok(), "{ok:?} should be accepted");
        }
    }

    #[test]
    fn keys_refuse_what_breaks_urls_and_logs() {
        assert_eq!(EntityKey::parse(""), Err(KeyError::Empty));
        assert_eq!(EntityKey::parse("a/b"), Err(KeyError::ForbiddenChar("'/'")));
        assert_eq!(EntityKey::parse(".."), Err(KeyError::DotSegment));
        assert_eq!(EntityKey::parse("."), Err(KeyError::DotSegment));
        assert_eq!(
            EntityKey::parse("a\nb"),
            Err(KeyError::ForbiddenChar("a control character"))
        );
        assert_eq!(
            EntityKey::parse("a\u{7f}"),
            Err(KeyError::ForbiddenChar("a control character"))
        );
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(matches!(
            EntityKey::parse(&long),
            Err(KeyError::TooLong { .. })
        ));
        assert!(EntityKey::parse(&"k".repeat(MAX_KEY_BYTES)).is_ok());
    }

    #[test]
    fn tenants_are_plain_identifiers() {
        assert!(TenantId::parse("acme-prod:eu.1").is_ok());
        assert!(TenantId::parse("acme prod").is_err());
        assert!(TenantId::parse("acme?x").is_err());
    }
}
