//! `droid errors ID`: what a failed read's error id stands for, from a
//! running droid's journal (the plugin's message, panic text or error chain
//! that its consumers are never shown).

use droid_host::api::answers::ErrorDetail;

use super::ServerArgs;

/// Flags of `droid errors`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The error id the answer named (16 hex digits).
    id: String,
    /// Print the admin API's JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Prints the failure.
pub fn run(args: Args) -> anyhow::Result<()> {
    let path = format!("/v1/admin/errors/{}", args.id);
    let detail: ErrorDetail = args.server.connect()?.get(&path)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
        return Ok(());
    }
    let e = detail.error;
    println!("error {} at {} ms", e.id, e.at_ms);
    println!(
        "  {} key {:?} of tenant {:?}, plugin version {}",
        e.record_type,
        e.key,
        e.tenant,
        e.plugin_version.as_deref().unwrap_or("(none)")
    );
    println!("  {}", e.detail);
    Ok(())
}
