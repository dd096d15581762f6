//! The newest part of the change log, held in memory and encoded once, so
//! that many followers of the feed (every sidecar) cost one store read and
//! one encoding per commit between them, not one each.
//!
//! Followers that are caught up read from here; the first to find the tail
//! short of the log reads the store (once, under a lock) and extends it for
//! the rest. A follower far behind the tail reads the store directly, as
//! before, without disturbing it. The tail is bounded in bytes
//! (`server.feed_tail_bytes`) as well as in changes, and every page it
//! hands out in bytes too: a burst of large records cannot make it, or a
//! page read from it, hold more than that.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use crate::config::FeedSettings;

use axum::body::Bytes;

use crate::store::{self, Change, ChangeKind, Records, StoreError};

/// Changes the tail keeps at most, however small they are.
const CAPACITY: usize = 8192;

/// One change, encoded for the feed.
#[derive(Debug)]
pub struct Encoded {
    /// Its sequence number.
    pub seq: u64,
    /// Its record type, for filtering.
    pub record_type: String,
    /// Its JSON object, as the feed writes it (without a line end).
    pub json: Bytes,
}

/// The newest changes, contiguous, in order.
#[derive(Debug)]
pub struct Tail {
    entries: RwLock<Entries>,
    refill: tokio::sync::Mutex<()>,
    capacity_bytes: usize,
}

#[derive(Debug, Default)]
struct Entries {
    changes: VecDeque<Arc<Encoded>>,
    /// What `changes` weigh together.
    bytes: usize,
}

impl Tail {
    /// An empty tail holding at most `settings.tail_bytes`.
    pub fn new(settings: &FeedSettings) -> Self {
        Self {
            entries: RwLock::default(),
            refill: tokio::sync::Mutex::new(()),
            capacity_bytes: settings.tail_bytes,
        }
    }

