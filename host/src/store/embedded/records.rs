//! Records and the change log in redb: `records`, `changes`, `events` and `meta`.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::super::codec::{decode_record, decode_record_key, encode_record, event_key, record_key};
use super::super::{
    Change, ChangeKind, EventOutcome, EventWrite, InvalidatedKey, Op, RecordId, Records,
    ScanVisitor, StoreError, StoredRecord, now_ms,
};
use super::{
    CHANGES, DEAD_LETTERS, EVENTS, Embedded, FIRST_SEQ, INSTANCE, LAST_SEQ, META, RECORDS, io,
};

impl Records for Embedded {
    fn apply(&self, events: &[EventWrite]) -> Result<Vec<EventOutcome>, StoreError> {
        let txn = try_io!("write", self.db().begin_write());
        let outcomes = apply_in(&txn, events)?;
        try_io!("commit", txn.commit());
        self.grew(&outcomes);
        Ok(outcomes)
    }

    fn get(&self, id: &RecordId) -> Result<Option<StoredRecord>, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let records = try_io!("read", txn.open_table(RECORDS));
        match try_io!("read", records.get(record_key(id).as_slice())) {
            Some(bytes) => decode_record(bytes.value()).map(Some),
            None => Ok(None),
        }
    }

    fn records(
        &self,
        record_type: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(RecordId, StoredRecord)>, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let records = try_io!("read", txn.open_table(RECORDS));
        // Keys are `type NUL tenant NUL key`: the record type's range starts
        // at `type NUL` and ends before `type \x01`.
        let mut start = record_type.as_bytes().to_vec();
        start.push(0);
        let mut end = record_type.as_bytes().to_vec();
        end.push(1);
        let from = match after {
            Some((tenant, key)) => {
                let mut from = record_key(&RecordId {
                    record_type: record_type.to_owned(),
                    tenant: tenant.to_owned(),
                    key: key.to_owned(),
                });
                // Just past it: the smallest longer key.
                from.push(0);
                from
            }
            None => start,
        };
        let mut out = Vec::new();
        for entry in try_io!("read", records.range(from.as_slice()..end.as_slice())) {
            let (k, value) = try_io!("read", entry);
            let record = decode_record(value.value())?;
            if record.body.is_none() {
                continue;
            }
            out.push((decode_record_key(k.value())?, record));
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    fn scan(&self, visit: &mut ScanVisitor<'_>) -> Result<u64, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let meta = try_io!("read", txn.open_table(META));
        let last = try_io!("read", meta.get(LAST_SEQ)).map_or(0, |v| v.value());
        let records = try_io!("read", txn.open_table(RECORDS));
        for entry in try_io!("read", records.iter()) {
            let (k, value) = try_io!("read", entry);
            visit(decode_record_key(k.value())?, decode_record(value.value())?)?;
        }
        Ok(last)
    }

    fn changes_within(
        &self,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let changes = try_io!("read", txn.open_table(CHANGES));
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for entry in try_io!("read", changes.range(after.saturating_add(1)..)).take(limit) {
            if bytes >= max_bytes {
                break;
            }
            let (_, value) = try_io!("read", entry);
            bytes += value.value().len();
            out.push(
                serde_json::from_slice(value.value())
                    .map_err(|e| StoreError::Corrupt(format!("a change does not decode: {e}")))?,
            );
        }
        Ok(out)
    }

    fn instance(&self) -> Result<String, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let meta = try_io!("read", txn.open_table(META));
        Ok(try_io!("read", meta.get(INSTANCE))
            .map_or_else(String::new, |v| format!("{:016x}", v.value())))
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let meta = try_io!("read", txn.open_table(META));
        Ok(try_io!("read", meta.get(LAST_SEQ)).map_or(0, |v| v.value()))
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.grown.subscribe()
    }

    fn first_seq(&self) -> Result<u64, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let meta = try_io!("read", txn.open_table(META));
        Ok(try_io!("read", meta.get(FIRST_SEQ)).map_or(1, |v| v.value()))
    }

    fn tenant_records(
        &self,
        record_type: &str,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, StoredRecord)>, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let records = try_io!("read", txn.open_table(RECORDS));
        let (start, end) = tenant_range(record_type, tenant, after);
        let mut out = Vec::new();
        for entry in try_io!("read", records.range(start.as_slice()..end.as_slice())).take(limit) {
            let (k, value) = try_io!("read", entry);
            out.push((
                decode_record_key(k.value())?.key,
                decode_record(value.value())?,
            ));
        }
        Ok(out)
    }

    fn purge_tenant(
        &self,
        record_type: &str,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<(RecordId, u64)>, StoreError> {
        let committed_at_ms = now_ms();
        let txn = try_io!("write", self.db().begin_write());
        let mut purged = Vec::new();
        {
            let mut records = try_io!("write", txn.open_table(RECORDS));
            let mut changes = try_io!("write", txn.open_table(CHANGES));
            let mut meta = try_io!("write", txn.open_table(META));
            let (start, end) = tenant_range(record_type, tenant, None);
            let mut doomed = Vec::new();
            for entry in
                try_io!("write", records.range(start.as_slice()..end.as_slice())).take(limit)
            {
                let (k, _) = try_io!("write", entry);
                doomed.push(k.value().to_vec());
            }
            let mut seq = try_io!("write", meta.get(LAST_SEQ)).map_or(0, |v| v.value());
            for k in doomed {
                try_io!("write", records.remove(k.as_slice()));
                let id = decode_record_key(&k)?;
                seq += 1;
                let change = Change::invalidation(
                    &InvalidatedKey {
                        id: id.clone(),
                        // Whatever version a follower holds, it drops it.
                        version: None,
                        occurred_at_ms: None,
                    },
                    seq,
                    committed_at_ms,
                );
                try_io!(
                    "write",
                    changes.insert(seq, encode_change(&change)?.as_slice())
                );
                purged.push((id, seq));
            }
            try_io!("write", meta.insert(LAST_SEQ, seq));
        }
        try_io!("commit", txn.commit());
        if let Some((_, last)) = purged.last() {
            self.grown.send_replace(*last);
        }
        Ok(purged)
    }

    fn redact_changes(&self, tenant: &str) -> Result<u64, StoreError> {
        let txn = try_io!("write", self.db().begin_write());
        let mut rewritten = 0;
        {
            let mut changes = try_io!("write", txn.open_table(CHANGES));
            let mut theirs = Vec::new();
            for entry in try_io!("write", changes.iter()) {
                let (seq, value) = try_io!("write", entry);
                let change: Change = serde_json::from_slice(value.value())
                    .map_err(|e| StoreError::Corrupt(format!("a change does not decode: {e}")))?;
                if change.tenant == tenant
                    && matches!(change.kind, ChangeKind::Upsert { .. } | ChangeKind::Delete)
                {
                    theirs.push((seq.value(), change));
                }
            }
            for (seq, mut change) in theirs {
                change.kind = ChangeKind::Invalidate;
                try_io!(
                    "write",
                    changes.insert(seq, encode_change(&change)?.as_slice())
                );
                rewritten += 1;
            }
        }
        try_io!("commit", txn.commit());
        Ok(rewritten)
    }

    fn log_invalidations(&self, keys: &[InvalidatedKey]) -> Result<Vec<u64>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let committed_at_ms = now_ms();
        let txn = try_io!("write", self.db().begin_write());
        let mut seqs = Vec::with_capacity(keys.len());
        {
            let mut changes = try_io!("write", txn.open_table(CHANGES));
            let mut meta = try_io!("write", txn.open_table(META));
            let mut seq = try_io!("write", meta.get(LAST_SEQ)).map_or(0, |v| v.value());
            for key in keys {
                seq += 1;
                let change = Change::invalidation(key, seq, committed_at_ms);
                let json = serde_json::to_vec(&change)
                    .map_err(|e| StoreError::Corrupt(format!("cannot encode a change: {e}")))?;
                try_io!("write", changes.insert(seq, json.as_slice()));
                seqs.push(seq);
            }
            try_io!("write", meta.insert(LAST_SEQ, seq));
        }
        try_io!("commit", txn.commit());
        if let Some(&last) = seqs.last() {
            self.grown.send_replace(last);
        }
        Ok(seqs)
    }

    fn log_erasure(&self, tenant: &str) -> Result<u64, StoreError> {
        let txn = try_io!("write", self.db().begin_write());
        let seq = {
            let mut changes = try_io!("write", txn.open_table(CHANGES));
            let mut meta = try_io!("write", txn.open_table(META));
            let seq = try_io!("write", meta.get(LAST_SEQ)).map_or(0, |v| v.value()) + 1;
            let change = Change::erasure(tenant, seq, now_ms());
            try_io!(
                "write",
                changes.insert(seq, encode_change(&change)?.as_slice())
            );
            try_io!("write", meta.insert(LAST_SEQ, seq));
            seq
        };
        try_io!("commit", txn.commit());
        self.grown.send_replace(seq);
        Ok(seq)
    }

    fn compact(&self) -> Result<(), StoreError> {
        self.compact_file()
    }

    fn trim_changes(&self, keep: u64) -> Result<u64, StoreError> {
        let txn = try_io!("write", self.db().begin_write());
        let removed = {
            let mut changes = try_io!("write", txn.open_table(CHANGES));
            let mut meta = try_io!("write", txn.open_table(META));
            let last = try_io!("write", meta.get(LAST_SEQ)).map_or(0, |v| v.value());
            let first = try_io!("write", meta.get(FIRST_SEQ)).map_or(1, |v| v.value());
            let cut = last.saturating_sub(keep);
            if cut < first {
                0
            } else {
                try_io!("write", changes.retain_in(first..=cut, |_, _| false));
                try_io!("write", meta.insert(FIRST_SEQ, cut + 1));
                cut + 1 - first
            }
        };
        try_io!("commit", txn.commit());
        Ok(removed)
    }
}

