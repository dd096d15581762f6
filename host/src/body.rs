//! What droid accepts as a record body from a plugin, whichever world made
//! it: JSON, no larger and no deeper than the record type's limits, with its
//! sensitive fields sealed.
//!
//! Consumers parse what droid serves, often with recursive parsers that a
//! deeply nested document overflows, and every byte is kept in caches, the
//! store, the change log and every follower. So a body past a limit is refused
//! where it enters, before anything keeps it. The checks run cheapest first:
//! the size, one pass over the bytes for the depth, then the parse.

use crate::config::PluginLimits;
use crate::sensitive::SecretKey;

pub use droid_rules::change::MAX_VERSION;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Larger than `limits.max_record_bytes`.
    #[error("the record body is {size} bytes, more than the {max} bytes allowed")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: u64,
    },
    /// Nested deeper than `limits.max_json_depth`.
    #[error("the record body nests arrays and objects more than {max} deep")]
    TooDeep {
        /// The limit.
        max: u32,
    },
    /// Not a JSON document.
    #[error("the record body is not JSON ({0})")]
    NotJson(String),
    /// A sensitive field in plain text (the message names the field).
    #[error("{0}")]
    Sensitive(String),
}

impl BodyError {
    /// The limit it went past, for the ones that are limits.
    pub fn limit(&self) -> Option<&'static str> {
        match self {
            BodyError::TooLarge { .. } => Some("max_record_bytes"),
            BodyError::TooDeep { .. } => Some("max_json_depth"),
            BodyError::NotJson(_) | BodyError::Sensitive(_) => None,
        }
    }
}

/// Checks `body` against `limits` and the record type's sensitive fields.
pub fn check(
    body: &str,
    limits: &PluginLimits,
    sensitive_fields: &[String],
    seal_key: Option<&SecretKey>,
) -> Result<(), BodyError> {
    if body.len() as u64 > limits.max_record_bytes {
        return Err(BodyError::TooLarge {
            size: body.len(),
            max: limits.max_record_bytes,
        });
    }
    if depth_exceeds(body.as_bytes(), limits.max_json_depth) {
        return Err(BodyError::TooDeep {
            max: limits.max_json_depth,
        });
    }
    serde_json::from_str::<serde::de::IgnoredAny>(body)
        .map_err(|e| BodyError::NotJson(e.to_string()))?;
    crate::sensitive::check(body, sensitive_fields, seal_key).map_err(BodyError::Sensitive)
}

/// Whether arrays and objects in `json` nest deeper than `max`. Brackets in
/// strings do not count; the text need not be valid JSON (the parse after
/// this says whether it is).
fn depth_exceeds(json: &[u8], max: u32) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0u32, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(bytes: u64, depth: u32) -> PluginLimits {
        PluginLimits {
            max_record_bytes: bytes,
            max_json_depth: depth,
            ..PluginLimits::default()
        }
    }

    #[test]
    fn depth_counts_brackets_outside_strings() {
        assert!(!depth_exceeds(br#"{"a":[1,{"b":"[[[[{{{{"}]}"#, 3));
        assert!(depth_exceeds(br#"{"a":[1,{"b":[]}]}"#, 3));
        assert!(!depth_exceeds(br#"{"a":"\"[[[["}"#, 1));
        assert!(!depth_exceeds(b"[]", 1));
        assert!(depth_exceeds(b"[[]]", 1));
    }

    #[test]
    fn bodies_are_checked_cheapest_first() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            check(&deep, &limits(1 << 20, 64), &[], None),
            Err(BodyError::TooDeep { max: 64 })
        );
        assert_eq!(
            check(&deep, &limits(1_000, 64), &[], None),
            Err(BodyError::TooLarge {
                size: 200_000,
                max: 1_000
            })
        );
        assert!(matches!(
            check("{nope", &limits(1_000, 64), &[], None),
            Err(BodyError::NotJson(_))
        ));
        assert_eq!(
            check(r#"{"ok":[1,2]}"#, &limits(1_000, 2), &[], None),
            Ok(())
        );
    }
}
