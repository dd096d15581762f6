//! The `droid` command: parses flags, sets up logging, and hands over to the
//! library. Errors end here, printed for a person.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use droid_host::app::App;
use droid_host::config::{
    Config, IngestedConfig, Mode, PluginLimits, RecordTypeConfig, RuntimeSettings,
};
use droid_host::entity::{EntityOp, SourceEvent};
use droid_host::runtime::{LoadedPlugin, PluginContext, Runtime, WorldKind};
use droid_host::sidecar::Sidecar;
use droid_host::sidecar::config::{Overrides as SidecarOverrides, SidecarConfig};
use serde_json::json;
use tracing_subscriber::EnvFilter;

mod cli {
    pub mod admin_client;
    pub mod backfill;
    pub mod credentials;
}
use cli::admin_client::{Server, print_plugins};
use cli::credentials::CredentialArgs;

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
    Serve {
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
    },
    /// Serve droid's read API next to consumers, from memory: read through
    /// to an upstream droid and follow its change feed.
    Sidecar {
        /// The sidecar's configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The upstream droid's base URL, over the file's `upstream.url`.
        #[arg(long)]
        upstream: Option<String>,
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
    },
    /// Validate a configuration file and load every plugin it names.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
        /// Check the file only; do not load plugins.
        #[arg(long)]
        skip_plugins: bool,
    },
    /// Work with plugin files, and with the plugins of a running droid.
    #[command(subcommand, alias = "plugin")]
    Plugins(PluginCommand),
    /// Events a running droid could not ingest: list, inspect and replay them.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// A running droid's ingestion sources and their failure states.
    Sources {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Make a key pair for signing service tokens: the public key into a key
    /// repository folder at its kid, the private key into a file.
    Keygen {
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
    },
    /// Sign a service token with a private key (from `droid keygen`), for
    /// curl and friends: `Authorization: Bearer $(droid token ...)`.
    Token {
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
    },
    /// Load an ingested record type's history from its provider's bootstrap
    /// endpoint into a running droid; resumes where an interrupted run stopped.
    Backfill(BackfillArgs),
}

#[derive(Debug, clap::Args)]
struct BackfillArgs {
    /// The ingested record type.
    record_type: String,
    /// The configuration file (sources, bootstrap endpoints, the store's folder).
    #[arg(long, short)]
    config: PathBuf,
    /// The source to post as, when several feed the record type.
    #[arg(long)]
    source: Option<String>,
    /// The running droid [default: from server.listen].
    #[arg(long, env = "DROID_SERVER")]
    server: Option<String>,
    /// The bootstrap endpoint [default: the source's bootstrap_url].
    #[arg(long)]
    from: Option<url::Url>,
    /// A header for the bootstrap endpoint, as "Name: value"; repeatable.
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Events asked for per page.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    page_size: u32,
    /// Events per second [default: the source's rate_limit, else unlimited].
    #[arg(long)]
    rate: Option<std::num::NonZeroU32>,
    /// The file the cursor is kept in [default: backfill/SOURCE.json beside the store].
    #[arg(long)]
    state: Option<PathBuf>,
    /// Start from the first page, ignoring a saved cursor.
    #[arg(long)]
    restart: bool,
    /// Tries per request before giving up (failures that may pass: refused
    /// connections, timeouts, 5xx).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    attempts: u32,
    /// How to authenticate to droid (a publisher of the source); `--key` signs
    /// a fresh token for every post.
    #[command(flatten)]
    credentials: CredentialArgs,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    text.split_once(':')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected \"Name: value\", found {text:?}"))
}

#[derive(Debug, Subcommand)]
enum DeadLetterCommand {
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

/// Where a running droid's API is, for the commands that talk to one.
#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// The droid to talk to.
    #[arg(long, env = "DROID_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    #[command(flatten)]
    credentials: CredentialArgs,
}