/// The table keys of `tenant`'s records of `record_type`, after `after`'s
/// when given: from `type NUL tenant NUL` to before `type NUL tenant \x01`.
fn tenant_range(record_type: &str, tenant: &str, after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let id = |key: &str| RecordId {
        record_type: record_type.to_owned(),
        tenant: tenant.to_owned(),
        key: key.to_owned(),
    };
    let mut start = record_key(&id(after.unwrap_or("")));
    if after.is_some() {
        // Just past it: the smallest longer key.
        start.push(0);
    }
    let mut end = record_key(&id(""));
    end.pop();
    end.push(1);
    (start, end)
}

fn encode_change(change: &Change) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(change)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode a change: {e}")))
}

/// Applies `events` within the write transaction `txn` (see [`Records::apply`]).
pub(super) fn apply_in(
    txn: &redb::WriteTransaction,
    events: &[EventWrite],
) -> Result<Vec<EventOutcome>, StoreError> {
    let committed_at_ms = now_ms();
    let mut outcomes = Vec::with_capacity(events.len());
    {
        let mut records = try_io!("write", txn.open_table(RECORDS));
        let mut changes = try_io!("write", txn.open_table(CHANGES));
        let mut seen = try_io!("write", txn.open_table(EVENTS));
        let mut meta = try_io!("write", txn.open_table(META));
        let mut letters = try_io!("write", txn.open_table(DEAD_LETTERS));
        // An event that is in the store leaves the dead letters in the same
        // transaction (most batches find none to look for).
        let any_letters = try_io!("write", letters.len()) > 0;
        let mut seq = try_io!("write", meta.get(LAST_SEQ)).map_or(0, |v| v.value());
        for event in events {
            let ek = event_key(&event.source, &event.event_id);
            if any_letters {
                try_io!("write", letters.remove(ek.as_slice()));
            }
            if try_io!("write", seen.get(ek.as_slice())).is_some() {
                outcomes.push(EventOutcome::Duplicate);
                continue;
            }
            try_io!("write", seen.insert(ek.as_slice(), ()));
            let mut seqs = Vec::new();
            let mut stale = 0;
            for op in &event.ops {
                let rk = record_key(op.id());
                let current = match try_io!("write", records.get(rk.as_slice())) {
                    Some(bytes) => Some(decode_record(bytes.value())?),
                    None => None,
                };
                if !event.overwrite && current.is_some_and(|c| c.version >= op.version()) {
                    stale += 1;
                    continue;
                }
                seq += 1;
                let record = StoredRecord {
                    body: match op {
                        Op::Upsert { body, .. } => Some(body.clone()),
                        Op::Delete { .. } => None,
                    },
                    version: op.version(),
                    seq,
                    committed_at_ms,
                };
                try_io!(
                    "write",
                    records.insert(rk.as_slice(), encode_record(&record).as_slice())
                );
                let change = Change::of(event, op, seq, committed_at_ms);
                let json = serde_json::to_vec(&change)
                    .map_err(|e| StoreError::Corrupt(format!("cannot encode a change: {e}")))?;
                try_io!("write", changes.insert(seq, json.as_slice()));
                seqs.push(seq);
            }
            outcomes.push(EventOutcome::Applied { seqs, stale });
        }
        try_io!("write", meta.insert(LAST_SEQ, seq));
    }
    Ok(outcomes)
}
