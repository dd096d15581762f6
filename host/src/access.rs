//! Who may read and who may invalidate, per record type.
//!
//! Every handler asks the [`AccessPolicy`] before acting, with the [`Caller`] it
//! extracted from the request. Until service authentication lands (signed tokens,
//! per-record-type lists of allowed issuers), every caller is anonymous and the
//! only policy is [`Unauthenticated`], which allows everything and says so loudly
//! at start-up. Tightening access then means a new policy, not new handlers.

use std::fmt::Debug;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials were checked.
    Anonymous,
}

/// Decides what a caller may do.
pub trait AccessPolicy: Send + Sync + Debug {
    /// Whether `caller` may read records of `record_type`.
    fn may_read(&self, caller: &Caller, record_type: &str) -> bool;
    /// Whether `caller` may invalidate cached records of `record_type`.
    fn may_invalidate(&self, caller: &Caller, record_type: &str) -> bool;
    /// Whether `caller` may use the admin endpoints (plugins, rollouts, reloads).
    fn may_administer(&self, caller: &Caller) -> bool;
}

/// The development policy: no authentication, everything allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unauthenticated;

impl AccessPolicy for Unauthenticated {
    fn may_read(&self, _caller: &Caller, _record_type: &str) -> bool {
        true
    }

    fn may_invalidate(&self, _caller: &Caller, _record_type: &str) -> bool {
        true
    }

    fn may_administer(&self, _caller: &Caller) -> bool {
        true
    }
}
