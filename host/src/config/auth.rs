//! The settings of `[auth]`: how callers' tokens are checked. Plain data;
//! the checking is `crate::auth`'s.

use std::path::PathBuf;
use std::time::Duration;

/// How tokens are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// This service's audience: tokens must name it in `aud`.
    pub audience: String,
    /// Where issuers' public keys are found, and how they are kept.
    pub keys: KeySettings,
    /// How far clocks may disagree (applied to `exp`, `nbf` and `iat`).
    pub clock_skew: Duration,
    /// Whether reads are replay-protected too (mutating calls always are).
    pub replay_protect_reads: bool,
    /// The most token ids remembered for replay protection.
    pub replay_entries: u64,
    /// The most verified tokens remembered.
    pub verified_entries: u64,
}

/// How keys are looked up and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySettings {
    /// The repositories, primary first.
    pub repositories: Vec<Repository>,
    /// The most keys kept at once.
    pub max_entries: u64,
    /// How long a key is kept when its repository says nothing (and the most it may say).
    pub max_age: Duration,
    /// How long "no repository has this key" is remembered.
    pub missing_for: Duration,
    /// The longest one HTTP fetch may take.
    pub fetch_timeout: Duration,
    /// The most lookups in the repositories at once.
    pub fetch_concurrency: u32,
    /// The most lookups per second for one issuer's keys.
    pub fetches_per_s: u32,
}

/// Where keys are looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repository {
    /// A folder: the key of `kid` is the file `{dir}/{kid}`.
    Folder(PathBuf),
    /// An HTTP(S) base URL: the key of `kid` is `GET {base}/{kid}`.
    Http(url::Url),
}
