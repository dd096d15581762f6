//! `droid restore`, `droid restores`, `droid backups` and `droid audit`:
//! point-in-time restores of chosen tenants on a running droid, its backups
//! and their verification, and the audit log; `droid backups keygen` writes
//! a master key file.

use std::io::Write as _;

use droid_host::api::answers::{AuditList, BackupStatus, ErasureList, RestoreList};
use droid_host::recovery::{Erasure, Restore};
use serde_json::json;

use super::{ServerArgs, print_json, segment};

/// `droid restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The tenants to restore, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    tenants: Vec<String>,
    /// Only these record types, comma-separated (every one when left out).
    #[arg(long, value_delimiter = ',')]
    record_types: Option<Vec<String>>,
    /// The instant: an RFC 3339 time, or a sequence number of the tenants'
    /// realm's change log.
    #[arg(long)]
    at: String,
    /// Only print what would change, per tenant and record type.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    server: ServerArgs,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
}

/// `droid restores ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Restores {
    /// Every restore, newest first.
    List(Plain),
    /// One restore.
    Show(Named),
    /// Undo a restore: its tenants go back to how they were before it.
    Undo(Undo),
}

/// `droid erasures ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Erasures {
    /// Propose erasing a tenant: another admin must approve it.
    Propose(Propose),
    /// Approve a proposal (as another admin than its proposer): the tenant
    /// is erased, and the report of every place cleaned printed.
    Approve(Named),
    /// Every erasure, newest first.
    List(Plain),
    /// One erasure, with its report.
    Show(Named),
}

/// `droid erasures propose` (and `droid tenants erase`).
#[derive(Debug, clap::Args)]
pub struct Propose {
    /// The tenant.
    pub tenant: String,
    /// Why (kept with the proposal and in the audit log).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub plain: Plain,
}

/// `droid backups ...`.
#[derive(Debug, clap::Subcommand)]
pub enum Backups {
    /// How far each realm is backed up, and the last verification.
    Status(Plain),
    /// Verify every backup file now: checksums, chain continuity, decryption.
    Verify(Plain),
    /// Write a new master key file (64 hex digits, readable by its owner only).
    Keygen(Keygen),
}

/// Flags every command talking to a droid takes.
#[derive(Debug, clap::Args)]
pub struct Plain {
    #[command(flatten)]
    server: ServerArgs,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
}

/// A restore named by its id.
#[derive(Debug, clap::Args)]
pub struct Named {
    /// The restore's id.
    id: String,
    #[command(flatten)]
    plain: Plain,
}

/// `droid restores undo`.
#[derive(Debug, clap::Args)]
pub struct Undo {
    /// The restore's id.
    id: String,
    /// Only print what would change.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    plain: Plain,
}

/// `droid backups keygen`.
#[derive(Debug, clap::Args)]
pub struct Keygen {
    /// The file to write (refused when it exists).
    file: std::path::PathBuf,
}

/// `droid audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Entries after this number.
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[command(flatten)]
    plain: Plain,
}

/// Runs `droid restore`.
pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let body = json!({
        "tenants": args.tenants,
        "record_types": args.record_types,
        "at": args.at,
        "dry_run": args.dry_run,
    });
    let restore: Restore = args.server.connect()?.post("/v1/admin/restores", body)?;
    show(&restore, args.json)
}

/// Runs `droid restores ...`.
pub fn restores(command: Restores) -> anyhow::Result<()> {
    match command {
        Restores::List(plain) => {
            let list: RestoreList = plain.server.connect()?.get("/v1/admin/restores")?;
            if plain.json {
                return print_json(&list);
            }
            for r in &list.restores {
                headline(r);
            }
            Ok(())
        }
        Restores::Show(named) => {
            let path = format!("/v1/admin/restores/{}", segment(&named.id));
            let restore: Restore = named.plain.server.connect()?.get(&path)?;
            show(&restore, named.plain.json)
        }
        Restores::Undo(undo) => {
            let path = format!("/v1/admin/restores/{}/undo", segment(&undo.id));
            let restore: Restore = undo
                .plain
                .server
                .connect()?
                .post(&path, json!({ "dry_run": undo.dry_run }))?;
            show(&restore, undo.plain.json)
        }
    }
}

