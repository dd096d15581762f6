//! Following the droid's change feed: every change to a record type the
//! sidecar serves refreshes (upsert), answers (delete) or drops (invalidate)
//! what the sidecar holds for the key, in log order.
//!
//! The follower keeps its position (the last sequence number applied) across
//! connections: a dropped stream, a droid restart or an outage ends in a
//! reconnection, with doubling waits, from that position, so nothing is missed
//! or applied twice. When the droid no longer holds the position (`410
//! sequence_expired`, or an error line once trimming overtook the stream), the
//! follower resynchronises: it follows from the log's end and empties the
//! caches, so every later read goes to the droid afresh.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::watch;

use super::config::FeedConfig;
use super::replica::Replicas;
use super::sync::SyncState;
use super::upstream::Upstream;
use crate::metrics::{SIDECAR_RECONNECTS, SIDECAR_RESYNCS};
use crate::readthrough::{Reader, Update};

/// The longest line the follower accepts (a change and its body).
const MAX_LINE: usize = 16 << 20;

/// Follows the feed for a set of readers until told to stop.
#[derive(Debug)]
pub struct Follower {
    pub(super) upstream: Arc<Upstream>,
    pub(super) readers: Arc<HashMap<String, Arc<Reader>>>,
    pub(super) sync: Arc<SyncState>,
    pub(super) replicas: Arc<Replicas>,
    pub(super) config: FeedConfig,
}

/// How one stream ended.
#[derive(Debug)]
enum Ended {
    /// The droid no longer holds our position: start over.
    Expired,
    /// The stream ended or failed; reconnect from our position. `streamed`:
    /// it had been open (so the droid is back, and the wait starts over).
    Lost { why: String, streamed: bool },
    /// Shutting down.
    Closing,
}

/// One line of the feed: a heartbeat, an error, or a change. (Flat, not an
/// enum: serde buffers untagged and flattened input, which a borrowed raw
/// body cannot come from.)
#[derive(Debug, Deserialize)]
struct Line<'a> {
    heartbeat: Option<Heartbeat>,
    error: Option<serde_json::Value>,
    seq: Option<u64>,
    #[serde(borrow)]
    record_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tenant: Option<Cow<'a, str>>,
    #[serde(borrow)]
    key: Option<Cow<'a, str>>,
    version: Option<u64>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    body: Option<&'a RawValue>,
    occurred_at_ms: Option<u64>,
    committed_at_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Heartbeat {
    last_seq: u64,
    #[serde(default)]
    head_seq: u64,
}

impl Follower {
    /// Follows until `closing` turns true.
    pub async fn run(self, mut closing: watch::Receiver<bool>) {
        let reconnects = metrics::counter!(SIDECAR_RECONNECTS);
        let resyncs = metrics::counter!(SIDECAR_RESYNCS);
        let mut wait = self.config.reconnect_initial;
        loop {
            let base = self.upstream.base().to_owned();
            let ended = tokio::select! {
                ended = self.stream() => ended,
                _ = closing.wait_for(|c| *c) => Ended::Closing,
            };
            self.sync.set_connected(false);
            match ended {
                Ended::Closing => return,
                Ended::Expired => {
                    tracing::warn!(
                        position = self.sync.position(),
                        "the droid no longer holds the changes after this sidecar's position; resynchronising"
                    );
                    self.sync.restart();
                    resyncs.increment(1);
                    wait = self.config.reconnect_initial;
                    continue;
                }
                Ended::Lost { why, streamed } => {
                    // Another node, if there is one, is tried at once.
                    self.upstream.fail_over(&base);
                    if streamed || self.upstream.base() != base {
                        wait = self.config.reconnect_initial;
                    }
                    tracing::warn!(
                        reason = %why,
                        position = self.sync.position(),
                        retry_in_ms = wait.as_millis() as u64,
                        "change feed lost; serving what the sidecar holds (marked stale) until it is back"
                    );
                }
            }
            reconnects.increment(1);
            tokio::select! {
                () = tokio::time::sleep(jittered(wait)) => {}
                _ = closing.wait_for(|c| *c) => return,
            }
            wait = (wait * 2).min(self.config.reconnect_max);
        }
    }

