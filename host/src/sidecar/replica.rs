//! Record types a sidecar keeps whole (`replicate = true`): every record is
//! loaded from the droid's export (`GET /v1/records/{record_type}`) and kept
//! current by the change feed, so reads of any key are answered from memory.
//!
//! A load starts whenever the follower starts from the log's end (at start-up
//! and after a resynchronisation), right after the caches were emptied and
//! before the stream applies anything. Changes the stream applies meanwhile
//! win over the pages ([`Reader::seed`] refuses a key changed since the load's
//! marker), so the set converges on the droid's. A newer load stops an older
//! one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::config::FeedConfig;
use super::upstream::Upstream;
use crate::readthrough::Reader;

/// Records asked for per page.
const PAGE: usize = 1000;

/// The replicated record types and how their loads are going.
#[derive(Debug)]
pub struct Replicas {
    names: Vec<String>,
    generation: AtomicU64,
    status: Mutex<BTreeMap<String, ReplicaStatus>>,
}

/// One replicated record type's load.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplicaStatus {
    /// Every record of the type has been loaded (and the feed keeps them current).
    pub loaded: bool,
    /// Records loaded by the last load.
    pub records: u64,
    /// Why the last page failed, while it is being retried.
    pub error: Option<String>,
}

impl Replicas {
    /// The replicated ones among `record_types` (name, replicate?).
    pub fn new<'a>(record_types: impl IntoIterator<Item = (&'a str, bool)>) -> Self {
        let names: Vec<String> = record_types
            .into_iter()
            .filter(|(_, replicate)| *replicate)
            .map(|(name, _)| name.to_owned())
            .collect();
        let status = names
            .iter()
            .map(|n| (n.clone(), ReplicaStatus::default()))
            .collect();
        Self {
            names,
            generation: AtomicU64::new(0),
            status: Mutex::new(status),
        }
    }

    /// Whether `record_type` is kept whole.
    pub fn contains(&self, record_type: &str) -> bool {
        self.names.iter().any(|n| n == record_type)
    }

    /// The loads' state, by record type.
    pub fn report(&self) -> BTreeMap<String, ReplicaStatus> {
        self.status.lock().expect("replica status lock").clone()
    }

    fn update(&self, record_type: &str, f: impl FnOnce(&mut ReplicaStatus)) {
        if let Some(status) = self
            .status
            .lock()
            .expect("replica status lock")
            .get_mut(record_type)
        {
            f(status);
        }
    }

    /// Loads every replicated record type afresh into its reader (whose
    /// caches were just emptied); loads still running stop.
    pub fn reload(
        self: &Arc<Self>,
        upstream: &Arc<Upstream>,
        readers: &HashMap<String, Arc<Reader>>,
        feed: FeedConfig,
    ) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        for name in &self.names {
            let Some(reader) = readers.get(name) else {
                continue;
            };
            self.update(name, |s| *s = ReplicaStatus::default());
            let load = Load {
                replicas: self.clone(),
                generation,
                upstream: upstream.clone(),
                record_type: name.clone(),
                marker: reader.marker(),
                reader: reader.clone(),
                feed,
            };
            tokio::spawn(load.run());
        }
    }
}

/// One record type's load.
struct Load {
    replicas: Arc<Replicas>,
    generation: u64,
    upstream: Arc<Upstream>,
    record_type: String,
    reader: Arc<Reader>,
    marker: u64,
    feed: FeedConfig,
}

impl Load {
    fn current(&self) -> bool {
        self.replicas.generation.load(Ordering::SeqCst) == self.generation
    }

    async fn run(self) {
        let mut after: Option<(String, String)> = None;
        let mut records = 0;
        let mut wait = self.feed.reconnect_initial;
        while self.current() {
            let page = match self
                .upstream
                .records(&self.record_type, after.as_ref(), PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(record_type = %self.record_type, error = %e, "loading a replicated record type failed; retrying");
                    self.replicas
                        .update(&self.record_type, |s| s.error = Some(e.clone()));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.feed.reconnect_max);
                    continue;
                }
            };
            wait = self.feed.reconnect_initial;
            if !self.current() {
                return;
            }
            for record in page.records {
                self.reader.seed(
                    &record.key,
                    &record.tenant,
                    record.body.get().to_owned(),
                    record.version,
                    self.marker,
                );
                records += 1;
            }
            let done = page.next.is_none();
            after = page.next.map(|n| (n.tenant, n.key));
            self.replicas.update(&self.record_type, |s| {
                s.records = records;
                s.error = None;
                s.loaded = done;
            });
            if done {
                tracing::info!(record_type = %self.record_type, records, "replicated record type loaded");
                return;
            }
        }
    }
}
