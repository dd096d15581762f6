//! Records and the change log in PostgreSQL: `records`, `changes`, `events`
//! and `log`. A batch costs a fixed number of statements whatever its size
//! (arrays in, `unnest` out), all inside the transaction that holds `log`.

use std::collections::{HashMap, HashSet};

use postgres::Transaction;
use postgres::fallible_iterator::FallibleIterator;

use super::super::{
    Change, ChangeKind, EventOutcome, EventWrite, InvalidatedKey, Op, RecordId, Records,
    ScanVisitor, StoreError, StoredRecord, now_ms,
};
use super::{Failed, Postgres, from_db, to_db};

impl Records for Postgres {
    fn apply(&self, events: &[EventWrite]) -> Result<Vec<EventOutcome>, StoreError> {
        let outcomes = self.with_client("write", |client| {
            let mut txn = client.transaction()?;
            let outcomes = apply_in(&mut txn, &self.channel, events)?;
            txn.commit()?;
            Ok(outcomes)
        })?;
        self.grew(&outcomes);
        Ok(outcomes)
    }

    fn get(&self, id: &RecordId) -> Result<Option<StoredRecord>, StoreError> {
        self.with_client("read", |client| {
            let row = client.query_opt(
                "SELECT body, version, seq, committed_at_ms FROM records \
                 WHERE record_type = $1 AND tenant = $2 AND key = $3",
                &[&id.record_type, &id.tenant, &id.key],
            )?;
            Ok(row.map(|row| record_of(&row, 0)))
        })
    }

    fn records(
        &self,
        record_type: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<(RecordId, StoredRecord)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_client("read", |client| {
            let rows = match after {
                Some((tenant, key)) => client.query(
                    "SELECT tenant, key, body, version, seq, committed_at_ms FROM records \
                     WHERE record_type = $1 AND (tenant, key) > ($2, $3) AND body IS NOT NULL \
                     ORDER BY tenant, key LIMIT $4",
                    &[&record_type, &tenant, &key, &limit],
                )?,
                None => client.query(
                    "SELECT tenant, key, body, version, seq, committed_at_ms FROM records \
                     WHERE record_type = $1 AND body IS NOT NULL \
                     ORDER BY tenant, key LIMIT $2",
                    &[&record_type, &limit],
                )?,
            };
            Ok(rows
                .iter()
                .map(|row| {
                    let id = RecordId {
                        record_type: record_type.to_owned(),
                        tenant: row.get(0),
                        key: row.get(1),
                    };
                    (id, record_of(row, 2))
                })
                .collect())
        })
    }

