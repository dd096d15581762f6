//! Each source's share of ingestion: at most its `max_in_flight` requests are
//! transformed at once. A source flooding droid with slow events is refused
//! (`429 source_busy`) rather than queued, so it holds a bounded part of its
//! record type's call slots and none of anyone else's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slots of every source, kept across configuration reloads while a
/// source's limit stays the same.
#[derive(Debug, Default)]
pub struct SourceSlots {
    sources: Mutex<HashMap<String, (u32, Arc<Semaphore>)>>,
}

impl SourceSlots {
    /// One of `source`'s `limit` slots, held until dropped; `None` when all
    /// are taken.
    pub fn try_take(&self, source: &str, limit: u32) -> Option<OwnedSemaphorePermit> {
        let slots = {
            let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
            let entry = sources
                .entry(source.to_owned())
                .or_insert_with(|| (limit, Arc::new(Semaphore::new(limit as usize))));
            if entry.0 != limit {
                *entry = (limit, Arc::new(Semaphore::new(limit as usize)));
            }
            entry.1.clone()
        };
        slots.try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::SourceSlots;

    #[test]
    fn a_source_holds_at_most_its_limit_and_others_are_unaffected() {
        let slots = SourceSlots::default();
        let held: Vec<_> = (0..2).map(|_| slots.try_take("a", 2)).collect();
        assert!(held.iter().all(Option::is_some));
        assert!(slots.try_take("a", 2).is_none());
        assert!(slots.try_take("b", 2).is_some());
        drop(held);
        assert!(slots.try_take("a", 2).is_some());
    }
}
