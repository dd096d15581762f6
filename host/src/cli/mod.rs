//! One module per `droid` subcommand: its flags (clap) and what it does,
//! printed for a person. The work itself is the library's; commands that talk
//! to a running droid go through [`admin_client`] and print the admin API's
//! typed answers (`droid_host::api::answers`).

pub mod admin_client;
pub mod backfill;
pub mod check_config;
pub mod credentials;
pub mod dead_letters;
pub mod errors;
pub mod keygen;
pub mod plugins;
pub mod recovery;
pub mod serve;
pub mod sidecar;
pub mod sources;
pub mod tenants;
pub mod token;

use admin_client::Server;
use credentials::CredentialArgs;

/// Where a running droid's API is, for the commands that talk to one.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The droid to talk to.
    #[arg(long, env = "DROID_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    #[command(flatten)]
    credentials: CredentialArgs,
}

impl ServerArgs {
    /// A client of that droid.
    pub fn connect(&self) -> anyhow::Result<Server> {
        Server::new(&self.server, self.credentials.clone())
    }
}

/// Prints `value` as the API's JSON, indented.
fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `text` as one path segment or query value.
fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
