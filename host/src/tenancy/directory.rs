//! The tenant directory as a node holds it: every pin and every migration
//! under way, read from the shared store and read again whenever its
//! revision moves (at once after this node's own changes, within
//! `tenancy.refresh_ms` after another node's). Placing a tenant costs a
//! map lookup: its pin, else the first rule its id starts with, else the
//! default realm.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::migration::Migration;
use crate::config::{RealmRule, Tenancy};
use crate::store::{self, StoreError};

/// Why a node does not serve a tenant or a realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The data is in `realm`, which this node does not serve; clients
    /// reach it at `url`.
    Elsewhere {
        /// The realm.
        realm: String,
        /// Its `public_url`.
        url: Option<url::Url>,
    },
    /// No realm of that name is declared.
    Unknown(String),
}

/// What a node knows of the directory.
#[derive(Debug, Default, Clone)]
struct View {
    revision: u64,
    /// Shared between views: a migration's change copies the view, not them.
    pins: Arc<HashMap<String, String>>,
    /// Every migration recorded, by id, with its revision.
    migrations: HashMap<String, (Migration, u64)>,
    /// The tenants whose writes are held off: their migration is copying,
    /// ready to commit or committing.
    fenced: HashMap<String, String>,
    /// The tenants an operation (a restore, an erasure) holds off, with it.
    held: HashMap<String, Held>,
}

/// What holds a tenant's writes off: its realm migration (copying, ready to
/// commit or committing), or an operation recorded through
/// [`crate::store::Recovery`] (any operation whose JSON lists tenants in
/// `fences` holds them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// What it is ([`Held::MIGRATION`], `restore`, `erase`).
    pub kind: String,
    /// Its id.
    pub id: String,
}

impl Held {
    /// The kind of a realm migration's hold.
    pub const MIGRATION: &'static str = "migration";
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind.as_str() {
            Self::MIGRATION => write!(f, "migrating between realms (migration {})", self.id),
            kind => write!(f, "held by {kind} {}", self.id),
        }
    }
}

/// Adds the tenants operation `id` (recorded as `body`) holds to `held`.
fn add_holds(held: &mut HashMap<String, Held>, id: &str, body: &str) {
    match serde_json::from_str::<Fencing>(body) {
        Ok(fencing) => {
            for tenant in fencing.fences {
                held.insert(
                    tenant,
                    Held {
                        kind: fencing.kind.clone(),
                        id: id.to_owned(),
                    },
                );
            }
        }
        Err(e) => {
            tracing::error!(operation = %id, error = %e, "a recorded operation does not decode; it fences no one");
        }
    }
}

/// What the directory reads of an operation: its kind and whom it fences.
#[derive(serde::Deserialize)]
struct Fencing {
    kind: String,
    #[serde(default)]
    fences: Vec<String>,
}

/// The tenant directory, held in memory.
#[derive(Debug)]
pub struct Directory {
    store: Arc<dyn store::Directory>,
    recovery: Arc<dyn store::Recovery>,
    view: ArcSwap<View>,
    rules: Vec<RealmRule>,
    default_realm: String,
    /// Whether realms are declared (else every tenant is in the one realm,
    /// and nothing is pinned).
    declared: bool,
    /// Tenants whose pin moved to another realm since the caches last
    /// heard ([`Directory::take_moved`]).
    moved: std::sync::Mutex<Vec<String>>,
}

impl Directory {
    /// The directory kept in `store`, read now.
    pub(super) fn load(
        store: Arc<dyn store::Directory>,
        recovery: Arc<dyn store::Recovery>,
        tenancy: &Tenancy,
    ) -> Result<Self, StoreError> {
        let directory = Self {
            store,
            recovery,
            view: ArcSwap::from_pointee(View::default()),
            rules: tenancy.rules.clone(),
            default_realm: tenancy.default_realm.clone(),
            declared: tenancy.declared,
            moved: std::sync::Mutex::new(Vec::new()),
        };
        directory.reload()?;
        Ok(directory)
    }

    /// Whether realms are declared (else there is one, and no pins).
    pub fn declared(&self) -> bool {
        self.declared
    }

    /// The store the directory is kept in.
    pub fn store(&self) -> &Arc<dyn store::Directory> {
        &self.store
    }

