//! Dead letters in redb: one table keyed by source and event id.

use redb::{ReadableDatabase, ReadableTable};

use super::super::codec::event_key;
use super::super::{DeadLetter, DeadLetters, StoreError};
use super::{DEAD_LETTERS, Embedded, io};

impl DeadLetters for Embedded {
    fn put_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        if letters.is_empty() {
            return Ok(());
        }
        let txn = try_io!("write", self.db().begin_write());
        {
            let mut table = try_io!("write", txn.open_table(DEAD_LETTERS));
            for letter in letters {
                let key = event_key(&letter.source, &letter.event_id);
                // Refused again: the attempts add up.
                let earlier = match try_io!("write", table.get(key.as_slice())) {
                    Some(bytes) => serde_json::from_slice::<DeadLetter>(bytes.value())
                        .map(|d| d.attempts)
                        .unwrap_or(0),
                    None => 0,
                };
                let letter = DeadLetter {
                    attempts: earlier + letter.attempts,
                    ..letter.clone()
                };
                let json = serde_json::to_vec(&letter).map_err(|e| {
                    StoreError::Corrupt(format!("cannot encode a dead letter: {e}"))
                })?;
                try_io!("write", table.insert(key.as_slice(), json.as_slice()));
            }
        }
        try_io!("commit", txn.commit());
        Ok(())
    }

    fn dead_letters(
        &self,
        source: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let txn = try_io!("read", self.db().begin_read());
        let table = try_io!("read", txn.open_table(DEAD_LETTERS));
        let mut out = Vec::new();
        for entry in try_io!("read", table.iter()) {
            let (_, value) = try_io!("read", entry);
            let letter: DeadLetter = serde_json::from_slice(value.value())
                .map_err(|e| StoreError::Corrupt(format!("a dead letter does not decode: {e}")))?;
            if source.is_none_or(|s| s == letter.source) {
                out.push(letter);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn remove_dead_letter(&self, source: &str, event_id: &str) -> Result<bool, StoreError> {
        let txn = try_io!("write", self.db().begin_write());
        let removed = {
            let mut table = try_io!("write", txn.open_table(DEAD_LETTERS));
            let key = event_key(source, event_id);
            try_io!("write", table.remove(key.as_slice())).is_some()
        };
        try_io!("commit", txn.commit());
        Ok(removed)
    }
}