    fn scan(&self, visit: &mut ScanVisitor<'_>) -> Result<u64, StoreError> {
        /// Rows fetched from the portal at a time.
        const PAGE: i32 = 1_000;
        let mut started = false;
        self.with_client("scan", |client| {
            // Records seen once must not be seen again: after the first
            // row, a lost connection fails the scan instead of retrying it.
            let fail = |started: bool, e: postgres::Error| {
                if started {
                    Failed::Store(StoreError::Io {
                        operation: "scan",
                        reason: e.to_string(),
                    })
                } else {
                    Failed::Db(e)
                }
            };
            let mut txn = client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let last: i64 = txn.query_one("SELECT last_seq FROM log", &[])?.get(0);
            let portal = txn.bind(
                "SELECT record_type, tenant, key, body, version, seq, committed_at_ms \
                 FROM records ORDER BY record_type, tenant, key",
                &[],
            )?;
            loop {
                let rows = txn
                    .query_portal(&portal, PAGE)
                    .map_err(|e| fail(started, e))?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    started = true;
                    let id = RecordId {
                        record_type: row.get(0),
                        tenant: row.get(1),
                        key: row.get(2),
                    };
                    visit(id, record_of(row, 3)).map_err(Failed::Store)?;
                }
            }
            txn.commit().map_err(|e| fail(started, e))?;
            Ok(from_db(last))
        })
    }

    fn changes_within(
        &self,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Change>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_client("read", |client| {
            let after = to_db(after);
            // Rows stream in; reading stops at the byte bound.
            let mut rows = client.query_raw(
                "SELECT seq, record_type, tenant, key, version, kind, body, source, event_id, \
                        occurred_at_ms, committed_at_ms \
                 FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                [&after as &dyn postgres::types::ToSql, &limit],
            )?;
            let mut out = Vec::new();
            let mut bytes = 0usize;
            while let Some(row) = rows.next()? {
                if bytes >= max_bytes {
                    break;
                }
                let change = change_of(&row)?;
                bytes += weight(&change);
                out.push(change);
            }
            Ok(out)
        })
    }

    fn instance(&self) -> Result<String, StoreError> {
        self.with_client("read", |client| {
            Ok(client.query_one("SELECT instance FROM log", &[])?.get(0))
        })
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        self.with_client("read", |client| {
            let last: i64 = client.query_one("SELECT last_seq FROM log", &[])?.get(0);
            Ok(from_db(last))
        })
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.grown.subscribe()
    }

    fn first_seq(&self) -> Result<u64, StoreError> {
        self.with_client("read", |client| {
            let first: i64 = client.query_one("SELECT first_seq FROM log", &[])?.get(0);
            Ok(from_db(first))
        })
    }

    fn tenant_records(
        &self,
        record_type: &str,
        tenant: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, StoredRecord)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_client("read", |client| {
            let rows = client.query(
                "SELECT key, body, version, seq, committed_at_ms FROM records \
                 WHERE record_type = $1 AND tenant = $2 AND key > $3 ORDER BY key LIMIT $4",
                &[&record_type, &tenant, &after.unwrap_or(""), &limit],
            )?;
            // `key > ''` would skip an empty key, which keys cannot be.
            Ok(rows
                .iter()
                .map(|row| (row.get(0), record_of(row, 1)))
                .collect())
        })
    }

    fn purge_tenant(
        &self,
        record_type: &str,
        tenant: &str,
        limit: usize,
    ) -> Result<Vec<(RecordId, u64)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let purged = self.with_client("write", |client| {
            let mut txn = client.transaction()?;
            let mut seq = lock_log(&mut txn)?;
            let keys: Vec<String> = txn
                .query(
                    "DELETE FROM records WHERE (record_type, tenant, key) IN \
                       (SELECT record_type, tenant, key FROM records \
                        WHERE record_type = $1 AND tenant = $2 ORDER BY key LIMIT $3) \
                     RETURNING key",
                    &[&record_type, &tenant, &limit],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect();
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let committed_at_ms = now_ms();
            let mut log = LogRows::default();
            let mut purged = Vec::with_capacity(keys.len());
            for key in keys {
                seq += 1;
                let id = RecordId {
                    record_type: record_type.to_owned(),
                    tenant: tenant.to_owned(),
                    key,
                };
                // Whatever version a follower holds, it drops it.
                let invalidated = InvalidatedKey {
                    id: id.clone(),
                    version: None,
                    occurred_at_ms: None,
                };
                log.push(&Change::invalidation(&invalidated, seq, committed_at_ms));
                purged.push((id, seq));
            }
            log.insert(&mut txn)?;
            advance_log(&mut txn, &self.channel, seq)?;
            txn.commit()?;
            Ok(purged)
        })?;
        if let Some((_, last)) = purged.last() {
            self.grew_to(*last);
        }
        Ok(purged)
    }

    fn redact_changes(&self, tenant: &str) -> Result<u64, StoreError> {
        self.with_client("write", |client| {
            Ok(client.execute(
                "UPDATE changes SET kind = 'invalidate', body = NULL \
                 WHERE tenant = $1 AND kind IN ('upsert', 'delete')",
                &[&tenant],
            )?)
        })
    }

    fn log_erasure(&self, tenant: &str) -> Result<u64, StoreError> {
        let seq = self.with_client("write", |client| {
            let mut txn = client.transaction()?;
            let seq = lock_log(&mut txn)? + 1;
            let mut log = LogRows::default();
            log.push(&Change::erasure(tenant, seq, now_ms()));
            log.insert(&mut txn)?;
            advance_log(&mut txn, &self.channel, seq)?;
            txn.commit()?;
            Ok(seq)
        })?;
        self.grew_to(seq);
        Ok(seq)
    }

    fn compact(&self) -> Result<(), StoreError> {
        self.with_client("compact", |client| {
            // Outside a transaction, as VACUUM must be; each table rewritten
            // whole, so removed rows leave its files.
            client.batch_execute("VACUUM FULL records, changes, dead_letters, staged")?;
            Ok(())
        })
    }

    fn log_invalidations(&self, keys: &[InvalidatedKey]) -> Result<Vec<u64>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let seqs = self.with_client("write", |client| {
            let mut txn = client.transaction()?;
            let committed_at_ms = now_ms();
            let mut seq = lock_log(&mut txn)?;
            let mut log = LogRows::default();
            let mut seqs = Vec::with_capacity(keys.len());
            for key in keys {
                seq += 1;
                log.push(&Change::invalidation(key, seq, committed_at_ms));
                seqs.push(seq);
            }
            log.insert(&mut txn)?;
            advance_log(&mut txn, &self.channel, seq)?;
            txn.commit()?;
            Ok(seqs)
        })?;
        if let Some(&last) = seqs.last() {
            self.grew_to(last);
        }
        Ok(seqs)
    }

    fn trim_changes(&self, keep: u64) -> Result<u64, StoreError> {
        self.with_client("write", |client| {
            let mut txn = client.transaction()?;
            let row = txn.query_one("SELECT last_seq, first_seq FROM log FOR UPDATE", &[])?;
            let (last, first) = (from_db(row.get(0)), from_db(row.get(1)));
            let cut = last.saturating_sub(keep);
            if cut < first {
                return Ok(0);
            }
            txn.execute(
                "DELETE FROM changes WHERE seq >= $1 AND seq <= $2",
                &[&to_db(first), &to_db(cut)],
            )?;
            txn.execute("UPDATE log SET first_seq = $1", &[&to_db(cut + 1)])?;
            txn.commit()?;
            Ok(cut + 1 - first)
        })
    }
}

