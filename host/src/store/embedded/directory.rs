//! The tenant directory in redb: `pins` (tenant → realm and when) and
//! `migrations` (id → tenant, body and revision), with the directory's
//! revision in `meta`.

use redb::{ReadableDatabase, ReadableTable};

use super::super::{Directory, Pin, StoreError, StoredMigration, now_ms};
use super::{Embedded, META, MIGRATIONS, PINS, decode, encode, io};

/// The directory's revision in `meta`.
const DIRECTORY_REVISION: &str = "directory_revision";

#[derive(serde::Serialize, serde::Deserialize)]
struct PinRow {
    realm: String,
    pinned_at_ms: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct MigrationRow {
    tenant: String,
    body: String,
    revision: u64,
}

impl Directory for Embedded {
    fn pins(&self) -> Result<Vec<Pin>, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let table = try_io!("read", txn.open_table(PINS));
        let mut out = Vec::new();
        for entry in try_io!("read", table.iter()) {
            let (tenant, value) = try_io!("read", entry);
            let row: PinRow = decode(value.value())?;
            out.push(Pin {
                tenant: tenant.value().to_owned(),
                realm: row.realm,
                pinned_at_ms: row.pinned_at_ms,
            });
        }
        Ok(out)
    }

    fn pin(&self, tenant: &str, realm: &str, only_if_absent: bool) -> Result<String, StoreError> {
        let txn = try_io!("write", self.db().begin_write());
        let in_force = {
            let mut table = try_io!("write", txn.open_table(PINS));
            let held = match try_io!("write", table.get(tenant)) {
                Some(value) => Some(decode::<PinRow>(value.value())?.realm),
                None => None,
            };
            match held {
                Some(held) if only_if_absent || held == realm => held,
                _ => {
                    let row = PinRow {
                        realm: realm.to_owned(),
                        pinned_at_ms: now_ms(),
                    };
                    try_io!("write", table.insert(tenant, encode(&row)?.as_slice()));
                    bump(&txn)?;
                    realm.to_owned()
                }
            }
        };
        try_io!("commit", txn.commit());
        Ok(in_force)
    }

    fn pin_absent(&self, pins: &[(String, String)]) -> Result<(), StoreError> {
        if pins.is_empty() {
            return Ok(());
        }
        let txn = try_io!("write", self.db().begin_write());
        {
            let mut table = try_io!("write", txn.open_table(PINS));
            let now = now_ms();
            let mut any = false;
            for (tenant, realm) in pins {
                if try_io!("write", table.get(tenant.as_str())).is_some() {
                    continue;
                }
                let row = PinRow {
                    realm: realm.clone(),
                    pinned_at_ms: now,
                };
                try_io!(
                    "write",
                    table.insert(tenant.as_str(), encode(&row)?.as_slice())
                );
                any = true;
            }
            if any {
                bump(&txn)?;
            }
        }
        try_io!("commit", txn.commit());
        Ok(())
    }

    fn unpin(&self, tenant: &str) -> Result<bool, StoreError> {
        let txn = try_io!("write", self.db().begin_write());
        let had = {
            let mut table = try_io!("write", txn.open_table(PINS));
            let had = try_io!("write", table.remove(tenant)).is_some();
            if had {
                bump(&txn)?;
            }
            had
        };
        try_io!("commit", txn.commit());
        Ok(had)
    }

    fn migrations(&self) -> Result<Vec<StoredMigration>, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let table = try_io!("read", txn.open_table(MIGRATIONS));
        let mut out = Vec::new();
        for entry in try_io!("read", table.iter()) {
            let (id, value) = try_io!("read", entry);
            let row: MigrationRow = decode(value.value())?;
            out.push(StoredMigration {
                id: id.value().to_owned(),
                tenant: row.tenant,
                body: row.body,
                revision: row.revision,
            });
        }
        Ok(out)
    }

    fn put_migration(
        &self,
        id: &str,
        tenant: &str,
        body: &str,
        expected: u64,
    ) -> Result<Option<u64>, StoreError> {
        let row = MigrationRow {
            tenant: tenant.to_owned(),
            body: body.to_owned(),
            revision: expected + 1,
        };
        self.put_at_revision(MIGRATIONS, id, &row, expected)
    }

    fn directory_revision(&self) -> Result<u64, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let meta = try_io!("read", txn.open_table(META));
        Ok(try_io!("read", meta.get(DIRECTORY_REVISION)).map_or(0, |v| v.value()))
    }
}

/// A row kept at a revision, written only over the revision its writer read.
pub(super) trait Revised: serde::Serialize + serde::de::DeserializeOwned {
    /// Its revision.
    fn revision(&self) -> u64;
}

impl Revised for MigrationRow {
    fn revision(&self) -> u64 {
        self.revision
    }
}

impl Embedded {
    /// Writes `row` (at `expected + 1`) as `id` in `table` if the row there
    /// is still at `expected` (0: none), moving the directory's revision on
    /// in the same transaction; its new revision, or `None` when another
    /// writer moved it first and nothing was written.
    pub(super) fn put_at_revision<R: Revised>(
        &self,
        table: redb::TableDefinition<&str, &[u8]>,
        id: &str,
        row: &R,
        expected: u64,
    ) -> Result<Option<u64>, StoreError> {
        let txn = try_io!("write", self.db().begin_write());
        {
            let mut table = try_io!("write", txn.open_table(table));
            let held = match try_io!("write", table.get(id)) {
                Some(value) => decode::<R>(value.value())?.revision(),
                None => 0,
            };
            if held != expected {
                return Ok(None);
            }
            try_io!("write", table.insert(id, encode(row)?.as_slice()));
            bump(&txn)?;
        }
        try_io!("commit", txn.commit());
        Ok(Some(expected + 1))
    }
}

/// Moves the directory's revision on, inside `txn`.
pub(super) fn bump(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let mut meta = try_io!("write", txn.open_table(META));
    let revision = try_io!("write", meta.get(DIRECTORY_REVISION)).map_or(0, |v| v.value());
    try_io!("write", meta.insert(DIRECTORY_REVISION, revision + 1));
    Ok(())
}