    /// Up to `limit` changes after `after`, in order, weighing about
    /// `max_bytes` at most (always at least one): from memory when the tail
    /// holds them, otherwise from `store`.
    pub async fn page(
        &self,
        store: &Arc<dyn Records>,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<Arc<Encoded>>, StoreError> {
        if let Some(page) = self.held(after, limit, max_bytes) {
            return Ok(page);
        }
        if self.behind(after) {
            return read(store, after, limit, max_bytes).await;
        }
        // At or past the tail's end: one follower reads for everyone.
        let _refill = self.refill.lock().await;
        if let Some(page) = self.held(after, limit, max_bytes) {
            return Ok(page);
        }
        let page = read(store, after, limit, max_bytes).await?;
        self.extend(&page);
        Ok(page)
    }

    /// What the tail holds after `after`, if it holds the next change.
    fn held(&self, after: u64, limit: usize, max_bytes: usize) -> Option<Vec<Arc<Encoded>>> {
        let entries = self.entries.read().expect("feed tail lock");
        let first = entries.changes.front()?.seq;
        let last = entries.changes.back()?.seq;
        if after < first.saturating_sub(1) || after >= last {
            return None;
        }
        let start = (after + 1 - first) as usize;
        let mut bytes = 0;
        Some(
            entries
                .changes
                .range(start..)
                .take(limit)
                .take_while(|change| {
                    let first = bytes == 0;
                    bytes += change.json.len();
                    first || bytes <= max_bytes
                })
                .cloned()
                .collect(),
        )
    }

    /// Whether `after` lies before what the tail holds (a lagging follower).
    fn behind(&self, after: u64) -> bool {
        let entries = self.entries.read().expect("feed tail lock");
        entries
            .changes
            .front()
            .is_some_and(|front| after.saturating_add(1) < front.seq)
    }

    /// Appends `page` when it continues the tail; starts the tail over with it
    /// when it is newer but not contiguous.
    fn extend(&self, page: &[Arc<Encoded>]) {
        let Some(first) = page.first() else {
            return;
        };
        let mut entries = self.entries.write().expect("feed tail lock");
        match entries.changes.back() {
            Some(back) if first.seq == back.seq + 1 => {}
            Some(back) if first.seq <= back.seq => return,
            _ => *entries = Entries::default(),
        }
        for change in page {
            entries.bytes += change.json.len();
            entries.changes.push_back(change.clone());
        }
        while entries.changes.len() > CAPACITY || entries.bytes > self.capacity_bytes {
            match entries.changes.pop_front() {
                Some(old) => entries.bytes -= old.json.len(),
                None => break,
            }
        }
    }

    /// What the changes it holds weigh.
    pub fn bytes(&self) -> usize {
        self.entries.read().expect("feed tail lock").bytes
    }
}

async fn read(
    store: &Arc<dyn Records>,
    after: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<Vec<Arc<Encoded>>, StoreError> {
    let store = store.clone();
    let changes = store::blocking(move || store.changes_within(after, limit, max_bytes)).await?;
    Ok(changes.iter().map(|c| Arc::new(encode(c))).collect())
}

/// A change as the feed writes it: the body as JSON, not as a string.
#[derive(serde::Serialize)]
struct FeedChange<'a> {
    seq: u64,
    record_type: &'a str,
    tenant: &'a str,
    key: &'a str,
    version: u64,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a serde_json::value::RawValue>,
    occurred_at_ms: u64,
    committed_at_ms: u64,
}

fn encode(change: &Change) -> Encoded {
    let (kind, body) = match &change.kind {
        ChangeKind::Upsert { body } => (
            "upsert",
            serde_json::from_str::<&serde_json::value::RawValue>(body).ok(),
        ),
        ChangeKind::Delete => ("delete", None),
        ChangeKind::Invalidate => ("invalidate", None),
        ChangeKind::Erase => ("erase", None),
    };
    let line = FeedChange {
        seq: change.seq,
        record_type: &change.record_type,
        tenant: &change.tenant,
        key: &change.key,
        version: change.version,
        kind,
        body,
        occurred_at_ms: change.occurred_at_ms,
        committed_at_ms: change.committed_at_ms,
    };
    Encoded {
        seq: change.seq,
        record_type: change.record_type.clone(),
        json: Bytes::from(serde_json::to_vec(&line).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Embedded, EventWrite, Op, RecordId};

    fn commit(store: &dyn Records, from: u64, count: u64) {
        let events: Vec<EventWrite> = (from..from + count)
            .map(|n| EventWrite {
                overwrite: false,
                source: "s".into(),
                event_id: format!("e{n}"),
                occurred_at_ms: 1,
                ops: vec![Op::Upsert {
                    id: RecordId {
                        record_type: if n % 2 == 0 { "even" } else { "odd" }.into(),
                        tenant: "t".into(),
                        key: format!("k{n}"),
                    },
                    body: format!("{{\"n\":{n}}}"),
                    version: 1,
                }],
            })
            .collect();
        store.apply(&events).unwrap();
    }

    fn seqs(page: &[Arc<Encoded>]) -> Vec<u64> {
        page.iter().map(|e| e.seq).collect()
    }

    #[tokio::test]
    async fn followers_at_the_end_share_one_read_and_laggards_read_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Records> = Arc::new(Embedded::open(&dir.path().join("s.redb")).unwrap());
        commit(&*store, 1, 10);
        let tail = Tail::new(&FeedSettings {
            heartbeat: std::time::Duration::from_secs(1),
            send_timeout: std::time::Duration::from_secs(1),
            subscriber_bytes: 1 << 20,
            buffer_bytes: 1 << 20,
            tail_bytes: 1 << 20,
        });
        assert_eq!(
            seqs(&tail.page(&store, 4, 3, usize::MAX).await.unwrap()),
            [5, 6, 7]
        );
        // Held now: the same page comes from memory, as does the rest.
        assert_eq!(
            tail.held(4, 3, usize::MAX).map(|p| seqs(&p)),
            Some(vec![5, 6, 7])
        );
        assert!(tail.held(7, 100, usize::MAX).is_none(), "not read yet");
        assert_eq!(
            seqs(&tail.page(&store, 7, 100, usize::MAX).await.unwrap()),
            [8, 9, 10]
        );
        assert_eq!(
            tail.held(4, 100, usize::MAX).map(|p| seqs(&p)),
            Some(vec![5, 6, 7, 8, 9, 10])
        );
        // Before the tail: read from the store, the tail left as it is.
        assert_eq!(
            seqs(&tail.page(&store, 0, 2, usize::MAX).await.unwrap()),
            [1, 2]
        );
        assert_eq!(tail.held(4, 1, usize::MAX).map(|p| seqs(&p)), Some(vec![5]));
        assert!(tail.held(3, 1, usize::MAX).is_none());
        // Encoded once, as the feed writes it.
        let page = tail.page(&store, 9, 1, usize::MAX).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&page[0].json).unwrap();
        assert_eq!(
            (
                json["seq"].as_u64(),
                json["kind"].as_str(),
                json["body"]["n"].as_u64()
            ),
            (Some(10), Some("upsert"), Some(10))
        );
        assert_eq!(page[0].record_type, "even");
        // Caught up: nothing new, nothing held.
        assert!(
            tail.page(&store, 10, 100, usize::MAX)
                .await
                .unwrap()
                .is_empty()
        );
        commit(&*store, 11, 2);
        assert_eq!(
            seqs(&tail.page(&store, 10, 100, usize::MAX).await.unwrap()),
            [11, 12]
        );
        assert_eq!(tail.held(4, 100, usize::MAX).unwrap().len(), 8);
    }
}