/// Runs `droid erasures ...`.
pub fn erasures(command: Erasures) -> anyhow::Result<()> {
    let (plain, erasure): (Plain, Erasure) = match command {
        Erasures::Propose(propose) => {
            let erasure = propose.plain.server.connect()?.post(
                "/v1/admin/erasures",
                json!({ "tenant": propose.tenant, "reason": propose.reason }),
            )?;
            (propose.plain, erasure)
        }
        Erasures::Approve(named) => {
            let path = format!("/v1/admin/erasures/{}/approve", segment(&named.id));
            let erasure = named.plain.server.connect()?.post(&path, json!({}))?;
            (named.plain, erasure)
        }
        Erasures::Show(named) => {
            let path = format!("/v1/admin/erasures/{}", segment(&named.id));
            let erasure = named.plain.server.connect()?.get(&path)?;
            (named.plain, erasure)
        }
        Erasures::List(plain) => {
            let list: ErasureList = plain.server.connect()?.get("/v1/admin/erasures")?;
            if plain.json {
                return print_json(&list);
            }
            for e in &list.erasures {
                erasure_headline(e);
            }
            return Ok(());
        }
    };
    if plain.json {
        return print_json(&erasure);
    }
    erasure_headline(&erasure);
    if erasure.state == droid_host::recovery::ErasureState::Proposed {
        println!(
            "  waiting for another admin: droid erasures approve {} (before {})",
            erasure.id,
            droid_host::tenancy::migration::rfc3339(erasure.expires_ms)
        );
    }
    for c in &erasure.report {
        println!("  {:<20} {:<56} {:>9}", c.place, c.what, c.count);
    }
    Ok(())
}

fn erasure_headline(e: &Erasure) {
    println!(
        "{} {} tenant {} proposed by {}{}{}",
        e.id,
        e.state.as_str(),
        e.tenant,
        e.proposed_by,
        e.approved_by
            .as_ref()
            .map(|a| format!(", approved by {a}"))
            .unwrap_or_default(),
        e.error
            .as_deref()
            .map(|x| format!(": {x}"))
            .unwrap_or_default()
    );
}

/// Runs `droid backups ...`.
pub fn backups(command: Backups) -> anyhow::Result<()> {
    let (plain, status): (Plain, BackupStatus) = match command {
        Backups::Keygen(keygen) => return write_key(&keygen.file),
        Backups::Status(plain) => {
            let status = plain.server.connect()?.get("/v1/admin/backups")?;
            (plain, status)
        }
        Backups::Verify(plain) => {
            let status = plain
                .server
                .connect()?
                .post("/v1/admin/backups/verify", json!({}))?;
            (plain, status)
        }
    };
    if plain.json {
        return print_json(&status);
    }
    println!("backups in {}", status.target);
    for realm in &status.realms {
        println!(
            "realm {:<16} backed up to seq {} of {} ({} behind)",
            realm.realm, realm.shipped_seq, realm.last_seq, realm.lag_changes
        );
    }
    for report in &status.verifications {
        println!(
            "realm {:<16} verified at {}: {} chains, {} files, {} bytes, {} frames ({} of erased tenants), {}",
            report.realm,
            droid_host::tenancy::migration::rfc3339(report.at_ms),
            report.chains,
            report.files,
            report.bytes,
            report.frames,
            report.erased_frames,
            if report.problems.is_empty() {
                "no problems".to_owned()
            } else {
                format!("{} PROBLEMS", report.problems.len())
            }
        );
        for p in &report.problems {
            println!("  {} ({}): {}", p.file, p.range, p.reason);
        }
    }
    if status.verifications.iter().any(|r| !r.problems.is_empty()) {
        anyhow::bail!("backups have problems (above): they are not restored from");
    }
    Ok(())
}

/// Runs `droid audit`.
pub fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let path = format!("/v1/admin/audit?after={}&limit={}", args.after, args.limit);
    let list: AuditList = args.plain.server.connect()?.get(&path)?;
    if args.plain.json {
        return print_json(&list);
    }
    for e in &list.entries {
        let field = |name: &str| {
            e.entry
                .get(name)
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_owned()
        };
        println!(
            "{:>6} {} {} {} by {}: {}",
            e.id,
            e.at,
            field("action"),
            field("id"),
            field("by"),
            field("outcome")
        );
    }
    Ok(())
}

fn write_key(file: &std::path::Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut out = options
        .open(file)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", file.display()))?;
    writeln!(out, "{}", droid_host::backup::MasterKey::generate())?;
    println!(
        "wrote a backup master key to {}: keep a copy apart from the backups, or they cannot be read",
        file.display()
    );
    Ok(())
}

fn headline(r: &Restore) {
    let (upserts, deletes, unchanged) = r.totals();
    println!(
        "{} {} {} at {} by {}: {} upserts, {} deletes, {} unchanged{}{}",
        r.id,
        r.state.as_str(),
        r.tenants.join(","),
        r.at,
        r.by,
        upserts,
        deletes,
        unchanged,
        r.undoes
            .as_deref()
            .map(|u| format!(" (undoes {u})"))
            .unwrap_or_default(),
        r.error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
}

fn show(r: &Restore, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(r);
    }
    headline(r);
    println!(
        "  {:<24} {:<24} {:>9} {:>9} {:>9}",
        "tenant", "record type", "upserts", "deletes", "unchanged"
    );
    for c in &r.counts {
        println!(
            "  {:<24} {:<24} {:>9} {:>9} {:>9}",
            c.tenant, c.record_type, c.upserts, c.deletes, c.unchanged
        );
    }
    for (realm, source) in &r.sources {
        println!("  realm {realm}: from {source}");
    }
    for (realm, seq) in &r.restore_points {
        println!(
            "  realm {realm}: restore point seq {seq} (`droid restores undo {}`)",
            r.id
        );
    }
    Ok(())
}
