//! Snapshot batches in redb: `snapshots` (id → batch) and `staged` ((id,
//! position) → event); a commit applies the staged events in the same
//! transaction that drops them.

use redb::{ReadableDatabase, ReadableTable};

use super::super::{EventOutcome, EventWrite, Snapshot, Snapshots, StoreError, VerifySnapshot};
use super::records::apply_in;
use super::{Embedded, SNAPSHOTS, STAGED, decode, encode, io};

impl Snapshots for Embedded {
    fn open_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let txn = try_io!("write", self.db().begin_write());
        {
            let mut table = try_io!("write", txn.open_table(SNAPSHOTS));
            let json = encode(snapshot)?;
            try_io!("write", table.insert(snapshot.id.as_str(), json.as_slice()));
        }
        try_io!("commit", txn.commit());
        Ok(())
    }

    fn snapshot(&self, id: &str) -> Result<Option<Snapshot>, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let table = try_io!("read", txn.open_table(SNAPSHOTS));
        match try_io!("read", table.get(id)) {
            Some(v) => decode(v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn stage(&self, id: &str, events: &[EventWrite]) -> Result<u64, StoreError> {
        let txn = try_io!("write", self.db().begin_write());
        let staged = {
            let mut snapshots = try_io!("write", txn.open_table(SNAPSHOTS));
            let mut snapshot: Snapshot = match try_io!("write", snapshots.get(id)) {
                Some(v) => decode(v.value())?,
                None => return Err(StoreError::Corrupt(format!("no open snapshot {id:?}"))),
            };
            let mut staged = try_io!("write", txn.open_table(STAGED));
            for event in events {
                try_io!(
                    "write",
                    staged.insert((id, snapshot.staged), encode(event)?.as_slice())
                );
                snapshot.staged += 1;
            }
            try_io!("write", snapshots.insert(id, encode(&snapshot)?.as_slice()));
            snapshot.staged
        };
        try_io!("commit", txn.commit());
        Ok(staged)
    }

    fn commit_snapshot(
        &self,
        id: &str,
        verify: &VerifySnapshot,
    ) -> Result<Result<Vec<EventOutcome>, String>, StoreError> {
        let txn = try_io!("write", self.db().begin_write());
        let outcomes = {
            let mut snapshots = try_io!("write", txn.open_table(SNAPSHOTS));
            let snapshot: Snapshot = match try_io!("write", snapshots.get(id)) {
                Some(v) => decode(v.value())?,
                None => return Ok(Err(format!("no open snapshot {id:?}"))),
            };
            let mut staged = try_io!("write", txn.open_table(STAGED));
            let mut events: Vec<EventWrite> = Vec::new();
            for entry in try_io!("read", staged.range((id, 0)..=(id, u64::MAX))) {
                let (_, value) = try_io!("read", entry);
                events.push(decode(value.value())?);
            }
            if let Err(why) = verify(&snapshot, &events) {
                return Ok(Err(why));
            }
            for n in 0..snapshot.staged {
                try_io!("write", staged.remove((id, n)));
            }
            try_io!("write", snapshots.remove(id));
            drop((snapshots, staged));
            apply_in(&txn, &events)?
        };
        try_io!("commit", txn.commit());
        self.grew(&outcomes);
        Ok(Ok(outcomes))
    }

    fn drop_staged(&self, tenant: &str) -> Result<u64, StoreError> {
        let txn = try_io!("write", self.db().begin_write());
        let dropped = {
            let mut staged = try_io!("write", txn.open_table(STAGED));
            let mut theirs = Vec::new();
            for entry in try_io!("write", staged.iter()) {
                let (k, value) = try_io!("write", entry);
                let event: EventWrite = decode(value.value())?;
                if event.ops.iter().any(|op| op.id().tenant == tenant) {
                    let (id, n) = k.value();
                    theirs.push((id.to_owned(), n));
                }
            }
            for (id, n) in &theirs {
                try_io!("write", staged.remove((id.as_str(), *n)));
            }
            theirs.len() as u64
        };
        try_io!("commit", txn.commit());
        Ok(dropped)
    }

    fn abort_snapshot(&self, id: &str) -> Result<bool, StoreError> {
        let txn = try_io!("write", self.db().begin_write());
        let existed = {
            let mut snapshots = try_io!("write", txn.open_table(SNAPSHOTS));
            let staged_count = match try_io!("write", snapshots.remove(id)) {
                Some(v) => decode::<Snapshot>(v.value())?.staged,
                None => return Ok(false),
            };
            let mut staged = try_io!("write", txn.open_table(STAGED));
            for n in 0..staged_count {
                try_io!("write", staged.remove((id, n)));
            }
            true
        };
        try_io!("commit", txn.commit());
        Ok(existed)
    }

    fn snapshots(&self) -> Result<Vec<Snapshot>, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let table = try_io!("read", txn.open_table(SNAPSHOTS));
        let mut out = Vec::new();
        for entry in try_io!("read", table.iter()) {
            let (_, value) = try_io!("read", entry);
            out.push(decode(value.value())?);
        }
        Ok(out)
    }
}
