//! `droid token`: a signed service token, for curl and friends.

use std::path::PathBuf;
use std::time::Duration;

use droid_host::auth::mint::{TokenRequest, mint};

/// Flags of `droid token`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The private key.
    #[arg(long)]
    key: PathBuf,
    /// The audience (droid's `auth.audience`); repeatable.
    #[arg(long, required = true)]
    audience: Vec<String>,
    /// The issuer [default: the first segment of the kid].
    #[arg(long)]
    issuer: Option<String>,
    /// The key id [default: read from KEY.kid].
    #[arg(long)]
    kid: Option<String>,
    /// The subject [default: the issuer].
    #[arg(long)]
    subject: Option<String>,
    /// Lifetime in seconds (droid accepts at most 3600).
    #[arg(long, default_value_t = 300)]
    lifetime_s: u64,
}

/// Prints the token.
pub fn run(args: Args) -> anyhow::Result<()> {
    let token = mint(
        &args.key,
        &TokenRequest {
            kid: args.kid,
            issuer: args.issuer,
            audience: args.audience,
            subject: args.subject,
            lifetime: Duration::from_secs(args.lifetime_s),
        },
    )?;
    println!("{token}");
    Ok(())
}
