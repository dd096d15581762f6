//! How the commands that talk to a running droid prove who they are.
//!
//! Mutating calls are replay-protected, so a token can be sent once: a
//! command that makes several calls (a backfill, a replay after a list) signs
//! a fresh short-lived token for each from a private key (`--key`, with
//! `--audience`). A ready-made token (`--token`) suits a single call.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use droid_host::auth::mint::{TokenRequest, mint};

/// How long each token a command signs lives: long enough for one request.
const PER_REQUEST_LIFETIME: Duration = Duration::from_secs(120);

/// Credentials flags shared by the commands that call a running droid.
#[derive(Debug, Clone, clap::Args)]
pub struct CredentialArgs {
    /// A bearer token for droid (one call: droid refuses a reused token on
    /// mutating calls).
    #[arg(
        long,
        env = "DROID_TOKEN",
        hide_env_values = true,
        conflicts_with = "key"
    )]
    pub token: Option<String>,
    /// A private key (from `droid keygen`) to sign a fresh token for every call.
    #[arg(long, env = "DROID_KEY")]
    pub key: Option<PathBuf>,
    /// The audience of the signed tokens (droid's `auth.audience`).
    #[arg(long, env = "DROID_AUDIENCE", default_value = "droid")]
    pub audience: String,
}

impl CredentialArgs {
    /// The `Authorization` value for the next call, if any credentials were given.
    pub fn authorization(&self) -> anyhow::Result<Option<String>> {
        if let Some(token) = &self.token {
            return Ok(Some(format!("Bearer {token}")));
        }
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let token = mint(
            key,
            &TokenRequest::new(&self.audience, PER_REQUEST_LIFETIME),
        )
        .with_context(|| format!("cannot sign a token with {}", key.display()))?;
        Ok(Some(format!("Bearer {token}")))
    }
}
