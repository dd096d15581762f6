//! `droid sidecar`: droid's read API next to consumers, from memory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use droid_host::sidecar::Sidecar;
use droid_host::sidecar::config::{Overrides, SidecarConfig};

/// Flags of `droid sidecar`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The sidecar's configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// The upstream droid's base URL, over the file's `upstream.url`; several
    /// nodes of one fleet separated by commas.
    #[arg(long)]
    upstream: Option<String>,
    /// The realm to follow, over the file's `upstream.realm`.
    #[arg(long)]
    realm: Option<String>,
    /// Listen here instead of the file's `listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The private key (from `droid keygen`) to sign tokens with, over the
    /// file's `upstream.key_file`.
    #[arg(long, env = "DROID_KEY")]
    key: Option<PathBuf>,
    /// The audience of the tokens (the droid's `auth.audience`).
    #[arg(long, env = "DROID_AUDIENCE")]
    audience: Option<String>,
}

/// Loads the file with the flags over it and serves.
pub fn run(args: Args) -> anyhow::Result<()> {
    let path = args.config;
    let overrides = Overrides {
        upstream: args.upstream,
        realm: args.realm,
        key_file: args.key,
        audience: args.audience,
        listen: args.listen,
    };
    let config = SidecarConfig::load(&path, &overrides)?;
    if let Some(key) = &config.upstream.key_file {
        // Fail at start, not at the first read, on a key that cannot sign.
        std::fs::metadata(key)
            .with_context(|| format!("{}: upstream.key_file {}", path.display(), key.display()))?;
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let shutdown = droid_host::server::shutdown_signal();
        let addr = config.listen;
        let sidecar = Arc::new(Sidecar::new(config)?);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(
            address = %listener.local_addr()?,
            upstream = %sidecar.upstream_base(),
            record_types = sidecar.config().record_types.len(),
            "sidecar is serving"
        );
        droid_host::sidecar::run(sidecar, listener, shutdown).await?;
        Ok(())
    })
}
