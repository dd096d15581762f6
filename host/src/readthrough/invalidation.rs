//! Invalidation events and the rule that decides whether one still applies.

use serde::Deserialize;

/// One invalidation, as posted to `/v1/invalidate` (and, later, read from the
/// event stream): the record under `key` changed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invalidation {
    /// The record type.
    pub record_type: String,
    /// The record's key.
    pub key: String,
    /// The tenant; reads without a tenant read `default`, so this does too.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The record's version after the change, if the provider versions records.
    #[serde(default)]
    pub version: Option<u64>,
    /// When the change happened, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub timestamp: Option<u64>,
}

/// What applying an invalidation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The key was removed from the caches (`removed` says whether anything was
    /// cached) and any fetch in flight for it will not write back.
    Invalidated {
        /// Whether an entry was removed.
        removed: bool,
    },
    /// The event is older than what the cache already saw for the key.
    Ignored {
        /// Why.
        reason: String,
    },
}

/// The newest invalidation applied to a key, and where it falls in the record
/// type's sequence of invalidations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    pub version: Option<u64>,
    pub timestamp: Option<u64>,
    pub seq: u64,
}

impl Mark {
    /// Whether this already-applied invalidation is at least as new as `event`.
    /// Versions are compared when both have one, timestamps otherwise; an event
    /// that cannot be ordered is never ignored.
    pub fn supersedes(&self, event: &Invalidation) -> bool {
        match (self.version, event.version) {
            (Some(seen), Some(new)) => seen >= new,
            _ => {
                matches!((self.timestamp, event.timestamp), (Some(seen), Some(new)) if seen >= new)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(version: Option<u64>, timestamp: Option<u64>) -> Invalidation {
        Invalidation {
            record_type: "t".into(),
            key: "k".into(),
            tenant: None,
            version,
            timestamp,
        }
    }

    fn mark(version: Option<u64>, timestamp: Option<u64>) -> Mark {
        Mark {
            version,
            timestamp,
            seq: 1,
        }
    }

    #[test]
    fn older_or_equal_events_are_superseded() {
        assert!(mark(Some(5), None).supersedes(&event(Some(5), None)));
        assert!(mark(Some(5), None).supersedes(&event(Some(4), Some(999))));
        assert!(!mark(Some(5), None).supersedes(&event(Some(6), None)));
        assert!(mark(None, Some(100)).supersedes(&event(None, Some(90))));
        assert!(!mark(None, Some(100)).supersedes(&event(None, Some(101))));
    }

    #[test]
    fn events_that_cannot_be_ordered_always_apply() {
        assert!(!mark(None, None).supersedes(&event(None, None)));
        assert!(!mark(Some(5), None).supersedes(&event(None, Some(1))));
        assert!(!mark(None, Some(5)).supersedes(&event(Some(1), None)));
    }
}
