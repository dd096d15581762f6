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
use tracing_subscriber::EnvFilter;

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
    },
    /// Validate a configuration file and load every plugin it names.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
        /// Check the file only; do not load plugins.
        #[arg(long)]
        skip_plugins: bool,
    },
    /// Work with plugin files.
    #[command(subcommand)]
    Plugin(PluginCommand),
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
}

fn parse_assignment(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, found {text:?}"))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("DROID_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config, listen } => serve(&config, listen),
        Command::CheckConfig { file, skip_plugins } => check_config(&file, skip_plugins),
        Command::Plugin(PluginCommand::Inspect { file }) => inspect(&file),
        Command::Plugin(PluginCommand::Transform {
            file,
            events,
            values,
        }) => transform(&file, &events, values),
    }
}

fn serve(path: &Path, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let mut config = Config::load(path)?;
    if let Some(addr) = listen {
        config.listen = addr;
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let addr = config.listen;
        let app = tokio::task::spawn_blocking(move || App::build(config)).await??;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(address = %listener.local_addr()?, record_types = app.registry.iter().count(), "droid is serving");
        droid_host::server::run(Arc::new(app), listener, droid_host::server::shutdown_signal()).await?;
        Ok(())
    })
}

fn check_config(path: &Path, skip_plugins: bool) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    if !skip_plugins {
        let runtime = Runtime::new(&config.runtime, Some(config.cache_dir.clone()))?;
        droid_host::plugins::Registry::load(&runtime, &config)?;
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
    RuntimeSettings {
        max_instances: 4,
        max_memory_bytes: 256 << 20,
    }
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
        values: values.into_iter().collect(),
    };
    let ctx = Arc::new(PluginContext::new(&config)?);
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
