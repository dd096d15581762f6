//! Recovery's records in redb: `operations` (id → body and revision, which
//! move the directory's revision on too) and `audit` (number → entry, only
//! ever appended to).

use redb::{ReadableDatabase, ReadableTable};

use super::super::{AuditEntry, Recovery, StoreError, StoredOperation, now_ms};
use super::directory::Revised;
use super::{AUDIT, Embedded, OPERATIONS, decode, encode, io};

#[derive(serde::Serialize, serde::Deserialize)]
struct OperationRow {
    body: String,
    revision: u64,
}

impl Revised for OperationRow {
    fn revision(&self) -> u64 {
        self.revision
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct AuditRow {
    at_ms: u64,
    entry: String,
}

impl Recovery for Embedded {
    fn operations(&self) -> Result<Vec<StoredOperation>, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let table = try_io!("read", txn.open_table(OPERATIONS));
        let mut out = Vec::new();
        for entry in try_io!("read", table.iter()) {
            let (id, value) = try_io!("read", entry);
            let row: OperationRow = decode(value.value())?;
            out.push(StoredOperation {
                id: id.value().to_owned(),
                body: row.body,
                revision: row.revision,
            });
        }
        Ok(out)
    }

    fn put_operation(
        &self,
        id: &str,
        body: &str,
        expected: u64,
    ) -> Result<Option<u64>, StoreError> {
        let row = OperationRow {
            body: body.to_owned(),
            revision: expected + 1,
        };
        self.put_at_revision(OPERATIONS, id, &row, expected)
    }

    fn append_audit(&self, entry: &str) -> Result<u64, StoreError> {
        let txn = try_io!("write", self.db().begin_write());
        let id = {
            let mut table = try_io!("write", txn.open_table(AUDIT));
            let id = try_io!("write", table.last()).map_or(0, |(k, _)| k.value()) + 1;
            let row = AuditRow {
                at_ms: now_ms(),
                entry: entry.to_owned(),
            };
            try_io!("write", table.insert(id, encode(&row)?.as_slice()));
            id
        };
        try_io!("commit", txn.commit());
        Ok(id)
    }

    fn audit(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let table = try_io!("read", txn.open_table(AUDIT));
        let mut out = Vec::new();
        for entry in try_io!("read", table.range(after.saturating_add(1)..)).take(limit) {
            let (id, value) = try_io!("read", entry);
            let row: AuditRow = decode(value.value())?;
            out.push(AuditEntry {
                id: id.value(),
                at_ms: row.at_ms,
                entry: row.entry,
            });
        }
        Ok(out)
    }
}
