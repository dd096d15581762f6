//! `droid plugins ...`: plugin files on this machine (`inspect`, `transform`,
//! `sign`, `keygen`), and the plugins of a running droid and its fleet
//! (`list`, `push`, `fleet`, `rollout`, `promote`, `rollback`).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use droid_host::api::answers::{FleetAnswer, PluginList, Pushed, RollbackDone, Serving};
use droid_host::config::{RecordTypeConfig, RuntimeSettings};
use droid_host::entity::{EntityOp, SourceEvent};
use droid_host::runtime::{LoadedPlugin, PluginContext, Runtime, WorldKind};
use serde_json::json;

use super::ServerArgs;

/// The `droid plugins` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
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
    /// Push a plugin file to a running droid, and through its store to every node of its fleet.
    Push {
        /// The `.wasm` component, named NAME.wasm or NAME@VERSION.wasm.
        file: PathBuf,
        /// Its signature (default: FILE.sig, when it exists).
        #[arg(long)]
        sig: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show a running droid's fleet: each node's versions and what they serve, and the pushed files.
    Fleet {
        #[command(flatten)]
        server: ServerArgs,
        /// Print the admin API's JSON instead of a table.
        #[arg(long)]
        json: bool,
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

/// `droid plugins push`.
fn push(file: &Path, sig: Option<&Path>, server: &ServerArgs) -> anyhow::Result<()> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no file name", file.display()))?;
    let wasm = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let default_sig = PathBuf::from(format!("{}.sig", file.display()));
    let sig = match sig {
        Some(path) => Some(path.to_path_buf()),
        None => default_sig.exists().then_some(default_sig),
    };
    let mut headers = Vec::new();
    if let Some(path) = &sig {
        use base64::Engine;
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        headers.push((
            "droid-plugin-signature",
            base64::engine::general_purpose::STANDARD.encode(bytes),
        ));
    }
    let pushed: Pushed = server.connect()?.post_bytes(
        &format!("/v1/admin/plugins/files/{name}"),
        "application/wasm",
        &headers,
        wasm,
    )?;
    let reach = if pushed.shared {
        "every node of the fleet loads it"
    } else {
        "this droid is alone (its store is not shared)"
    };
    match (&pushed.version, &pushed.serving) {
        (Some(version), Some(serving)) => {
            println!("{}: loaded as {version}, {serving}; {reach}", pushed.file);
        }
        _ => println!(
            "{}: kept ({}), not in use: no record type names the plugin yet; {reach}",
            pushed.file, pushed.outcome
        ),
    }
    Ok(())
}

/// `droid plugins fleet`.
fn fleet(server: &ServerArgs, json: bool) -> anyhow::Result<()> {
    let answer: FleetAnswer = server.connect()?.get("/v1/admin/fleet")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let now = droid_host::store::now_ms();
    for node in &answer.nodes {
        let age = now.saturating_sub(node.at_ms) as f64 / 1000.0;
        println!("{}  (reported {age:.1} s ago)", node.node);
        for plugin in &node.plugins {
            for version in &plugin.versions {
                println!(
                    "  {:<20} {:<40} {:<12} {}",
                    plugin.name, version.label, version.state, version.share
                );
            }
        }
    }
    for file in &answer.files {
        println!(
            "pushed {} {} {}",
            file.file,
            &file.sha256[..12.min(file.sha256.len())],
            if file.signed { "signed" } else { "unsigned" }
        );
    }
    Ok(())
}

fn parse_assignment(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, found {text:?}"))
}

/// Runs `command`.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Inspect { file } => inspect(&file),
        Command::Transform {
            file,
            events,
            values,
        } => transform(&file, &events, values),
        Command::List { server, json } => {
            let list: PluginList = server.connect()?.get("/v1/admin/plugins")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_list(&list);
            }
            Ok(())
        }
        Command::Rollout {
            name,
            version,
            share,
            server,
        } => {
            let serving: Serving = server.connect()?.post(
                &format!("/v1/admin/plugins/{name}/rollout"),
                json!({ "version": version, "share": share }),
            )?;
            println!(
                "{name}: {} now serves {} of tenants",
                serving.version, serving.share
            );
            Ok(())
        }
        Command::Promote { name, server } => {
            let serving: Serving = server
                .connect()?
                .post(&format!("/v1/admin/plugins/{name}/promote"), json!({}))?;
            println!("{name}: {} now serves every tenant", serving.version);
            Ok(())
        }
        Command::Push { file, sig, server } => push(&file, sig.as_deref(), &server),
        Command::Fleet { server, json } => fleet(&server, json),
        Command::Rollback {
            name,
            reason,
            server,
        } => {
            let done: RollbackDone = server.connect()?.post(
                &format!("/v1/admin/plugins/{name}/rollback"),
                json!({ "reason": reason }),
            )?;
            println!(
                "{name}: {} rolled back; {} serves",
                done.rollback.version, done.rollback.serving
            );
            Ok(())
        }
        Command::Sign { key, file } => {
            let sig = droid_host::plugins::trust::sign(&key, &file)?;
            println!("{}", sig.display());
            Ok(())
        }
        Command::Keygen { prefix } => {
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

/// Prints the plugin list as a table.
fn print_list(list: &PluginList) {
    if list.plugins.is_empty() {
        println!("no plugins loaded");
    }
    for plugin in &list.plugins {
        println!("{} ({})", plugin.name, plugin.world);
        println!(
            "  {:<28} {:<12} {:>7} {:>9} {:>8} {:>7} {:>10}  file",
            "version", "state", "share", "calls", "failures", "traps", "mean"
        );
        for v in &plugin.versions {
            let on_disk = if v.on_disk {
                ""
            } else {
                " (file gone or replaced)"
            };
            println!(
                "  {:<28} {:<12} {:>7} {:>9} {:>8} {:>7} {:>8.0}us  {}{on_disk}",
                v.label,
                v.state,
                v.share.to_string(),
                v.calls.calls,
                v.calls.failures,
                v.calls.traps,
                v.mean_call_us,
                v.file,
            );
        }
        if let Some(rb) = &plugin.last_rollback {
            println!(
                "  last rollback: {} -> {} ({}): {}",
                rb.version,
                rb.serving,
                if rb.automatic { "automatic" } else { "manual" },
                rb.reason
            );
        }
    }
    if !list.load_failures.is_empty() {
        println!("files that did not load:");
        for f in &list.load_failures {
            println!("  {}: {}", f.file, f.reason);
        }
    }
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
    let config = RecordTypeConfig::around_transformer(path, values.into_iter().collect());
    let ctx = Arc::new(PluginContext::new(&config, None)?);
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let tokio = tokio::runtime::Runtime::new()?;
    let results = tokio.block_on(plugin.transform(&ctx, events))?;
    for (id, result) in ids.iter().zip(results) {
        let line = match result {
            Ok(ops) => {
                json!({ "event": id, "ops": ops.iter().map(op_json).collect::<Vec<_>>() })
            }
            Err(e) => json!({ "event": id, "error": e.to_string() }),
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
