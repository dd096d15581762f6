//! Recent failures' details, by error id. An answer names the id of a failed
//! fetch but never its detail (a provider's panic text, file names, URLs and
//! error chains are for its operators, not its consumers); the detail goes to
//! the log under that id and stays here, bounded in bytes, for the admin API
//! (`GET /v1/admin/errors/{id}`, `droid errors ID`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::FetchError;

/// The id of one logged failure: 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorId(u64);

impl ErrorId {
    fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self(
            getrandom::u64()
                .unwrap_or_else(|_| NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
        )
    }

    /// The id written as 16 hex digits, or `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 16)
            .then(|| u64::from_str_radix(text, 16).ok())
            .flatten()
            .map(Self)
    }
}

impl std::fmt::Display for ErrorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Where a failure happened, for its record.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The record type whose fetch failed.
    pub record_type: &'a str,
    /// The key asked for.
    pub key: &'a str,
    /// The tenant asked for.
    pub tenant: &'a str,
    /// The plugin version that failed, if one ran.
    pub plugin_version: Option<&'a str>,
}

/// One failure as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logged {
    /// Its id, as the answer named it.
    pub id: String,
    /// The record type whose fetch failed.
    pub record_type: String,
    /// The key asked for.
    pub key: String,
    /// The tenant asked for.
    pub tenant: String,
    /// The plugin version that failed, if one ran.
    pub plugin_version: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The whole detail: the plugin's message, panic text or error chain.
    pub detail: String,
}

/// What an entry costs beyond its strings: the entry, its `Arc` and moka's
/// bookkeeping.
const ENTRY_OVERHEAD: u32 = 192;

/// The journal: recent failures, at most a number of bytes of them.
#[derive(Debug, Clone)]
pub struct Journal {
    /// `None` when it keeps nothing (a capacity of 0): failures are logged only.
    entries: Option<moka::sync::Cache<ErrorId, Arc<Logged>>>,
}

impl Journal {
    /// A journal of at most `capacity_bytes` (`server.error_journal_bytes`);
    /// 0 keeps nothing.
    pub fn new(capacity_bytes: u64) -> Self {
        let entries = (capacity_bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(capacity_bytes)
                .weigher(|_: &ErrorId, logged: &Arc<Logged>| {
                    let strings = logged.record_type.len()
                        + logged.key.len()
                        + logged.tenant.len()
                        + logged.plugin_version.as_ref().map_or(0, String::len)
                        + logged.detail.len();
                    u32::try_from(strings)
                        .unwrap_or(u32::MAX)
                        .saturating_add(ENTRY_OVERHEAD)
                })
                .build()
        });
        Self { entries }
    }

    /// Logs `error` with its detail under a new id, keeps it, and returns the
    /// id answers name.
    pub fn record(&self, error: &FetchError, at: Context<'_>) -> ErrorId {
        let id = ErrorId::new();
        tracing::info!(
            target: "droid::fetch",
            error_id = %id,
            record_type = at.record_type,
            plugin_version = at.plugin_version.unwrap_or("-"),
            detail = %error,
            "a read-through fetch failed"
        );
        if let Some(entries) = &self.entries {
            let logged = Logged {
                id: id.to_string(),
                record_type: at.record_type.to_owned(),
                key: at.key.to_owned(),
                tenant: at.tenant.to_owned(),
                plugin_version: at.plugin_version.map(str::to_owned),
                at_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                detail: error.to_string(),
            };
            entries.insert(id, Arc::new(logged));
        }
        id
    }

    /// The failure logged under `id`, while the journal still holds it.
    pub fn get(&self, id: ErrorId) -> Option<Arc<Logged>> {
        self.entries.as_ref()?.get(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::CallError;

    fn context() -> Context<'static> {
        Context {
            record_type: "site",
            key: "k",
            tenant: "acme",
            plugin_version: Some("1.0.0+abc"),
        }
    }

    fn panic(message: &str) -> FetchError {
        FetchError::Call(CallError::Panic {
            message: message.to_owned(),
        })
    }

    #[test]
    fn a_failure_is_found_by_its_id_with_its_detail() {
        let journal = Journal::new(1 << 20);
        let id = journal.record(&panic("src/lib.rs:3: boom"), context());
        let logged = journal.get(id).expect("kept");
        assert_eq!(logged.id, id.to_string());
        assert!(logged.detail.contains("src/lib.rs:3: boom"), "{logged:?}");
        assert_eq!(
            (logged.record_type.as_str(), logged.key.as_str()),
            ("site", "k")
        );
        assert_eq!(ErrorId::parse(&id.to_string()), Some(id));
        assert_eq!(ErrorId::parse("xyz"), None);
        assert_eq!(ErrorId::parse("00000000000000000"), None);
    }

    #[test]
    fn the_journal_stays_within_its_bytes_and_can_be_off() {
        let journal = Journal::new(64 << 10);
        let ids: Vec<_> = (0..200)
            .map(|_| journal.record(&panic(&"x".repeat(4096)), context()))
            .collect();
        journal.entries.as_ref().unwrap().run_pending_tasks();
        let kept = ids.iter().filter(|id| journal.get(**id).is_some()).count();
        assert!(
            (1..=16).contains(&kept),
            "{kept} entries of 4 KiB in 64 KiB"
        );
        let off = Journal::new(0);
        let id = off.record(&panic("boom"), context());
        assert!(off.get(id).is_none());
    }
}
