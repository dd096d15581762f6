//! What a transformer's change must be for droid to keep it, beyond its body
//! (whose limits are the record type's configuration): a key droid accepts,
//! the event's own tenant, and a version droid can keep.

use crate::key::{EntityKey, TenantId};

/// The largest version droid keeps: the largest integer a JSON number holds
/// exactly (2^53 - 1), so every consumer reads it as it was written. A larger
/// one would also outrank every later change for good.
pub const MAX_VERSION: u64 = (1 << 53) - 1;

/// Checks a change to `key` of `tenant`, at `version` if it carries one, made
/// from an event of `event_tenant`; the error says what droid refuses.
pub fn check(
    key: &str,
    tenant: &str,
    version: Option<u64>,
    event_tenant: &str,
) -> Result<(), String> {
    if tenant != event_tenant {
        return Err(format!(
            "a change for tenant {tenant:?} from an event of tenant {event_tenant:?}"
        ));
    }
    TenantId::parse(tenant).map_err(|e| format!("a change for tenant {tenant:?}: it {e}"))?;
    EntityKey::parse(key).map_err(|e| format!("a change with key {key:?}: it {e}"))?;
    if version.is_some_and(|v| v > MAX_VERSION) {
        return Err(format!(
            "a change to key {key:?} has a version above {MAX_VERSION}, the largest droid keeps"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_must_be_of_its_events_tenant_with_a_plain_key_and_a_keepable_version() {
        assert!(check("T-1", "acme", Some(MAX_VERSION), "acme").is_ok());
        assert!(check("T-1", "acme", None, "acme").is_ok());
        let other = check("T-1", "globex", None, "acme").unwrap_err();
        assert!(
            other.contains("from an event of tenant \"acme\""),
            "{other}"
        );
        assert!(check("a/b", "acme", None, "acme").is_err());
        assert!(check("..", "acme", None, "acme").is_err());
        assert!(check("T-1", "acme", Some(MAX_VERSION + 1), "acme").is_err());
    }
}