    /// Reads the directory again if its revision moved. Blocking.
    pub fn refresh(&self) -> Result<(), StoreError> {
        if self.store.directory_revision()? != self.view.load().revision {
            self.reload()?;
        }
        Ok(())
    }

    /// Reads the whole directory. Blocking.
    pub fn reload(&self) -> Result<(), StoreError> {
        // The revision first: a change landing meanwhile is read again next time.
        let revision = self.store.directory_revision()?;
        let pins: HashMap<String, String> = self
            .store
            .pins()?
            .into_iter()
            .map(|p| (p.tenant, p.realm))
            .collect();
        {
            let before = self.view.load();
            let mut moved = crate::locks::lock(&self.moved);
            for (tenant, realm) in &pins {
                if before.pins.get(tenant).is_some_and(|old| old != realm) {
                    moved.push(tenant.clone());
                }
            }
        }
        let mut migrations = HashMap::new();
        let mut fenced = HashMap::new();
        for stored in self.store.migrations()? {
            match serde_json::from_str::<Migration>(&stored.body) {
                Ok(migration) => {
                    if migration.state.fences_writes() {
                        fenced.insert(migration.tenant.clone(), migration.id.clone());
                    }
                    migrations.insert(stored.id, (migration, stored.revision));
                }
                Err(e) => {
                    tracing::error!(migration = %stored.id, error = %e, "a recorded migration does not decode; it is left alone");
                }
            }
        }
        let mut held = HashMap::new();
        for operation in self.recovery.operations()? {
            add_holds(&mut held, &operation.id, &operation.body);
        }
        self.view.store(Arc::new(View {
            revision,
            pins: Arc::new(pins),
            migrations,
            fenced,
            held,
        }));
        Ok(())
    }

    /// Takes `migration`, just written at `revision`, into the view without
    /// reading the directory again (a worker writes at every page). The
    /// view's own revision stays: the next [`Directory::refresh`] reads
    /// whatever else changed.
    fn hold(&self, migration: &Migration, revision: u64) {
        self.view.rcu(|view| {
            let mut view = View::clone(view);
            if migration.state.fences_writes() {
                view.fenced
                    .insert(migration.tenant.clone(), migration.id.clone());
            } else if view.fenced.get(&migration.tenant) == Some(&migration.id) {
                view.fenced.remove(&migration.tenant);
            }
            view.migrations
                .insert(migration.id.clone(), (migration.clone(), revision));
            view
        });
    }

    /// The tenants that moved to another realm since the last call: what
    /// caches of read-through records fetched for them came from their old
    /// realm's backing store.
    pub fn take_moved(&self) -> Vec<String> {
        std::mem::take(&mut *crate::locks::lock(&self.moved))
    }

    /// The realm `tenant`'s data is in (or goes to, once it writes).
    pub fn realm_of(&self, tenant: &str) -> String {
        self.with_realm_of(tenant, str::to_owned)
    }

    /// `f` of the name of the realm `tenant`'s data is in, without copying
    /// it: what the read path asks on every request.
    pub fn with_realm_of<T>(&self, tenant: &str, f: impl FnOnce(&str) -> T) -> T {
        if !self.declared {
            return f(&self.default_realm);
        }
        let view = self.view.load();
        match view.pins.get(tenant) {
            Some(realm) => f(realm),
            None => f(self.placed_by_rule(tenant)),
        }
    }

    /// Where a tenant without a pin goes: the first rule it matches, else
    /// the default realm.
    fn placed_by_rule(&self, tenant: &str) -> &str {
        self.rules
            .iter()
            .find(|r| tenant.starts_with(&r.tenant_prefix))
            .map_or(&self.default_realm, |r| &r.realm)
    }

    /// Whether `tenant` is pinned (a file without realms pins no one).
    pub fn is_pinned(&self, tenant: &str) -> bool {
        !self.declared || self.view.load().pins.contains_key(tenant)
    }

