//! The steps a platform's migration service (or an operator) asks for:
//! schedule, start, commit and rollback, each checked against the recorded
//! migration and written at its revision. The work a step starts (copying,
//! committing, rolling back) is the [`super::worker`]'s.

use serde::Deserialize;

use super::Realms;
use super::migration::{Migration, MigrationError, MigrationState, parse_time, rfc3339};
use crate::config::Tenancy;
use crate::store::now_ms;

/// A step's request: the migration's id (not for `schedule`) and what the
/// schedule said, which later steps must repeat unchanged when they name it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRequest {
    /// The migration (every step but `schedule`).
    pub migration_id: Option<String>,
    /// The tenant.
    pub tenant: Option<String>,
    /// The realm it moves to.
    pub target_realm: Option<String>,
    /// The window's start (RFC 3339).
    pub start: Option<String>,
    /// The window's end (RFC 3339).
    pub end: Option<String>,
}

/// Records a new migration of the request's tenant to its target realm.
/// Blocking.
pub fn schedule(
    realms: &Realms,
    tenancy: &Tenancy,
    request: &StepRequest,
) -> Result<Migration, MigrationError> {
    let missing = |field: &str| MigrationError::InvalidWindow(format!("missing field `{field}`"));
    let tenant = request.tenant.clone().ok_or_else(|| missing("tenant"))?;
    let target = request
        .target_realm
        .clone()
        .ok_or_else(|| missing("target_realm"))?;
    let start = parse_time(
        "start",
        request.start.as_deref().ok_or_else(|| missing("start"))?,
    )?;
    let end = parse_time("end", request.end.as_deref().ok_or_else(|| missing("end"))?)?;
    if end <= start {
        return Err(MigrationError::InvalidWindow(format!(
            "end ({}) must come after start ({})",
            rfc3339(end),
            rfc3339(start)
        )));
    }
    let now = now_ms();
    if end <= now {
        return Err(MigrationError::WindowInPast(rfc3339(end)));
    }
    if realms.get(&target).is_none() {
        return Err(MigrationError::UnknownRealm(target));
    }
    realms.directory.refresh()?;
    let source = realms.directory.realm_of(&tenant);
    if source == target {
        return Err(MigrationError::SameRealm {
            tenant,
            realm: target,
        });
    }
    if let Some(open) = realms.directory.open_migrations_of(&tenant).first() {
        return Err(MigrationError::AlreadyMigrating {
            tenant,
            id: open.id.clone(),
            state: open.state.as_str(),
        });
    }
    let under_way = realms.directory.open_migrations();
    if under_way >= tenancy.max_concurrent_migrations {
        return Err(MigrationError::TooMany(under_way));
    }
    // The tenant's realm is fixed from here: a rule or default changing
    // meanwhile must not move it under the migration.
    realms.directory.pin(&tenant, &source)?;
    let mut migration = Migration {
        id: new_id(),
        tenant,
        source_realm: source,
        target_realm: target,
        window_start_ms: start,
        window_end_ms: end,
        state: MigrationState::Scheduled,
        scheduled_at_ms: now,
        updated_at_ms: now,
        copied: 0,
        cursor: None,
        tally: None,
        flipped: false,
        error: None,
        history: Vec::new(),
        worker: None,
        lease_until_ms: 0,
    };
    migration.enter(MigrationState::Scheduled, now);
    match realms.directory.put(&migration, 0)? {
        Some(_) => Ok(migration),
        None => Err(MigrationError::Raced(migration.id)),
    }
}

/// Starts the copy: the window must be open and the request match the
/// schedule. Blocking.
pub fn start(realms: &Realms, request: &StepRequest) -> Result<Migration, MigrationError> {
    transition(realms, request, |m, now| {
        if m.state != MigrationState::Scheduled {
            return Err(wrong(m, "start", "to a Scheduled migration"));
        }
        if now < m.window_start_ms {
            return Err(MigrationError::OutsideWindow {
                id: m.id.clone(),
                when: format!("opens at {}", rfc3339(m.window_start_ms)),
            });
        }
        if now > m.window_end_ms {
            return Err(MigrationError::OutsideWindow {
                id: m.id.clone(),
                when: format!("closed at {}", rfc3339(m.window_end_ms)),
            });
        }
        m.enter(MigrationState::Copying, now);
        Ok(())
    })
}