/// Locks the log's one row until the transaction ends and returns the last
/// sequence number: from here on, this transaction alone hands out numbers.
pub(super) fn lock_log(txn: &mut Transaction<'_>) -> Result<u64, postgres::Error> {
    let last: i64 = txn
        .query_one("SELECT last_seq FROM log FOR UPDATE", &[])?
        .get(0);
    Ok(from_db(last))
}

/// Moves the log's end to `last` and tells followers on commit.
fn advance_log(txn: &mut Transaction<'_>, channel: &str, last: u64) -> Result<(), postgres::Error> {
    txn.execute("UPDATE log SET last_seq = $1", &[&to_db(last)])?;
    txn.execute("SELECT pg_notify($1, $2)", &[&channel, &last.to_string()])?;
    Ok(())
}

/// Applies `events` inside `txn` (see [`Records::apply`]).
pub(super) fn apply_in(
    txn: &mut Transaction<'_>,
    channel: &str,
    events: &[EventWrite],
) -> Result<Vec<EventOutcome>, Failed> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // Event ids first, before the log's lock: their unique index settles
    // races by itself (a second writer of an id waits for the first to
    // commit, then finds it), so the lock is held only for what needs it.
    // An event that is in the store afterwards leaves the dead letters.
    let sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    txn.execute(
        "DELETE FROM dead_letters d USING unnest($1::text[], $2::text[]) AS u(source, event_id) \
         WHERE d.source = u.source AND d.event_id = u.event_id",
        &[&sources, &ids],
    )?;
    // The events not seen before; within the batch, the first of an id.
    let fresh: HashSet<(String, String)> = txn
        .query(
            "INSERT INTO events (source, event_id) SELECT * FROM unnest($1::text[], $2::text[]) \
             ON CONFLICT DO NOTHING RETURNING source, event_id",
            &[&sources, &ids],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();

    // From here on this transaction alone writes records and the log.
    let committed_at_ms = now_ms();
    let mut seq = lock_log(txn)?;
    let start = seq;

    // The versions now held for every record the new events touch.
    let mut first_of: HashSet<(&str, &str)> = HashSet::new();
    let is_new: Vec<bool> = events
        .iter()
        .map(|e| {
            first_of.insert((&e.source, &e.event_id))
                && fresh.contains(&(e.source.clone(), e.event_id.clone()))
        })
        .collect();
    let touched: Vec<&RecordId> = events
        .iter()
        .zip(&is_new)
        .filter(|(_, new)| **new)
        .flat_map(|(e, _)| e.ops.iter().map(Op::id))
        .collect();
    let mut held: HashMap<RecordId, u64> = HashMap::new();
    if !touched.is_empty() {
        let types: Vec<&str> = touched.iter().map(|id| id.record_type.as_str()).collect();
        let tenants: Vec<&str> = touched.iter().map(|id| id.tenant.as_str()).collect();
        let keys: Vec<&str> = touched.iter().map(|id| id.key.as_str()).collect();
        for row in txn.query(
            "SELECT r.record_type, r.tenant, r.key, r.version FROM records r \
             JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[], $3::text[])) \
               AS u(record_type, tenant, key) \
             ON r.record_type = u.record_type AND r.tenant = u.tenant AND r.key = u.key",
            &[&types, &tenants, &keys],
        )? {
            let id = RecordId {
                record_type: row.get(0),
                tenant: row.get(1),
                key: row.get(2),
            };
            held.insert(id, from_db(row.get(3)));
        }
    }

    let mut outcomes = Vec::with_capacity(events.len());
    let mut log = LogRows::default();
    // The last change to each record wins its row.
    let mut rows: HashMap<&RecordId, (Option<&str>, u64, u64)> = HashMap::new();
    for (event, new) in events.iter().zip(is_new) {
        if !new {
            outcomes.push(EventOutcome::Duplicate);
            continue;
        }
        let mut seqs = Vec::new();
        let mut stale = 0;
        for op in &event.ops {
            let id = op.id();
            if !event.overwrite && held.get(id).is_some_and(|&v| v >= op.version()) {
                stale += 1;
                continue;
            }
            held.insert(id.clone(), op.version());
            seq += 1;
            let body = match op {
                Op::Upsert { body, .. } => Some(body.as_str()),
                Op::Delete { .. } => None,
            };
            rows.insert(id, (body, op.version(), seq));
            log.push(&Change::of(event, op, seq, committed_at_ms));
            seqs.push(seq);
        }
        outcomes.push(EventOutcome::Applied { seqs, stale });
    }
    if seq == start {
        return Ok(outcomes);
    }

    let mut types = Vec::with_capacity(rows.len());
    let mut tenants = Vec::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    let mut versions = Vec::with_capacity(rows.len());
    let mut bodies = Vec::with_capacity(rows.len());
    let mut row_seqs = Vec::with_capacity(rows.len());
    for (id, (body, version, seq)) in &rows {
        types.push(id.record_type.as_str());
        tenants.push(id.tenant.as_str());
        keys.push(id.key.as_str());
        versions.push(to_db(*version));
        bodies.push(*body);
        row_seqs.push(to_db(*seq));
    }
    txn.execute(
        "INSERT INTO records (record_type, tenant, key, version, body, seq, committed_at_ms) \
         SELECT u.*, $7 FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], \
                                   $6::int8[]) AS u \
         ON CONFLICT (record_type, tenant, key) DO UPDATE SET version = excluded.version, \
           body = excluded.body, seq = excluded.seq, committed_at_ms = excluded.committed_at_ms",
        &[
            &types,
            &tenants,
            &keys,
            &versions,
            &bodies,
            &row_seqs,
            &to_db(committed_at_ms),
        ],
    )?;
    log.insert(txn)?;
    advance_log(txn, channel, seq)?;
    Ok(outcomes)
}