    /// Pins each of `tenants` not pinned yet where it would go, so a later
    /// change of rules or default never moves data that is already
    /// somewhere: what a tenant's first write does. One store transaction
    /// and one reading of the directory, however many. Blocking.
    pub fn pin_where_placed(&self, tenants: &[String]) -> Result<(), StoreError> {
        let pins: Vec<(String, String)> = tenants
            .iter()
            .map(|t| (t.clone(), self.placed_by_rule(t).to_owned()))
            .collect();
        self.store.pin_absent(&pins)?;
        self.reload()
    }

    /// Pins `tenant` to `realm`. Blocking.
    pub fn pin(&self, tenant: &str, realm: &str) -> Result<(), StoreError> {
        self.store.pin(tenant, realm, false)?;
        self.reload()
    }

    /// Takes operation `id`, just recorded as `body`, into the view without
    /// reading the directory again (an operation writes at every batch):
    /// the tenants it holds now, and no longer those it held.
    pub fn hold_operation(&self, id: &str, body: &str) {
        self.view.rcu(|view| {
            let mut view = View::clone(view);
            view.held.retain(|_, held| held.id != id);
            add_holds(&mut view.held, id, body);
            view
        });
    }

    /// What holds `tenant`'s writes off, if anything: its migration, else
    /// an operation (a restore, an erasure).
    pub fn held_by(&self, tenant: &str) -> Option<Held> {
        let view = self.view.load();
        match view.fenced.get(tenant) {
            Some(migration) => Some(Held {
                kind: Held::MIGRATION.to_owned(),
                id: migration.clone(),
            }),
            None => view.held.get(tenant).cloned(),
        }
    }

    /// The store recovery's operations and audit log are kept in (the one
    /// every node shares).
    pub fn recovery(&self) -> &Arc<dyn store::Recovery> {
        &self.recovery
    }

    /// Every pin, by tenant.
    pub fn pins(&self) -> Vec<(String, String)> {
        let mut pins: Vec<_> = self
            .view
            .load()
            .pins
            .iter()
            .map(|(t, r)| (t.clone(), r.clone()))
            .collect();
        pins.sort();
        pins
    }

    /// Every migration with its revision, newest first.
    pub fn migrations(&self) -> Vec<(Migration, u64)> {
        let mut all: Vec<_> = self.view.load().migrations.values().cloned().collect();
        all.sort_by(|a, b| {
            b.0.scheduled_at_ms
                .cmp(&a.0.scheduled_at_ms)
                .then(a.0.id.cmp(&b.0.id))
        });
        all
    }

    /// The migration `id` with its revision.
    pub fn migration(&self, id: &str) -> Option<(Migration, u64)> {
        self.view.load().migrations.get(id).cloned()
    }

    /// The migrations of `tenant` not yet at an end.
    pub fn open_migrations_of(&self, tenant: &str) -> Vec<Migration> {
        self.view
            .load()
            .migrations
            .values()
            .filter(|(m, _)| m.tenant == tenant && !m.state.is_final())
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Publishes how many migrations are in each state, for `/metrics`.
    pub fn publish_gauges(&self) {
        use super::MigrationState as S;
        let view = self.view.load();
        for state in [
            S::Scheduled,
            S::Copying,
            S::ReadyToCommit,
            S::Committing,
            S::Committed,
            S::Failed,
            S::RollingBack,
            S::RolledBack,
        ] {
            let count = view
                .migrations
                .values()
                .filter(|(m, _)| m.state == state)
                .count();
            metrics::gauge!(crate::metrics::MIGRATIONS, "state" => state.as_str())
                .set(count as f64);
        }
    }

    /// How many migrations are not yet at an end.
    pub fn open_migrations(&self) -> usize {
        self.view
            .load()
            .migrations
            .values()
            .filter(|(m, _)| !m.state.is_final())
            .count()
    }

    /// Records `migration` if its revision is still `expected` (0: new);
    /// the new revision, or `None` when another node changed it first.
    /// Blocking.
    pub fn put(&self, migration: &Migration, expected: u64) -> Result<Option<u64>, StoreError> {
        let body = serde_json::to_string(migration)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode a migration: {e}")))?;
        let written =
            self.store
                .put_migration(&migration.id, &migration.tenant, &body, expected)?;
        match written {
            Some(revision) => self.hold(migration, revision),
            // Someone else wrote it: what they wrote is read now.
            None => self.reload()?,
        }
        Ok(written)
    }
}
