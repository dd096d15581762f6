//! The tenant directory in PostgreSQL: `pins` and `migrations`, every
//! change at the next value of `directory_revisions`.

use super::super::{Directory, Pin, StoreError, StoredMigration, now_ms};
use super::{Postgres, from_db, to_db};

impl Directory for Postgres {
    fn pins(&self) -> Result<Vec<Pin>, StoreError> {
        self.with_client("read", |client| {
            Ok(client
                .query(
                    "SELECT tenant, realm, pinned_at_ms FROM pins ORDER BY tenant",
                    &[],
                )?
                .iter()
                .map(|row| Pin {
                    tenant: row.get(0),
                    realm: row.get(1),
                    pinned_at_ms: from_db(row.get(2)),
                })
                .collect())
        })
    }

    fn pin(&self, tenant: &str, realm: &str, only_if_absent: bool) -> Result<String, StoreError> {
        self.with_client("write", |client| {
            let now = to_db(now_ms());
            let row = if only_if_absent {
                // The pin already there wins; the insert does nothing then.
                client.execute(
                    "INSERT INTO pins (tenant, realm, pinned_at_ms, revision) \
                     VALUES ($1, $2, $3, nextval('directory_revisions')) \
                     ON CONFLICT (tenant) DO NOTHING",
                    &[&tenant, &realm, &now],
                )?;
                client.query_one("SELECT realm FROM pins WHERE tenant = $1", &[&tenant])?
            } else {
                client.query_one(
                    "INSERT INTO pins (tenant, realm, pinned_at_ms, revision) \
                     VALUES ($1, $2, $3, nextval('directory_revisions')) \
                     ON CONFLICT (tenant) DO UPDATE SET realm = excluded.realm, \
                       pinned_at_ms = excluded.pinned_at_ms, revision = excluded.revision \
                     RETURNING realm",
                    &[&tenant, &realm, &now],
                )?
            };
            Ok(row.get(0))
        })
    }

    fn pin_absent(&self, pins: &[(String, String)]) -> Result<(), StoreError> {
        if pins.is_empty() {
            return Ok(());
        }
        let tenants: Vec<&str> = pins.iter().map(|(t, _)| t.as_str()).collect();
        let realms: Vec<&str> = pins.iter().map(|(_, r)| r.as_str()).collect();
        self.with_client("write", |client| {
            client.execute(
                "INSERT INTO pins (tenant, realm, pinned_at_ms, revision) \
                 SELECT u.tenant, u.realm, $3, nextval('directory_revisions') \
                 FROM unnest($1::text[], $2::text[]) AS u(tenant, realm) \
                 ON CONFLICT (tenant) DO NOTHING",
                &[&tenants, &realms, &to_db(now_ms())],
            )?;
            Ok(())
        })
    }

    fn unpin(&self, tenant: &str) -> Result<bool, StoreError> {
        self.with_client("write", |client| {
            let removed = client.execute("DELETE FROM pins WHERE tenant = $1", &[&tenant])?;
            Ok(removed > 0)
        })
    }

    fn migrations(&self) -> Result<Vec<StoredMigration>, StoreError> {
        self.with_client("read", |client| {
            Ok(client
                .query(
                    "SELECT id, tenant, body, revision FROM migrations ORDER BY id",
                    &[],
                )?
                .iter()
                .map(|row| StoredMigration {
                    id: row.get(0),
                    tenant: row.get(1),
                    body: row.get(2),
                    revision: from_db(row.get(3)),
                })
                .collect())
        })
    }

    fn put_migration(
        &self,
        id: &str,
        tenant: &str,
        body: &str,
        expected: u64,
    ) -> Result<Option<u64>, StoreError> {
        let next = to_db(expected + 1);
        self.with_client("write", |client| {
            let written = if expected == 0 {
                client.execute(
                    "INSERT INTO migrations (id, tenant, body, revision, directory_revision) \
                     VALUES ($1, $2, $3, 1, nextval('directory_revisions')) \
                     ON CONFLICT (id) DO NOTHING",
                    &[&id, &tenant, &body],
                )?
            } else {
                client.execute(
                    "UPDATE migrations SET body = $2, revision = $3, \
                       directory_revision = nextval('directory_revisions') \
                     WHERE id = $1 AND revision = $4",
                    &[&id, &body, &next, &to_db(expected)],
                )?
            };
            Ok((written == 1).then_some(expected + 1))
        })
    }

    fn directory_revision(&self) -> Result<u64, StoreError> {
        self.with_client("read", |client| {
            let revision: i64 = client
                .query_one(
                    "SELECT greatest((SELECT max(revision) FROM pins), \
                       (SELECT max(directory_revision) FROM migrations), \
                       (SELECT max(directory_revision) FROM operations), 0)",
                    &[],
                )?
                .get(0);
            Ok(from_db(revision))
        })
    }
}