/// Commits a migration that is ready. Blocking.
pub fn commit(realms: &Realms, request: &StepRequest) -> Result<Migration, MigrationError> {
    transition(realms, request, |m, now| {
        if m.state != MigrationState::ReadyToCommit {
            return Err(wrong(m, "commit", "to a Ready-to-commit migration"));
        }
        m.enter(MigrationState::Committing, now);
        Ok(())
    })
}

/// Rolls a migration back: at once when nothing was copied yet, else by the
/// worker (which first lets a running copy stop). Blocking.
pub fn rollback(realms: &Realms, request: &StepRequest) -> Result<Migration, MigrationError> {
    transition(realms, request, |m, now| {
        match m.state {
            MigrationState::Scheduled => m.enter(MigrationState::RolledBack, now),
            MigrationState::Copying | MigrationState::ReadyToCommit | MigrationState::Failed => {
                m.enter(MigrationState::RollingBack, now);
            }
            _ => {
                return Err(wrong(
                    m,
                    "rollback",
                    "before the commit (Scheduled, Copying, Ready-to-commit or Failed)",
                ));
            }
        }
        Ok(())
    })
}

/// The migration a request names, checked against what it repeats of the
/// schedule.
pub fn named(realms: &Realms, request: &StepRequest) -> Result<(Migration, u64), MigrationError> {
    let id = request
        .migration_id
        .as_deref()
        .ok_or_else(|| MigrationError::Unknown(String::new()))?;
    realms.directory.refresh()?;
    let (migration, revision) = realms
        .directory
        .migration(id)
        .ok_or_else(|| MigrationError::Unknown(id.to_owned()))?;
    let mismatch = |field, recorded: String, asked: &str| MigrationError::Mismatch {
        id: id.to_owned(),
        field,
        recorded,
        asked: asked.to_owned(),
    };
    if let Some(tenant) = &request.tenant
        && *tenant != migration.tenant
    {
        return Err(mismatch("tenant", migration.tenant.clone(), tenant));
    }
    if let Some(target) = &request.target_realm
        && *target != migration.target_realm
    {
        return Err(mismatch(
            "target_realm",
            migration.target_realm.clone(),
            target,
        ));
    }
    for (field, text, recorded) in [
        ("start", &request.start, migration.window_start_ms),
        ("end", &request.end, migration.window_end_ms),
    ] {
        if let Some(text) = text
            && parse_time(field, text)? != recorded
        {
            return Err(mismatch(field, rfc3339(recorded), text));
        }
    }
    Ok((migration, revision))
}

/// Applies `step` to the named migration and records it at its revision.
/// A worker recording its progress meanwhile (a page copied, its lease
/// renewed) moves the revision on: the step is then checked and tried again
/// on what is recorded now, a few times.
fn transition(
    realms: &Realms,
    request: &StepRequest,
    step: impl Fn(&mut Migration, u64) -> Result<(), MigrationError>,
) -> Result<Migration, MigrationError> {
    let mut attempts = 0;
    loop {
        let (mut migration, revision) = named(realms, request)?;
        step(&mut migration, now_ms())?;
        match realms.directory.put(&migration, revision)? {
            Some(_) => return Ok(migration),
            None if attempts < RETRIES => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(5 * attempts));
            }
            None => return Err(MigrationError::Raced(migration.id)),
        }
    }
}

/// How often a step is tried again on a migration that changed under it.
const RETRIES: u64 = 20;

fn wrong(m: &Migration, step: &'static str, when: &'static str) -> MigrationError {
    MigrationError::WrongState {
        id: m.id.clone(),
        state: m.state.as_str(),
        step,
        when,
    }
}

/// A fresh migration id: 12 random bytes, hex.
fn new_id() -> String {
    let mut id = [0u8; 12];
    // Without randomness, the time still tells migrations apart.
    if getrandom::fill(&mut id).is_err() {
        id[..8].copy_from_slice(&now_ms().to_be_bytes());
    }
    format!(
        "m-{}",
        id.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}
