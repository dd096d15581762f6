//! Recovery's records in PostgreSQL: `operations` (every change at the next
//! value of `directory_revisions`) and `audit` (a trigger refuses updates
//! and deletes).

use super::super::{AuditEntry, Recovery, StoreError, StoredOperation, now_ms};
use super::{Postgres, from_db, to_db};

impl Recovery for Postgres {
    fn operations(&self) -> Result<Vec<StoredOperation>, StoreError> {
        self.with_client("read", |client| {
            Ok(client
                .query("SELECT id, body, revision FROM operations ORDER BY id", &[])?
                .iter()
                .map(|row| StoredOperation {
                    id: row.get(0),
                    body: row.get(1),
                    revision: from_db(row.get(2)),
                })
                .collect())
        })
    }

    fn put_operation(
        &self,
        id: &str,
        body: &str,
        expected: u64,
    ) -> Result<Option<u64>, StoreError> {
        let next = to_db(expected + 1);
        self.with_client("write", |client| {
            let written = if expected == 0 {
                client.execute(
                    "INSERT INTO operations (id, body, revision, directory_revision) \
                     VALUES ($1, $2, 1, nextval('directory_revisions')) \
                     ON CONFLICT (id) DO NOTHING",
                    &[&id, &body],
                )?
            } else {
                client.execute(
                    "UPDATE operations SET body = $2, revision = $3, \
                       directory_revision = nextval('directory_revisions') \
                     WHERE id = $1 AND revision = $4",
                    &[&id, &body, &next, &to_db(expected)],
                )?
            };
            Ok((written == 1).then_some(expected + 1))
        })
    }

    fn append_audit(&self, entry: &str) -> Result<u64, StoreError> {
        self.with_client("write", |client| {
            let id: i64 = client
                .query_one(
                    "INSERT INTO audit (at_ms, entry) VALUES ($1, $2) RETURNING id",
                    &[&to_db(now_ms()), &entry],
                )?
                .get(0);
            Ok(from_db(id))
        })
    }

    fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_client("read", |client| {
            Ok(client
                .query(
                    "SELECT id, at_ms, entry FROM audit WHERE id > $1 ORDER BY id LIMIT $2",
                    &[&to_db(after), &limit],
                )?
                .iter()
                .map(|row| AuditEntry {
                    id: from_db(row.get(0)),
                    at_ms: from_db(row.get(1)),
                    entry: row.get(2),
                })
                .collect())
        })
    }
}
