//! `droid sources`: a running droid's ingestion sources and their states.

use droid_host::api::answers::SourceList;

use super::ServerArgs;

/// Flags of `droid sources`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
}

/// Prints one line per source.
pub fn run(args: Args) -> anyhow::Result<()> {
    let list: SourceList = args.server.connect()?.get("/v1/admin/sources")?;
    for s in list.sources {
        println!(
            "{:<20} {:<9} {} failures in {} s (warning above {}, incident above {})",
            s.source,
            s.state.as_str(),
            s.failures,
            s.window_s,
            s.warn_above,
            s.page_above
        );
    }
    Ok(())
}
