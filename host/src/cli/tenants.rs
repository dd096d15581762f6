//! `droid tenants`: a running droid's realms and tenant directory, pinning
//! tenants, and realm migrations (the same steps a platform's migration
//! service calls as hooks).

use droid_host::api::answers::{MigrationAnswer, MigrationList, TenantAnswer, TenantList};
use serde_json::{Value, json};

use super::{ServerArgs, print_json, segment};

/// `droid tenants ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The realms, and every tenant pinned to one.
    List(Plain),
    /// Where a tenant lives, and its migrations.
    Show(Named),
    /// Pin a tenant to a realm (refused when its data is in another realm:
    /// migrate it instead).
    Pin(Pin),
    /// Realm migrations: schedule, start, status, commit, rollback, list.
    #[command(subcommand)]
    Migrate(Migrate),
    /// Propose erasing a tenant everywhere (another admin approves it with
    /// `droid erasures approve ID`).
    Erase(super::recovery::Propose),
}

/// Flags every command takes.
#[derive(Debug, clap::Args)]
pub struct Plain {
    #[command(flatten)]
    server: ServerArgs,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
}

/// A tenant.
#[derive(Debug, clap::Args)]
pub struct Named {
    /// The tenant.
    tenant: String,
    #[command(flatten)]
    plain: Plain,
}

/// `droid tenants pin`.
#[derive(Debug, clap::Args)]
pub struct Pin {
    /// The tenant.
    tenant: String,
    /// The realm.
    #[arg(long)]
    realm: String,
    #[command(flatten)]
    plain: Plain,
}

/// `droid tenants migrate ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Migrate {
    /// Schedule a tenant's move to another realm within a window.
    Schedule(Schedule),
    /// Start a scheduled migration (its window must be open): the copy begins.
    Start(Step),
    /// A migration's status.
    Status(Step),
    /// Commit a migration that is ready: the tenant moves, the source is cleared.
    Commit(Step),
    /// Roll a migration back: the target's copy is removed.
    Rollback(Step),
    /// Every migration.
    List(Plain),
}

/// `droid tenants migrate schedule`.
#[derive(Debug, clap::Args)]
pub struct Schedule {
    /// The tenant.
    tenant: String,
    /// The realm it moves to.
    #[arg(long = "to")]
    target_realm: String,
    /// The window's start (RFC 3339; now when left out).
    #[arg(long)]
    start: Option<String>,
    /// The window's end (RFC 3339; 24 hours after the start when left out).
    #[arg(long)]
    end: Option<String>,
    #[command(flatten)]
    plain: Plain,
}

/// A step on one migration.
#[derive(Debug, clap::Args)]
pub struct Step {
    /// The migration's id.
    migration_id: String,
    #[command(flatten)]
    plain: Plain,
}

/// Runs a `droid tenants` command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::List(plain) => {
            let list: TenantList = plain.server.connect()?.get("/v1/admin/tenants")?;
            if plain.json {
                return print_json(&list);
            }
            for r in &list.realms {
                println!(
                    "realm {:<16} {}{}{}",
                    r.name,
                    r.public_url.as_deref().unwrap_or("(no public_url)"),
                    if r.served { ", served here" } else { "" },
                    if r.default { ", default" } else { "" }
                );
            }
            for t in &list.tenants {
                println!("{:<32} {}", t.tenant, t.realm);
            }
            Ok(())
        }
        Command::Show(named) => {
            let path = format!("/v1/admin/tenants/{}", segment(&named.tenant));
            let answer: TenantAnswer = named.plain.server.connect()?.get(&path)?;
            show_tenant(&answer, named.plain.json)
        }
        Command::Pin(pin) => {
            let path = format!("/v1/admin/tenants/{}", segment(&pin.tenant));
            let answer: TenantAnswer = pin
                .plain
                .server
                .connect()?
                .put(&path, json!({ "realm": pin.realm }))?;
            show_tenant(&answer, pin.plain.json)
        }
        Command::Migrate(step) => migrate(step),
        Command::Erase(propose) => {
            super::recovery::erasures(super::recovery::Erasures::Propose(propose))
        }
    }
}

fn migrate(command: Migrate) -> anyhow::Result<()> {
    let (plain, answer): (Plain, MigrationAnswer) = match command {
        Migrate::List(plain) => {
            let list: MigrationList = plain.server.connect()?.get("/v1/admin/migrations")?;
            if plain.json {
                return print_json(&list);
            }
            for m in &list.migrations {
                print_migration(m);
            }
            return Ok(());
        }
        Migrate::Schedule(s) => {
            let start = s.start.unwrap_or_else(|| {
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
            });
            let end = match s.end {
                Some(end) => end,
                None => {
                    let begins = humantime::parse_rfc3339_weak(&start)
                        .map_err(|e| anyhow::anyhow!("--start {start:?} is not RFC 3339: {e}"))?;
                    humantime::format_rfc3339_seconds(
                        begins + std::time::Duration::from_secs(86_400),
                    )
                    .to_string()
                }
            };
            let body = json!({
                "tenant": s.tenant,
                "target_realm": s.target_realm,
                "start": start,
                "end": end,
            });
            let answer = s
                .plain
                .server
                .connect()?
                .post("/v1/admin/migrations/schedule", body)?;
            (s.plain, answer)
        }
        Migrate::Status(step) => {
            let path = format!(
                "/v1/admin/migrations/status?migration_id={}",
                segment(&step.migration_id)
            );
            let answer = step.plain.server.connect()?.get(&path)?;
            (step.plain, answer)
        }
        Migrate::Start(step) => post_step("start", step)?,
        Migrate::Commit(step) => post_step("commit", step)?,
        Migrate::Rollback(step) => post_step("rollback", step)?,
    };
    if plain.json {
        return print_json(&answer);
    }
    print_migration(&answer);
    Ok(())
}

fn post_step(name: &str, step: Step) -> anyhow::Result<(Plain, MigrationAnswer)> {
    let body: Value = json!({ "migration_id": step.migration_id });
    let answer = step
        .plain
        .server
        .connect()?
        .post(&format!("/v1/admin/migrations/{name}"), body)?;
    Ok((step.plain, answer))
}

fn show_tenant(answer: &TenantAnswer, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(answer);
    }
    println!(
        "{} is in realm {} ({}{}){}",
        answer.tenant,
        answer.realm,
        if answer.pinned {
            "pinned"
        } else {
            "by rule or default"
        },
        if answer.served_here {
            ", served here"
        } else {
            ""
        },
        answer
            .realm_url
            .as_deref()
            .map(|u| format!(" at {u}"))
            .unwrap_or_default()
    );
    for m in &answer.migrations {
        print_migration(m);
    }
    Ok(())
}

fn print_migration(m: &MigrationAnswer) {
    println!(
        "{} {} {} -> {} {} ({} records; window {} to {}){}",
        m.migration_id,
        m.tenant,
        m.source_realm,
        m.target_realm,
        m.status,
        m.records,
        m.start,
        m.end,
        m.error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
}
