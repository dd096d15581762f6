//! `droid check-config FILE`: validates a configuration and loads every
//! plugin it names, through the same library path as `droid serve`.

use std::path::PathBuf;

use droid_host::app::App;
use droid_host::config::Config;

/// Flags of `droid check-config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration file.
    file: PathBuf,
    /// Check the file only; do not load plugins.
    #[arg(long)]
    skip_plugins: bool,
}

/// Checks the file, then its plugins unless told not to.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load(&args.file)?;
    if !args.skip_plugins {
        App::load_plugins(&config)?;
    }
    println!(
        "{}: ok ({} record type(s){})",
        args.file.display(),
        config.record_types.len(),
        if args.skip_plugins {
            "; plugins not loaded"
        } else {
            ", every plugin loads"
        }
    );
    Ok(())
}
