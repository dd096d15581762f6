//! `[realms.NAME]` and `[tenancy]`: the realms tenants' data may live in,
//! each with a store of its own, and how tenants are placed in them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::raw::{RawRealm, RawTenancy};
use super::super::{RealmConfig, RealmRule, RealmStore, StoreBackend, Tenancy};
use super::{Checker, check_base_url, check_schema_name};

/// The one realm of a file that declares none: its store is `[store]`.
pub(crate) const DEFAULT_REALM: &str = "default";

/// The longest realm name: it goes into schema and file names.
const MAX_REALM_NAME: usize = 16;

/// Realms and tenancy, given the base store (`[store]`, which keeps the tenant
/// directory, and is the one realm's store when none is declared).
pub(super) fn tenancy(
    c: &mut Checker,
    base_dir: &Path,
    raw_realms: BTreeMap<String, RawRealm>,
    raw: RawTenancy,
    backend: &StoreBackend,
    store_path: &Path,
) -> Tenancy {
    let declared = !raw_realms.is_empty();
    let mut realms = BTreeMap::new();
    if declared {
        for (name, realm) in raw_realms {
            let field = format!("realms.{name}");
            if let Err(why) = check_realm_name(&name) {
                c.problem(&field, why);
                continue;
            }
            let store = realm_store(c, &field, &name, &realm, base_dir, backend, store_path);
            let public_url = realm.public_url.as_deref().and_then(|text| {
                check_base_url(text)
                    .map_err(|why| c.problem(format!("{field}.public_url"), why))
                    .ok()
            });
            realms.insert(
                name.clone(),
                RealmConfig {
                    name,
                    public_url,
                    store,
                },
            );
        }
        distinct_stores(c, &realms, backend, store_path);
    } else {
        let store = match backend {
            StoreBackend::Embedded => RealmStore::Embedded(store_path.to_path_buf()),
            StoreBackend::Postgres(options) => RealmStore::Postgres(options.clone()),
        };
        realms.insert(
            DEFAULT_REALM.to_owned(),
            RealmConfig {
                name: DEFAULT_REALM.to_owned(),
                public_url: None,
                store,
            },
        );
    }
    let known = |c: &mut Checker, field: &str, name: &str| {
        let found = realms.contains_key(name);
        if !found {
            c.problem(
                field,
                format!(
                    "no realm named {name:?} is declared (declared: {})",
                    realms.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        found
    };
    let default_realm = match raw.default_realm {
        Some(name) => {
            known(c, "tenancy.default_realm", &name);
            name
        }
        None if realms.len() == 1 => realms.keys().next().cloned().unwrap_or_default(),
        None => {
            c.problem(
                "tenancy.default_realm",
                "several realms are declared: name the one a tenant no pin or rule places goes to",
            );
            String::new()
        }
    };
    let serve: BTreeSet<String> = match raw.serve {
        None => realms.keys().cloned().collect(),
        Some(names) => {
            if names.is_empty() {
                c.problem(
                    "tenancy.serve",
                    "a node serves at least one realm (leave it out to serve them all)",
                );
            }
            names
                .into_iter()
                .filter(|name| known(c, "tenancy.serve", name))
                .collect()
        }
    };
    let mut rules = Vec::new();
    for (i, rule) in raw.rules.into_iter().enumerate() {
        let field = format!("tenancy.rules[{i}]");
        match (rule.tenant_prefix, rule.realm) {
            (Some(prefix), Some(realm)) if !prefix.is_empty() => {
                if known(c, &format!("{field}.realm"), &realm) {
                    rules.push(RealmRule {
                        tenant_prefix: prefix,
                        realm,
                    });
                }
            }
            _ => c.problem(
                field,
                "expected {tenant_prefix = \"...\", realm = \"...\"} with a non-empty prefix",
            ),
        }
    }
    Tenancy {
        realms,
        declared,
        default_realm,
        serve,
        rules,
        max_concurrent_migrations: c.number(
            "tenancy",
            "max_concurrent_migrations",
            raw.max_concurrent_migrations,
            4,
            1,
            1_000,
        ) as usize,
        copy_page_records: c.number(
            "tenancy",
            "copy_page_records",
            raw.copy_page_records,
            500,
            1,
            100_000,
        ) as usize,
        refresh: c.millis(
            "tenancy",
            "refresh_ms",
            raw.refresh_ms,
            Duration::from_millis(250),
            10,
            60_000,
        ),
        retry_after_s: c.number("tenancy", "retry_after_s", raw.retry_after_s, 30, 1, 86_400)
            as u32,
        restore_batch_records: c.number(
            "tenancy",
            "restore_batch_records",
            raw.restore_batch_records,
            1_000,
            1,
            100_000,
        ) as usize,
        erase_approval_window: Duration::from_secs(c.number(
            "tenancy",
            "erase_approval_window_s",
            raw.erase_approval_window_s,
            86_400,
            1,
            30 * 86_400,
        )),
    }
}

/// Realm names go into file and schema names: short and plain.
fn check_realm_name(name: &str) -> Result<(), String> {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let starts_well = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    if plain && starts_well && name.len() <= MAX_REALM_NAME {
        Ok(())
    } else {
        Err(format!(
            "expected a realm name of a-z, 0-9 and _, starting with a letter, at most {MAX_REALM_NAME} bytes, found {name:?}"
        ))
    }
}

/// A realm's store: of the base store's backend, in a file or schema of
/// its own (by default named after the base's and the realm).
fn realm_store(
    c: &mut Checker,
    field: &str,
    name: &str,
    raw: &RawRealm,
    base_dir: &Path,
    backend: &StoreBackend,
    store_path: &Path,
) -> RealmStore {
    match backend {
        StoreBackend::Embedded => {
            for (key, set) in [("schema", raw.schema.is_some()), ("url", raw.url.is_some())] {
                if set {
                    c.problem(
                        format!("{field}.{key}"),
                        "applies to store.backend = \"postgres\" only (the store is embedded)",
                    );
                }
            }
            let path = match &raw.path {
                Some(path) if path.trim().is_empty() => {
                    c.problem(
                        format!("{field}.path"),
                        "expected a file path, found an empty string",
                    );
                    PathBuf::new()
                }
                Some(path) => base_dir.join(path),
                None => {
                    let stem = store_path
                        .file_stem()
                        .map_or("store".into(), |s| s.to_string_lossy());
                    store_path.with_file_name(format!("{stem}.{name}.redb"))
                }
            };
            RealmStore::Embedded(path)
        }
        StoreBackend::Postgres(base) => {
            if raw.path.is_some() {
                c.problem(
                    format!("{field}.path"),
                    "applies to the embedded store only (store.backend is \"postgres\")",
                );
            }
            let schema = raw
                .schema
                .clone()
                .unwrap_or_else(|| format!("{}_{name}", base.schema));
            if let Err(why) = check_schema_name(&schema) {
                c.problem(format!("{field}.schema"), why);
            }
            let url = match &raw.url {
                Some(url) => {
                    if let Err(e) = url.parse::<postgres::Config>() {
                        c.problem(
                            format!("{field}.url"),
                            format!("not a PostgreSQL connection string or URL: {e}"),
                        );
                    }
                    url.clone()
                }
                None => base.url.clone(),
            };
            RealmStore::Postgres(crate::store::PostgresOptions {
                url,
                schema,
                ..base.clone()
            })
        }
    }
}

/// No two realms share a store, and none shares the base store (which keeps
/// the directory): a tenant's data is where its realm says, nowhere else.
fn distinct_stores(
    c: &mut Checker,
    realms: &BTreeMap<String, RealmConfig>,
    backend: &StoreBackend,
    store_path: &Path,
) {
    let place = |store: &RealmStore| match store {
        RealmStore::Embedded(path) => path.display().to_string(),
        RealmStore::Postgres(o) => format!("schema {} of {}", o.schema, redacted(&o.url)),
    };
    let base = match backend {
        StoreBackend::Embedded => RealmStore::Embedded(store_path.to_path_buf()),
        StoreBackend::Postgres(o) => RealmStore::Postgres(o.clone()),
    };
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    seen.insert(place(&base), "store (the tenant directory)".to_owned());
    for realm in realms.values() {
        let at = place(&realm.store);
        let field = match realm.store {
            RealmStore::Embedded(_) => "path",
            RealmStore::Postgres(_) => "schema",
        };
        if let Some(other) = seen.get(&at) {
            c.problem(
                format!("realms.{}.{field}", realm.name),
                format!(
                    "{at} is already the store of {other}: every realm needs a store of its own"
                ),
            );
        } else {
            seen.insert(at, format!("realms.{}", realm.name));
        }
    }
}

/// A connection URL without what may be a password, for messages.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "the database".to_owned(),
    }
}