    /// One connection: open the feed from the position, apply until it ends.
    async fn stream(&self) -> Ended {
        let record_types: Vec<&str> = self.readers.keys().map(String::as_str).collect();
        let position = self.sync.position();
        let resync = position.is_none();
        // A droid that accepts the connection but never answers (hung, or a
        // path that swallows packets) must not hold the follower forever.
        let silence = self.config.sync_timeout;
        let opening = self
            .upstream
            .changes(position, &record_types, self.config.heartbeat);
        let response = match tokio::time::timeout(silence, opening).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => return lost(e.to_string(), false),
            Err(_) => {
                return lost(
                    format!("the droid did not answer within {silence:?}"),
                    false,
                );
            }
        };
        let status = response.status();
        if status == reqwest::StatusCode::GONE {
            return Ended::Expired;
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let why = format!(
                "the droid answered {status}: {}",
                body.chars().take(300).collect::<String>()
            );
            return lost(why, false);
        }
        self.sync.set_connected(true);
        let mut response = response;
        let mut pending: Vec<u8> = Vec::new();
        let mut first = true;
        // A droid that says nothing for this long (not even a heartbeat) is
        // treated as gone.
        loop {
            let chunk = match tokio::time::timeout(silence, response.chunk()).await {
                Err(_) => return lost(format!("no word from the feed for {silence:?}"), true),
                Ok(Err(e)) => return lost(format!("reading the feed: {e}"), true),
                Ok(Ok(None)) => return lost("the droid ended the stream".to_owned(), true),
                Ok(Ok(Some(chunk))) => chunk,
            };
            pending.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
                let line = &pending[start..start + end];
                start += end + 1;
                if line.is_empty() {
                    continue;
                }
                match self.line(line, resync && first) {
                    Ok(()) => first = false,
                    Err(ended) => return ended,
                }
            }
            pending.drain(..start);
            if pending.len() > MAX_LINE {
                return lost(format!("a feed line longer than {MAX_LINE} bytes"), true);
            }
        }
    }

    /// Applies one line. `opening_resync`: the first line of a stream opened
    /// from now, after which the caches are emptied.
    fn line(&self, line: &[u8], opening_resync: bool) -> Result<(), Ended> {
        let parsed: Line<'_> = serde_json::from_slice(line)
            .map_err(|e| lost(format!("a feed line that does not parse: {e}"), true))?;
        if let Some(heartbeat) = parsed.heartbeat {
            if opening_resync {
                // Everything after this position comes through the stream;
                // what was cached before it may be out of date.
                for reader in self.readers.values() {
                    reader.clear();
                }
                self.replicas
                    .reload(&self.upstream, &self.readers, self.config);
                tracing::info!(
                    position = heartbeat.last_seq,
                    "resynchronised: caches emptied, following from the droid's log end"
                );
            }
            self.sync.heartbeat(heartbeat.last_seq, heartbeat.head_seq);
            return Ok(());
        }
        if let Some(error) = parsed.error {
            tracing::warn!(%error, "the feed reported an error");
            return Err(Ended::Expired);
        }
        let (Some(seq), Some(record_type), Some(tenant), Some(key), Some(kind)) = (
            parsed.seq,
            parsed.record_type,
            parsed.tenant,
            parsed.key,
            parsed.kind,
        ) else {
            let why = "a feed line that is neither a change nor a heartbeat".to_owned();
            return Err(lost(why, true));
        };
        if self.sync.position().is_some_and(|p| seq <= p) {
            return Ok(()); // Already applied (never expected; harmless).
        }
        if &*kind == "erase" {
            // An erased tenant: nothing of it stays, of any record type.
            for reader in self.readers.values() {
                reader.drop_tenant(&tenant);
            }
            self.sync.applied(
                seq,
                "erase",
                parsed.occurred_at_ms.unwrap_or_default(),
                parsed.committed_at_ms.unwrap_or_default(),
            );
            return Ok(());
        }
        let (update, kind) = match &*kind {
            "upsert" => (
                Update::Upsert {
                    body: parsed.body.map(|b| b.get().to_owned()).unwrap_or_default(),
                    version: parsed.version.unwrap_or_default(),
                },
                "upsert",
            ),
            "delete" => (Update::Delete, "delete"),
            // Invalidations, and kinds a newer droid may add: drop the key.
            _ => (Update::Invalidate, "invalidate"),
        };
        if let Some(reader) = self.readers.get(&*record_type) {
            reader.apply(&key, &tenant, update, self.replicas.contains(&record_type));
        }
        self.sync.applied(
            seq,
            kind,
            parsed.occurred_at_ms.unwrap_or_default(),
            parsed.committed_at_ms.unwrap_or_default(),
        );
        Ok(())
    }
}

fn lost(why: String, streamed: bool) -> Ended {
    Ended::Lost { why, streamed }
}

/// `wait` give or take a quarter, so sidecars that lost the same droid do not
/// all come back at the same instant.
fn jittered(wait: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    let quarter = wait / 4;
    wait - quarter + quarter * 2 * u32::from(byte[0]) / 255
}