/// Changes on their way into `changes`, column by column.
#[derive(Default)]
struct LogRows {
    seqs: Vec<i64>,
    types: Vec<String>,
    tenants: Vec<String>,
    keys: Vec<String>,
    versions: Vec<i64>,
    kinds: Vec<&'static str>,
    bodies: Vec<Option<String>>,
    sources: Vec<String>,
    event_ids: Vec<String>,
    occurred: Vec<i64>,
    committed: Vec<i64>,
}

impl LogRows {
    fn push(&mut self, change: &Change) {
        let (kind, body) = match &change.kind {
            ChangeKind::Upsert { body } => ("upsert", Some(body.clone())),
            ChangeKind::Delete => ("delete", None),
            ChangeKind::Invalidate => ("invalidate", None),
            ChangeKind::Erase => ("erase", None),
        };
        self.seqs.push(to_db(change.seq));
        self.types.push(change.record_type.clone());
        self.tenants.push(change.tenant.clone());
        self.keys.push(change.key.clone());
        self.versions.push(to_db(change.version));
        self.kinds.push(kind);
        self.bodies.push(body);
        self.sources.push(change.source.clone());
        self.event_ids.push(change.event_id.clone());
        self.occurred.push(to_db(change.occurred_at_ms));
        self.committed.push(to_db(change.committed_at_ms));
    }

