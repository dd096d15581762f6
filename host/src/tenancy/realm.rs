//! The realms a node knows: each one's store (behind its read cache), the
//! newest part of its change log for feed subscribers, and where clients
//! reach it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Directory, Placement};
use crate::config::{Config, RealmStore, StoreBackend};
use crate::feed::Tail;
use crate::store::{Embedded, InvalidatedKey, Postgres, StoreError, Stores};

/// One realm.
#[derive(Debug)]
pub struct Realm {
    /// Its name.
    pub name: String,
    /// Its store: its tenants' records, change log, dead letters, snapshots.
    pub stores: Stores,
    /// The newest part of its change log, encoded once for every follower.
    pub tail: Tail,
    /// Where clients reach the nodes serving it (`realms.NAME.public_url`).
    pub public_url: Option<url::Url>,
    /// Whether this node serves it.
    pub served: bool,
    /// Its change log's end when opened: where following other nodes'
    /// commits starts.
    pub log_at_open: u64,
}

/// Every realm of the configuration, the store every node shares (the
/// tenant directory and, when shared, the fleet's), and the directory.
#[derive(Debug)]
pub struct Realms {
    by_name: BTreeMap<String, Arc<Realm>>,
    /// The store every node shares: `[store]`.
    pub base: Stores,
    /// Which realm each tenant is in, and which are migrating.
    pub directory: Directory,
    /// Where what belongs to no one tenant goes (the default realm when this
    /// node serves it, else the first it serves).
    home: String,
}

impl Realms {
    /// Opens the base store and every realm's (a realm whose store is the
    /// base store, as the one realm of a file without realms, shares it).
    /// Every node opens every realm's store, served or not: a migration's
    /// worker needs both ends.
    pub fn open(config: &Config) -> Result<Self, StoreError> {
        let base = open_base(config)?;
        let tenancy = &config.tenancy;
        let mut by_name = BTreeMap::new();
        for realm in tenancy.realms.values() {
            let stores = if tenancy.declared {
                open_realm(config, &realm.store)?
            } else {
                base.clone()
            };
            let log_at_open = stores.records.last_seq()?;
            by_name.insert(
                realm.name.clone(),
                Arc::new(Realm {
                    name: realm.name.clone(),
                    stores,
                    tail: Tail::new(&config.feed),
                    public_url: realm.public_url.clone(),
                    served: tenancy.serve.contains(&realm.name),
                    log_at_open,
                }),
            );
        }
        let home = if tenancy.serve.contains(&tenancy.default_realm) {
            tenancy.default_realm.clone()
        } else {
            tenancy.serve.iter().next().cloned().unwrap_or_default()
        };
        let directory = Directory::load(base.directory.clone(), base.recovery.clone(), tenancy)?;
        Ok(Self {
            by_name,
            base,
            directory,
            home,
        })
    }

    /// The realm `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Realm>> {
        self.by_name.get(name)
    }

    /// Every realm, by name.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Realm>> {
        self.by_name.values()
    }

    /// The realms this node serves.
    pub fn served(&self) -> impl Iterator<Item = &Arc<Realm>> {
        self.by_name.values().filter(|r| r.served)
    }

    /// This node's home realm: where what belongs to no one tenant goes,
    /// and what the feed and exports follow when no realm is named.
    pub fn home(&self) -> &Arc<Realm> {
        self.by_name
            .get(&self.home)
            .or_else(|| self.by_name.values().next())
            .expect("a configuration has at least one realm")
    }

    /// The store of this node's home realm (see [`Realms::home`]).
    pub fn home_store(&self) -> &Stores {
        &self.home().stores
    }

    /// The served realm `name`, or why not: unknown, or served elsewhere.
    pub fn served_realm(&self, name: &str) -> Result<&Arc<Realm>, Placement> {
        match self.by_name.get(name) {
            Some(realm) if realm.served => Ok(realm),
            Some(realm) => Err(Placement::Elsewhere {
                realm: realm.name.clone(),
                url: realm.public_url.clone(),
            }),
            None => Err(Placement::Unknown(name.to_owned())),
        }
    }

    /// Where `tenant`'s data is, if this node serves it. Without declared
    /// realms, the one realm at once.
    pub fn for_tenant(&self, tenant: &str) -> Result<&Arc<Realm>, Placement> {
        if !self.directory.declared() {
            return Ok(self.home());
        }
        self.directory
            .with_realm_of(tenant, |name| self.served_realm(name))
    }

    /// The realm `tenant`'s data is in, served here or not.
    pub fn of_tenant(&self, tenant: &str) -> &Arc<Realm> {
        if !self.directory.declared() {
            return self.home();
        }
        self.directory
            .with_realm_of(tenant, |name| self.by_name.get(name))
            .unwrap_or_else(|| self.home())
    }

    /// Logs invalidations of read-through keys in the change log of each
    /// key's tenant's realm, so that realm's followers drop them. Blocking.
    pub fn log_invalidations(&self, keys: &[InvalidatedKey]) -> Result<(), StoreError> {
        let mut by_realm: BTreeMap<&str, Vec<InvalidatedKey>> = BTreeMap::new();
        for key in keys {
            let realm = self.of_tenant(&key.id.tenant);
            by_realm.entry(&realm.name).or_default().push(key.clone());
        }
        for (name, keys) in by_realm {
            if let Some(realm) = self.by_name.get(name) {
                realm.stores.records.log_invalidations(&keys)?;
            }
        }
        Ok(())
    }

    /// The served realm a request names (`?realm=`), or this node's home
    /// realm when it names none.
    pub fn named_or_home(&self, name: Option<&str>) -> Result<&Arc<Realm>, Placement> {
        match name.filter(|n| !n.is_empty()) {
            Some(name) => self.served_realm(name),
            None => Ok(self.home()),
        }
    }
}

/// The store every node shares, behind its read cache.
fn open_base(config: &Config) -> Result<Stores, StoreError> {
    let (bytes, ttl) = (config.store_cache.capacity_bytes, config.store_cache.ttl);
    Ok(match &config.store_backend {
        StoreBackend::Embedded => Stores::of(
            Embedded::open_with_cache(&config.store_path, config.store_engine_cache_bytes)?,
            bytes,
            ttl,
        ),
        StoreBackend::Postgres(options) => Stores::shared(Postgres::open(options)?, bytes, ttl),
    })
}

/// A declared realm's own store, behind a read cache of its own.
fn open_realm(config: &Config, store: &RealmStore) -> Result<Stores, StoreError> {
    let (bytes, ttl) = (config.store_cache.capacity_bytes, config.store_cache.ttl);
    Ok(match store {
        RealmStore::Embedded(path) => Stores::of(
            Embedded::open_with_cache(path, config.store_engine_cache_bytes)?,
            bytes,
            ttl,
        ),
        RealmStore::Postgres(options) => Stores::of(Postgres::open(options)?, bytes, ttl),
    })
}