impl ServerArgs {
    fn connect(&self) -> anyhow::Result<Server> {
        Server::new(&self.server, self.credentials.clone())
    }
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Show a plugin's world, version, exports and imports, and whether this host accepts it.
    Inspect {
        /// The `.wasm` component.
        file: PathBuf,
    },
    /// Run a transformer over events (one JSON object per line) and print the changes it asks for.
    Transform {
        /// The transformer `.wasm` component.
        file: PathBuf,
        /// Events as JSON lines (`-` for stdin).
        #[arg(long, default_value = "-")]
        events: PathBuf,
        /// A config value for the plugin, as NAME=VALUE; repeatable.
        #[arg(long = "set", value_parser = parse_assignment)]
        values: Vec<(String, String)>,
    },
    /// List a running droid's plugins: versions, states, shares, calls, rollbacks, failed files.
    List {
        #[command(flatten)]
        server: ServerArgs,
        /// Print the admin API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Roll a version out to a share of tenants (100% promotes it).
    Rollout {
        /// The plugin.
        name: String,
        /// The version: its label, declared version or a hash prefix (8+ hex digits).
        version: String,
        /// The share of tenants, such as 5% or 0.5%.
        #[arg(long)]
        share: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Promote the version rolling out to every tenant.
    Promote {
        /// The plugin.
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Take back the version rolling out (or the current one, for the one it replaced).
    Rollback {
        /// The plugin.
        name: String,
        /// Why, for the record.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Sign a plugin file with an ed25519 private key, writing FILE.sig.
    Sign {
        /// The private key (PKCS#8 PEM, from `droid plugins keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The `.wasm` file.
        file: PathBuf,
    },
    /// Make an ed25519 key pair for signing plugins: PREFIX.key and PREFIX.pub.
    Keygen {
        /// Path prefix of the two files.
        prefix: PathBuf,
    },
}

fn parse_assignment(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, found {text:?}"))
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
        Command::Serve {
            config,
            listen,
            insecure_no_auth,
        } => serve(&config, listen, insecure_no_auth),
        Command::Sidecar {
            config,
            upstream,
            listen,
            key,
            audience,
        } => sidecar(
            &config,
            &SidecarOverrides {
                upstream,
                key_file: key,
                audience,
                listen,
            },
        ),
        Command::CheckConfig { file, skip_plugins } => check_config(&file, skip_plugins),
        Command::Plugins(command) => plugins(command),
        Command::DeadLetters(command) => dead_letters(command),
        Command::Keygen {
            issuer,
            key_id,
            repository,
            private_key,
        } => {
            let pair = droid_host::auth::mint::keygen(
                &repository,
                &issuer,
                key_id.as_deref(),
                &private_key,
            )?;
            println!(
                "kid:         {}\npublic key:  {} (in the key repository)\nprivate key: {} (keep it with the issuer)",
                pair.kid,
                pair.public.display(),
                pair.private.display()
            );
            Ok(())
        }
        Command::Token {
            key,
            audience,
            issuer,
            kid,
            subject,
            lifetime_s,
        } => {
            let token = droid_host::auth::mint::mint(
                &key,
                &droid_host::auth::mint::TokenRequest {
                    kid,
                    issuer,
                    audience,
                    subject,
                    lifetime: std::time::Duration::from_secs(lifetime_s),
                },
            )?;
            println!("{token}");
            Ok(())
        }
        Command::Backfill(args) => cli::backfill::run(cli::backfill::Options {
            config: args.config,
            record_type: args.record_type,
            source: args.source,
            server: args.server,
            from: args.from,
            headers: args.headers,
            page_size: args.page_size as usize,
            rate: args.rate,
            state: args.state,
            restart: args.restart,
            attempts: args.attempts,
            credentials: args.credentials,
        }),
        Command::Sources { server } => {
            let answer = server.connect()?.get("/v1/admin/sources")?;
            for s in answer["sources"].as_array().into_iter().flatten() {
                println!(
                    "{:<20} {:<9} {} failures in {} s (warning above {}, incident above {})",
                    s["source"].as_str().unwrap_or("?"),
                    s["state"].as_str().unwrap_or("?"),
                    s["failures"],
                    s["window_s"],
                    s["warn_above"],
                    s["page_above"]
                );
            }
            Ok(())
        }
    }
}

fn dead_letters(command: DeadLetterCommand) -> anyhow::Result<()> {
    match command {
        DeadLetterCommand::List {
            source,
            json,
            server,
        } => {
            let path = match &source {
                Some(s) => format!("/v1/admin/dead-letters?source={s}"),
                None => "/v1/admin/dead-letters".to_owned(),
            };
            let answer = server.connect()?.get(&path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
                return Ok(());
            }
            let letters = answer["dead_letters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if letters.is_empty() {
                println!("no dead letters");
            }
            for l in letters {
                println!(
                    "{}/{} (tenant {}, {} attempt(s), {}): {}",
                    l["source"].as_str().unwrap_or("?"),
                    l["event_id"].as_str().unwrap_or("?"),
                    l["tenant"].as_str().unwrap_or("?"),
                    l["attempts"],
                    l["plugin_version"].as_str().unwrap_or("?"),
                    l["reason"].as_str().unwrap_or("?")
                );
            }
            Ok(())
        }
        DeadLetterCommand::Replay {
            source,
            ids,
            server,
        } => {
            let body = if ids.is_empty() {
                json!({})
            } else {
                json!({ "ids": ids })
            };
            let answer = server
                .connect()?
                .post(&format!("/v1/admin/dead-letters/{source}/replay"), body)?;
            println!(
                "{source}: {} replayed, {} still failing",
                answer["replayed"], answer["still_failing"]
            );
            Ok(())
        }
    }
}

fn plugins(command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Inspect { file } => inspect(&file),
        PluginCommand::Transform {
            file,
            events,
            values,
        } => transform(&file, &events, values),
        PluginCommand::List { server, json } => {
            let list = server.connect()?.get("/v1/admin/plugins")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_plugins(&list);
            }
            Ok(())
        }
        PluginCommand::Rollout {
            name,
            version,
            share,
            server,
        } => {
            let answer = server.connect()?.post(
                &format!("/v1/admin/plugins/{name}/rollout"),
                json!({ "version": version, "share": share }),
            )?;
            println!(
                "{name}: {} now serves {} of tenants",
                answer["version"].as_str().unwrap_or("?"),
                answer["share"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        PluginCommand::Promote { name, server } => {
            let answer = server
                .connect()?
                .post(&format!("/v1/admin/plugins/{name}/promote"), json!({}))?;
            println!(
                "{name}: {} now serves every tenant",
                answer["version"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        PluginCommand::Rollback {
            name,
            reason,
            server,
        } => {
            let answer = server.connect()?.post(
                &format!("/v1/admin/plugins/{name}/rollback"),
                json!({ "reason": reason }),
            )?;
            let record = &answer["rollback"];
            println!(
                "{name}: {} rolled back; {} serves",
                record["version"].as_str().unwrap_or("?"),
                record["serving"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        PluginCommand::Sign { key, file } => {
            let sig = droid_host::plugins::trust::sign(&key, &file)?;
            println!("{}", sig.display());
            Ok(())
        }
        PluginCommand::Keygen { prefix } => {
            let (private, public) = droid_host::plugins::trust::keygen(&prefix)?;
            println!(
                "private key: {} (keep it with the provider)\npublic key:  {} (list it in plugins.trusted_keys)",
                private.display(),
                public.display()
            );
            Ok(())
        }
    }
}

fn serve(path: &Path, listen: Option<SocketAddr>, insecure_no_auth: bool) -> anyhow::Result<()> {
    let mut config = Config::load(path)?;
    if let Some(addr) = listen {
        config.listen = addr;
    }
    config.insecure_no_auth = insecure_no_auth;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Before anything listens: a SIGTERM from then on stops droid gracefully.
        let shutdown = droid_host::server::shutdown_signal();
        let addr = config.listen;
        let app = tokio::task::spawn_blocking(move || App::build(config)).await??;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(address = %listener.local_addr()?, record_types = app.service.registry().len(), "droid is serving");
        droid_host::server::run(Arc::new(app), listener, shutdown).await?;
        Ok(())
    })
}

fn sidecar(path: &Path, overrides: &SidecarOverrides) -> anyhow::Result<()> {
    let config = SidecarConfig::load(path, overrides)?;
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
            upstream = %sidecar.config().upstream.url,
            record_types = sidecar.config().record_types.len(),
            "sidecar is serving"
        );
        droid_host::sidecar::run(sidecar, listener, shutdown).await?;
        Ok(())
    })
}

fn check_config(path: &Path, skip_plugins: bool) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    if !skip_plugins {
        App::load_plugins(&config)?;
    }
    println!(
        "{}: ok ({} record type(s){})",
        path.display(),
        config.record_types.len(),
        if skip_plugins {
            "; plugins not loaded"
        } else {
            ", every plugin loads"
        }
    );
    Ok(())
}

/// Settings for one-off commands: a small pool, no artifact cache.
fn tool_settings() -> RuntimeSettings {
    RuntimeSettings::sized(4, 256 << 20)
}

fn inspect(path: &Path) -> anyhow::Result<()> {
    let runtime = Runtime::new(&tool_settings(), None)?;
    let inspection = runtime.inspect(path)?;
    print!("{inspection}");
    if inspection.verdict.is_err() {
        bail!("this host does not accept {}", path.display());
    }
    Ok(())
}

fn transform(path: &Path, events_path: &Path, values: Vec<(String, String)>) -> anyhow::Result<()> {
    let events = read_events(events_path)?;
    let runtime = Runtime::new(&tool_settings(), None)?;
    let LoadedPlugin::Transformer(plugin) =
        runtime.load(path, WorldKind::Transformer, "(command line)")?
    else {
        bail!("{} is not a transformer", path.display());
    };
    let config = RecordTypeConfig {
        name: "cli".to_owned(),
        mode: Mode::Ingested(IngestedConfig {
            transformer: path.display().to_string(),
        }),
        limits: PluginLimits::default(),
        max_in_flight: 16,
        values: values.into_iter().collect(),
        readers: Vec::new(),
        invalidators: Vec::new(),
        sensitive_fields: Vec::new(),
        seal_key: None,
    };
    let ctx = Arc::new(PluginContext::new(&config, None)?);
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let tokio = tokio::runtime::Runtime::new()?;
    let results = tokio.block_on(plugin.transform(&ctx, events))?;
    for (id, result) in ids.iter().zip(results) {
        let line = match result {
            Ok(ops) => {
                serde_json::json!({ "event": id, "ops": ops.iter().map(op_json).collect::<Vec<_>>() })
            }
            Err(e) => serde_json::json!({ "event": id, "error": e.to_string() }),
        };
        println!("{line}");
    }
    Ok(())
}

/// An op as JSON, with the record body shown as the JSON it is rather than as text.
fn op_json(op: &EntityOp) -> serde_json::Value {
    let mut value = serde_json::to_value(op).unwrap_or_default();
    if let EntityOp::Upsert(entity) = op
        && let Ok(body) = serde_json::from_str::<serde_json::Value>(&entity.body)
    {
        value["body"] = body;
    }
    value
}

fn read_events(path: &Path) -> anyhow::Result<Vec<SourceEvent>> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        ))
    };
    let mut events = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line)
            .with_context(|| format!("{}: line {}: not a source event", path.display(), n + 1))?;
        events.push(event);
    }
    Ok(events)
}