    fn insert(&self, txn: &mut Transaction<'_>) -> Result<(), postgres::Error> {
        txn.execute(
            "INSERT INTO changes (seq, record_type, tenant, key, version, kind, body, source, \
                                  event_id, occurred_at_ms, committed_at_ms) \
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[], \
                                  $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[], \
                                  $11::int8[])",
            &[
                &self.seqs,
                &self.types,
                &self.tenants,
                &self.keys,
                &self.versions,
                &self.kinds,
                &self.bodies,
                &self.sources,
                &self.event_ids,
                &self.occurred,
                &self.committed,
            ],
        )?;
        Ok(())
    }
}

/// The record in `row`'s columns from `at`: body, version, seq, committed at.
fn record_of(row: &postgres::Row, at: usize) -> StoredRecord {
    StoredRecord {
        body: row.get(at),
        version: from_db(row.get(at + 1)),
        seq: from_db(row.get(at + 2)),
        committed_at_ms: from_db(row.get(at + 3)),
    }
}

fn change_of(row: &postgres::Row) -> Result<Change, StoreError> {
    let kind: &str = row.get(5);
    let body: Option<String> = row.get(6);
    let kind = match (kind, body) {
        ("upsert", Some(body)) => ChangeKind::Upsert { body },
        ("delete", _) => ChangeKind::Delete,
        ("invalidate", _) => ChangeKind::Invalidate,
        ("erase", _) => ChangeKind::Erase,
        (other, _) => {
            return Err(StoreError::Corrupt(format!(
                "a change of kind {other:?} (upsert with a body, delete, invalidate or erase expected)"
            )));
        }
    };
    Ok(Change {
        seq: from_db(row.get(0)),
        record_type: row.get(1),
        tenant: row.get(2),
        key: row.get(3),
        version: from_db(row.get(4)),
        kind,
        source: row.get(7),
        event_id: row.get(8),
        occurred_at_ms: from_db(row.get(9)),
        committed_at_ms: from_db(row.get(10)),
    })
}

/// About what a change weighs encoded, as the byte bound of a read counts it.
fn weight(change: &Change) -> usize {
    let body = match &change.kind {
        ChangeKind::Upsert { body } => body.len(),
        ChangeKind::Delete | ChangeKind::Invalidate | ChangeKind::Erase => 0,
    };
    body + change.record_type.len()
        + change.tenant.len()
        + change.key.len()
        + change.source.len()
        + change.event_id.len()
        + 160
}
