//! `droid keygen`: a key pair for signing service tokens.

use std::path::PathBuf;

/// Flags of `droid keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The issuer the key belongs to (the first segment of its kid).
    #[arg(long)]
    issuer: String,
    /// The key's id below the issuer [default: random].
    #[arg(long)]
    key_id: Option<String>,
    /// The key repository folder (droid's `auth.key_repositories`).
    #[arg(long)]
    repository: PathBuf,
    /// Where the private key goes (its kid is written beside it, FILE.kid).
    #[arg(long)]
    private_key: PathBuf,
}

/// Writes the public key into the repository and the private key to its file.
pub fn run(args: Args) -> anyhow::Result<()> {
    let pair = droid_host::auth::mint::keygen(
        &args.repository,
        &args.issuer,
        args.key_id.as_deref(),
        &args.private_key,
    )?;
    println!(
        "kid:         {}\npublic key:  {} (in the key repository)\nprivate key: {} (keep it with the issuer)",
        pair.kid,
        pair.public.display(),
        pair.private.display()
    );
    Ok(())
}
