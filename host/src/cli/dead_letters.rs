//! `droid dead-letters list|replay`: events a running droid could not ingest.

use droid_host::api::answers::{DeadLetterList, Replayed};
use serde_json::json;

use super::ServerArgs;

/// The `droid dead-letters` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List dead letters (with their reasons), of one source or all.
    List {
        /// Only this source's.
        #[arg(long)]
        source: Option<String>,
        /// Print the admin API's JSON, payloads included.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run a source's dead letters through the current transformer again.
    Replay {
        /// The source.
        source: String,
        /// Only these event ids (repeatable); all of the source's otherwise.
        #[arg(long = "id")]
        ids: Vec<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Runs `command` against the droid it names.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List {
            source,
            json,
            server,
        } => {
            let path = match &source {
                Some(s) => format!("/v1/admin/dead-letters?source={s}"),
                None => "/v1/admin/dead-letters".to_owned(),
            };
            let list: DeadLetterList = server.connect()?.get(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.dead_letters.is_empty() {
                println!("no dead letters");
            }
            for l in list.dead_letters {
                println!(
                    "{}/{} (tenant {}, {} attempt(s), {}): {}",
                    l.source, l.event_id, l.tenant, l.attempts, l.plugin_version, l.reason
                );
            }
            Ok(())
        }
        Command::Replay {
            source,
            ids,
            server,
        } => {
            let body = if ids.is_empty() {
                json!({})
            } else {
                json!({ "ids": ids })
            };
            let done: Replayed = server
                .connect()?
                .post(&format!("/v1/admin/dead-letters/{source}/replay"), body)?;
            println!(
                "{source}: {} replayed, {} still failing",
                done.replayed, done.still_failing
            );
            Ok(())
        }
    }
}
