//! `droid serve`: the API, until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use droid_host::app::App;
use droid_host::config::Config;

/// Flags of `droid serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Listen here instead of the configured `server.listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Check no credentials at all: anyone who can reach droid may do
    /// anything. For local play only; every response carries a warning.
    #[arg(long)]
    insecure_no_auth: bool,
}

/// Builds the app from the file and serves it.
pub fn run(args: Args) -> anyhow::Result<()> {
    let mut config = Config::load(&args.config)?;
    if let Some(addr) = args.listen {
        config.listen = addr;
    }
    config.insecure_no_auth = args.insecure_no_auth;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Before anything listens: a SIGTERM from then on stops droid gracefully.
        let shutdown = droid_host::server::shutdown_signal();
        let addr = config.listen;
        let app = tokio::task::spawn_blocking(move || App::build(config)).await??;
        app.start_streams().await?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(address = %listener.local_addr()?, record_types = app.service.registry().len(), "droid is serving");
        droid_host::server::run(Arc::new(app), listener, shutdown).await?;
        Ok(())
    })
}
