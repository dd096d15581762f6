//! Snapshot batches in PostgreSQL: `snapshots` (id → batch) and `staged`
//! (id, position → event). Staging and committing lock the batch's row, so
//! two nodes racing to commit one batch apply it once: the second finds it
//! gone.

use super::super::{EventOutcome, EventWrite, Snapshot, Snapshots, StoreError, VerifySnapshot};
use super::records::apply_in;
use super::{Failed, Postgres, decode, encode, to_db};

impl Snapshots for Postgres {
    fn open_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let text = encode(snapshot)?;
        self.with_client("write", |client| {
            client.execute(
                "INSERT INTO snapshots (id, snapshot) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot",
                &[&snapshot.id, &text],
            )?;
            Ok(())
        })
    }

    fn snapshot(&self, id: &str) -> Result<Option<Snapshot>, StoreError> {
        self.with_client("read", |client| {
            match client.query_opt("SELECT snapshot FROM snapshots WHERE id = $1", &[&id])? {
                Some(row) => Ok(Some(decode(row.get(0))?)),
                None => Ok(None),
            }
        })
    }

    fn stage(&self, id: &str, events: &[EventWrite]) -> Result<u64, StoreError> {
        let texts = events.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        self.with_client("write", |client| {
            let mut txn = client.transaction()?;
            let Some(row) = txn.query_opt(
                "SELECT snapshot FROM snapshots WHERE id = $1 FOR UPDATE",
                &[&id],
            )?
            else {
                return Err(StoreError::Corrupt(format!("no open snapshot {id:?}")).into());
            };
            let mut snapshot: Snapshot = decode(row.get(0))?;
            let positions: Vec<i64> = (0..texts.len() as u64)
                .map(|n| to_db(snapshot.staged + n))
                .collect();
            txn.execute(
                "INSERT INTO staged (snapshot_id, position, event) \
                 SELECT $1, * FROM unnest($2::int8[], $3::text[])",
                &[&id, &positions, &texts],
            )?;
            snapshot.staged += texts.len() as u64;
            txn.execute(
                "UPDATE snapshots SET snapshot = $2 WHERE id = $1",
                &[&id, &encode(&snapshot)?],
            )?;
            txn.commit()?;
            Ok(snapshot.staged)
        })
    }

    fn commit_snapshot(
        &self,
        id: &str,
        verify: &VerifySnapshot,
    ) -> Result<Result<Vec<EventOutcome>, String>, StoreError> {
        let verdict = self.with_client("write", |client| {
            let mut txn = client.transaction()?;
            let Some(row) = txn.query_opt(
                "SELECT snapshot FROM snapshots WHERE id = $1 FOR UPDATE",
                &[&id],
            )?
            else {
                return Ok(Err(format!("no open snapshot {id:?}")));
            };
            let snapshot: Snapshot = decode(row.get(0))?;
            let events = txn
                .query(
                    "SELECT event FROM staged WHERE snapshot_id = $1 ORDER BY position",
                    &[&id],
                )?
                .iter()
                .map(|row| decode::<EventWrite>(row.get(0)))
                .collect::<Result<Vec<_>, _>>()?;
            if let Err(why) = verify(&snapshot, &events) {
                return Ok(Err(why));
            }
            // The staged events go with their batch (ON DELETE CASCADE).
            txn.execute("DELETE FROM snapshots WHERE id = $1", &[&id])?;
            let outcomes = apply_in(&mut txn, &self.channel, &events)?;
            txn.commit()?;
            Ok::<_, Failed>(Ok(outcomes))
        })?;
        if let Ok(outcomes) = &verdict {
            self.grew(outcomes);
        }
        Ok(verdict)
    }

    fn drop_staged(&self, tenant: &str) -> Result<u64, StoreError> {
        self.with_client("write", |client| {
            let mut txn = client.transaction()?;
            let mut theirs: Vec<(String, i64)> = Vec::new();
            for row in txn.query("SELECT snapshot_id, position, event FROM staged", &[])? {
                let event: String = row.get(2);
                let event: EventWrite = serde_json::from_str(&event).map_err(|e| {
                    StoreError::Corrupt(format!("a staged event does not decode: {e}"))
                })?;
                if event.ops.iter().any(|op| op.id().tenant == tenant) {
                    theirs.push((row.get(0), row.get(1)));
                }
            }
            for (id, position) in &theirs {
                txn.execute(
                    "DELETE FROM staged WHERE snapshot_id = $1 AND position = $2",
                    &[id, position],
                )?;
            }
            txn.commit()?;
            Ok(theirs.len() as u64)
        })
    }

    fn abort_snapshot(&self, id: &str) -> Result<bool, StoreError> {
        self.with_client("write", |client| {
            Ok(client.execute("DELETE FROM snapshots WHERE id = $1", &[&id])? > 0)
        })
    }

    fn snapshots(&self) -> Result<Vec<Snapshot>, StoreError> {
        self.with_client("read", |client| {
            client
                .query("SELECT snapshot FROM snapshots ORDER BY id", &[])?
                .iter()
                .map(|row| decode(row.get(0)).map_err(Failed::from))
                .collect()
        })
    }
}
