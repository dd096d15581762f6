//! Dead letters in PostgreSQL: one row per source and event id, the attempts
//! in a column of their own so a refusal adds to them in one statement.

use std::collections::BTreeMap;

use super::super::{DeadLetter, DeadLetters, StoreError};
use super::{Postgres, decode, encode};

impl DeadLetters for Postgres {
    fn put_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        if letters.is_empty() {
            return Ok(());
        }
        // One row per event: a letter repeated in the batch adds its attempts.
        let mut merged: BTreeMap<(&str, &str), DeadLetter> = BTreeMap::new();
        for letter in letters {
            merged
                .entry((&letter.source, &letter.event_id))
                .and_modify(|kept| {
                    let attempts = kept.attempts + letter.attempts;
                    *kept = DeadLetter {
                        attempts,
                        ..letter.clone()
                    };
                })
                .or_insert_with(|| letter.clone());
        }
        let mut sources = Vec::with_capacity(merged.len());
        let mut ids = Vec::with_capacity(merged.len());
        let mut attempts = Vec::with_capacity(merged.len());
        let mut texts = Vec::with_capacity(merged.len());
        for letter in merged.values() {
            sources.push(letter.source.as_str());
            ids.push(letter.event_id.as_str());
            attempts.push(i32::try_from(letter.attempts).unwrap_or(i32::MAX));
            texts.push(encode(letter)?);
        }
        self.with_client("write", |client| {
            client.execute(
                "INSERT INTO dead_letters (source, event_id, attempts, letter) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[]) \
                 ON CONFLICT (source, event_id) DO UPDATE SET letter = excluded.letter, \
                   attempts = dead_letters.attempts + excluded.attempts",
                &[&sources, &ids, &attempts, &texts],
            )?;
            Ok(())
        })
    }

    fn dead_letters(
        &self,
        source: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_client("read", |client| {
            let rows = match source {
                Some(source) => client.query(
                    "SELECT attempts, letter FROM dead_letters WHERE source = $1 \
                     ORDER BY source, event_id LIMIT $2",
                    &[&source, &limit],
                )?,
                None => client.query(
                    "SELECT attempts, letter FROM dead_letters \
                     ORDER BY source, event_id LIMIT $1",
                    &[&limit],
                )?,
            };
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let mut letter: DeadLetter = decode(row.get(1))?;
                letter.attempts = u32::try_from(row.get::<_, i32>(0)).unwrap_or(0);
                out.push(letter);
            }
            Ok(out)
        })
    }

    fn remove_dead_letter(&self, source: &str, event_id: &str) -> Result<bool, StoreError> {
        self.with_client("write", |client| {
            let removed = client.execute(
                "DELETE FROM dead_letters WHERE source = $1 AND event_id = $2",
                &[&source, &event_id],
            )?;
            Ok(removed > 0)
        })
    }
}
