//! The `droid` command: parses flags, sets up logging, and hands each
//! subcommand to its module under `cli/`. Errors end here, printed for a
//! person.

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

mod cli;

/// mimalloc rather than the system allocator: the request path allocates small,
/// short-lived buffers on every core, which it serves without lock contention.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "droid",
    version,
    about = "Serves entity records through sandboxed WebAssembly plugins"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API.
    Serve(cli::serve::Args),
    /// Serve droid's read API next to consumers, from memory: read through
    /// to an upstream droid and follow its change feed.
    Sidecar(cli::sidecar::Args),
    /// Validate a configuration file and load every plugin it names.
    CheckConfig(cli::check_config::Args),
    /// Work with plugin files, and with the plugins of a running droid.
    #[command(subcommand, alias = "plugin")]
    Plugins(cli::plugins::Command),
    /// Events a running droid could not ingest: list, inspect and replay them.
    #[command(subcommand)]
    DeadLetters(cli::dead_letters::Command),
    /// What a failed read's error id stands for, from a running droid: the
    /// plugin's message, panic text or error chain its consumers never see.
    Errors(cli::errors::Args),
    /// A running droid's ingestion sources and their failure states.
    Sources(cli::sources::Args),
    /// Realms and tenants of a running droid: where each tenant lives,
    /// pinning, and realm migrations.
    #[command(subcommand, alias = "tenant")]
    Tenants(cli::tenants::Command),
    /// Restore chosen tenants of a running droid to an instant, from its
    /// backups and change log (`--dry-run`: only say what would change).
    Restore(cli::recovery::RestoreArgs),
    /// A running droid's restores: list, show, undo.
    #[command(subcommand, alias = "restore-points")]
    Restores(cli::recovery::Restores),
    /// A running droid's backups (status, verify), and master key files (keygen).
    #[command(subcommand, alias = "backup")]
    Backups(cli::recovery::Backups),
    /// Erasing tenants with maker-checker: propose, approve, list, show.
    #[command(subcommand, alias = "erasure")]
    Erasures(cli::recovery::Erasures),
    /// A running droid's audit log of destructive and recovery operations.
    Audit(cli::recovery::AuditArgs),
    /// Make a key pair for signing service tokens: the public key into a key
    /// repository folder at its kid, the private key into a file.
    Keygen(cli::keygen::Args),
    /// Sign a service token with a private key (from `droid keygen`), for
    /// curl and friends: `Authorization: Bearer $(droid token ...)`.
    Token(cli::token::Args),
    /// Load an ingested record type's history from its provider's bootstrap
    /// endpoint into a running droid; resumes where an interrupted run stopped.
    Backfill(cli::backfill::Options),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Kept to the end: dropping it writes out what is still buffered.
    let _log = init_logging(cli.log_format);
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr through a writer thread: a request never waits on the
/// terminal or a slow log collector. When the writer falls behind by more
/// than its buffer of lines, new lines are dropped (and counted by
/// tracing-appender) rather than blocking whoever logs.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_env("DROID_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    guard
}

/// Log lines that may wait for the writer thread.
const LOG_BUFFER_LINES: usize = 16_384;

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Sidecar(args) => cli::sidecar::run(args),
        Command::CheckConfig(args) => cli::check_config::run(args),
        Command::Plugins(command) => cli::plugins::run(command),
        Command::DeadLetters(command) => cli::dead_letters::run(command),
        Command::Errors(args) => cli::errors::run(args),
        Command::Sources(args) => cli::sources::run(args),
        Command::Tenants(command) => cli::tenants::run(command),
        Command::Restore(args) => cli::recovery::restore(args),
        Command::Restores(command) => cli::recovery::restores(command),
        Command::Backups(command) => cli::recovery::backups(command),
        Command::Erasures(command) => cli::recovery::erasures(command),
        Command::Audit(args) => cli::recovery::audit(args),
        Command::Keygen(args) => cli::keygen::run(args),
        Command::Token(args) => cli::token::run(args),
        Command::Backfill(options) => cli::backfill::run(options),
    }
}
