//! `GET /v1/changes`: the change log as a stream, for sidecars and other
//! followers.
//!
//! A follower names the last sequence number it has (`since`, or SSE's
//! `Last-Event-ID`) and gets every change after it in order, then new changes
//! as they commit, with heartbeats while nothing happens. Nothing is missed
//! across reconnections: the next connection starts after the last sequence
//! number the follower saw. A `since` the log no longer holds (trimmed, or
//! ahead of it) is refused with `410 sequence_expired`: the follower must
//! resynchronise rather than silently miss changes.
//!
//! What droid holds for a subscriber is bounded in bytes: a page of changes
//! (half of `feed_subscriber_bytes`), encoded and sent a chunk at a time, and
//! the chunks waiting for its socket (the other half). All subscribers
//! together hold at most `feed_buffer_bytes` ([`crate::feed::budget`]). One that does not
//! keep up (its buffer stays full, or the budget spent, for
//! `feed_send_timeout`) is dropped: the stream ends, and the follower
//! reconnects from its last sequence number. The host never buffers without
//! bound for a slow reader.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::access::{Action, Caller};
use crate::app::App;
use crate::auth::CallKind;
use crate::feed::Encoded;
use crate::feed::budget;
use crate::web::{ApiError, ErrorCode};

/// Changes read from the store per step, at most.
const PAGE: usize = 512;
/// The most bytes one chunk of the stream carries (a change larger than this
/// is a chunk of its own).
const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
pub(super) struct FeedQuery {
    since: Option<String>,
    record_types: Option<String>,
    heartbeat_ms: Option<u64>,
    /// The realm whose log to follow (this node's home realm when not named).
    realm: Option<String>,
}

/// How the stream is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// One JSON object per line.
    Lines,
    /// Server-sent events.
    Events,
}

pub(super) async fn changes(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<FeedQuery>, QueryRejection>,
) -> Response {
    match open(&app, &headers, query).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn open(
    app: &Arc<App>,
    headers: &HeaderMap,
    query: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let caller = super::auth::authenticate(app, headers, CallKind::Read).await?;
    let bad = |m: String| ApiError::new(ErrorCode::InvalidSince, m);
    let Query(query) = query.map_err(|e| bad(format!("invalid query string: {e}")))?;
    let format = if accepts_events(headers) {
        Format::Events
    } else {
        Format::Lines
    };
    // A `Last-Event-ID` that is not text is refused like any other bad
    // position: ignoring it would replay the whole log.
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(v.to_str().map(str::to_owned).map_err(|_| {
            bad("Last-Event-ID must be a sequence number, found bytes that are not text".to_owned())
        })?),
    };
    let since_text = query.since.clone().or(last_event_id);
    // `now`: only what commits from here on (a follower starting afresh).
    let since: Option<u64> = match since_text.as_deref() {
        None => Some(0),
        Some("now") => None,
        Some(text) => Some(text.parse().map_err(|_| {
            bad(format!(
                "since must be a sequence number or \"now\", found {text:?}"
            ))
        })?),
    };
    let wanted = record_types(app, &caller, query.record_types.as_deref())?;
    let heartbeat = Duration::from_millis(
        query
            .heartbeat_ms
            .unwrap_or(app.service.config().feed.heartbeat.as_millis() as u64)
            .clamp(50, 60_000),
    );
    let realm = app
        .service
        .realms
        .named_or_home(query.realm.as_deref())
        .map_err(|p| super::misplaced(p, "the realm named"))?
        .clone();
    let store = realm.stores.records.clone();
    let (first, last) =
        super::store_op(move || Ok((store.first_seq()?, store.last_seq()?))).await?;
    let since = since.unwrap_or(last);
    if since.saturating_add(1) < first || since > last {
        return Err(ApiError::new(
            ErrorCode::SequenceExpired,
            format!(
                "the change log holds sequence numbers {first} to {last}; {since} is {}: resynchronise (read the records afresh, then follow from {last})",
                if since > last {
                    "ahead of it"
                } else {
                    "no longer held"
                }
            ),
        ));
    }
    let settings = app.service.config().feed;
    // Half of a subscriber's bytes for its page, half for chunks waiting.
    let page_bytes = settings.subscriber_bytes / 2;
    let waiting = (page_bytes / CHUNK_BYTES).max(2);
    let (tx, rx) = tokio::sync::mpsc::channel::<(Bytes, budget::Held)>(waiting);
    let follower = Follower {
        app: app.clone(),
        realm,
        wanted,
        format,
        heartbeat,
        send_timeout: settings.send_timeout,
        page_bytes,
        tx,
    };
    tokio::spawn(follower.run(since));
    // A chunk's reservation is given back as the chunk leaves for the socket.
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|(chunk, _held)| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    let body = Body::from_stream(stream);
    let content_type = match format {
        Format::Lines => "application/x-ndjson",
        Format::Events => "text/event-stream",
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}

/// Whether the client asked for server-sent events.
fn accepts_events(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// The record types a subscription follows: those named (each declared and
/// readable by the caller), or every one the caller may read. `None`: all.
fn record_types(
    app: &App,
    caller: &Caller,
    named: Option<&str>,
) -> Result<Option<BTreeSet<String>>, ApiError> {
    let config = app.service.config();
    let Some(named) = named.filter(|n| !n.trim().is_empty()) else {
        if *caller == Caller::Insecure {
            return Ok(None);
        }
        return Ok(Some(
            config
                .record_types
                .keys()
                .filter(|rt| crate::access::permits(&config, caller, Action::Read(rt)))
                .cloned()
                .collect(),
        ));
    };
    let mut wanted = BTreeSet::new();
    for rt in named.split(',').map(str::trim) {
        if !config.record_types.contains_key(rt) {
            return Err(ApiError::new(
                ErrorCode::UnknownRecordType,
                format!("no record type named {rt:?} is declared"),
            ));
        }
        super::auth::require(app, caller, Action::Read(rt))?;
        wanted.insert(rt.to_owned());
    }
    Ok(Some(wanted))
}

/// One subscriber: reads the log from where it is, sends, waits for more.
struct Follower {
    app: Arc<App>,
    /// The realm whose log it follows.
    realm: Arc<crate::tenancy::Realm>,
    wanted: Option<BTreeSet<String>>,
    format: Format,
    heartbeat: Duration,
    send_timeout: Duration,
    /// The most bytes of changes read at once.
    page_bytes: usize,
    tx: tokio::sync::mpsc::Sender<(Bytes, budget::Held)>,
}

impl Follower {
    async fn run(self, mut after: u64) {
        let mut signal = self.realm.stores.records.subscribe();
        let mut closing = self.app.service.closing();
        let subscribers = metrics::gauge!(crate::metrics::FEED_SUBSCRIBERS);
        subscribers.increment(1.0);
        // The first line says where the stream starts and where the log ends,
        // so a follower knows at once that it is connected and how far behind.
        let head = *signal.borrow();
        if !self.send(encode_heartbeat(self.format, after, head)).await {
            subscribers.decrement(1.0);
            return;
        }
        loop {
            // A shutting-down droid ends every stream, so the graceful
            // shutdown is not held up by followers (they reconnect elsewhere).
            if *closing.borrow_and_update() {
                break;
            }
            // Caught up with the log's end: nothing to read until it grows.
            let head = *signal.borrow_and_update();
            let (changes, mut held) = if after >= head {
                (Vec::new(), budget::Held::none())
            } else {
                let Some(mut held) = self.reserve(self.page_bytes).await else {
                    break;
                };
                match self
                    .realm
                    .tail
                    .page(&self.realm.stores.records, after, PAGE, self.page_bytes)
                    .await
                {
                    Ok(changes) => {
                        held.keep(changes.iter().map(|c| c.json.len()).sum());
                        (changes, held)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the change feed could not read the log; ending the stream");
                        break;
                    }
                }
            };
            if let Some(first) = changes.first()
                && first.seq != after + 1
            {
                // The log was trimmed past this follower while it lagged.
                let error = encode_error(self.format, after);
                let _ = self.send(error).await;
                break;
            }
            if let Some(last) = changes.last() {
                let last_seq = last.seq;
                let mut sent = true;
                // Encoded a chunk at a time, as the subscriber takes them.
                for chunk in Chunks::new(self.format, &changes, self.wanted.as_ref()) {
                    let share = held.take(chunk.len());
                    if !self.send_held(chunk, share).await {
                        sent = false;
                        break;
                    }
                }
                if !sent {
                    break;
                }
                after = last_seq;
                continue;
            }
            tokio::select! {
                changed = signal.changed() => if changed.is_err() { break },
                _ = closing.changed() => break,
                () = tokio::time::sleep(self.heartbeat) => {
                    let head = *signal.borrow();
                    if !self.send(encode_heartbeat(self.format, after, head)).await {
                        break;
                    }
                }
            }
        }
        subscribers.decrement(1.0);
    }

    /// Reserves `bytes` of the feed's budget, waiting up to the send
    /// timeout; `None` (the subscriber is dropped) when it stays spent.
    async fn reserve(&self, bytes: usize) -> Option<budget::Held> {
        let held = self
            .app
            .service
            .feed
            .budget
            .reserve(bytes, self.send_timeout)
            .await;
        if held.is_none() {
            metrics::counter!(crate::metrics::FEED_DROPPED).increment(1);
            tracing::warn!(
                buffer_bytes = self.app.service.config().feed.buffer_bytes,
                "the change feed's subscribers hold all the memory they may; a subscriber waiting for some is dropped (it resumes from its last sequence number)"
            );
        }
        held
    }

    /// Sends a small chunk (a heartbeat, an error line) with its own share
    /// of the budget; false when the subscriber is gone, too slow, or the
    /// budget stays spent.
    async fn send(&self, chunk: Bytes) -> bool {
        match self.reserve(chunk.len()).await {
            Some(held) => self.send_held(chunk, held).await,
            None => false,
        }
    }

    /// Sends a chunk holding its share of the budget; false when the
    /// subscriber is gone or too slow (then dropped).
    async fn send_held(&self, chunk: Bytes, held: budget::Held) -> bool {
        match tokio::time::timeout(self.send_timeout, self.tx.send((chunk, held))).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                metrics::counter!(crate::metrics::FEED_DROPPED).increment(1);
                tracing::warn!(
                    timeout_ms = self.send_timeout.as_millis() as u64,
                    "a change-feed subscriber is not keeping up; dropped (it resumes from its last sequence number)"
                );
                false
            }
        }
    }
}

/// The changes of a page a subscriber follows, in its format, in chunks of
/// about [`CHUNK_BYTES`], each encoded only when it is asked for.
struct Chunks<'a> {
    format: Format,
    changes: std::slice::Iter<'a, Arc<Encoded>>,
    wanted: Option<&'a BTreeSet<String>>,
}

impl<'a> Chunks<'a> {
    fn new(
        format: Format,
        changes: &'a [Arc<Encoded>],
        wanted: Option<&'a BTreeSet<String>>,
    ) -> Self {
        Self {
            format,
            changes: changes.iter(),
            wanted,
        }
    }
}

impl Iterator for Chunks<'_> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let mut out = Vec::new();
        for change in self.changes.by_ref() {
            if self
                .wanted
                .is_some_and(|w| !w.contains(&change.record_type))
            {
                continue;
            }
            match self.format {
                Format::Lines => {
                    out.extend_from_slice(&change.json);
                    out.push(b'\n');
                }
                Format::Events => {
                    out.extend_from_slice(
                        format!("id: {}\nevent: change\ndata: ", change.seq).as_bytes(),
                    );
                    out.extend_from_slice(&change.json);
                    out.extend_from_slice(b"\n\n");
                }
            }
            if out.len() >= CHUNK_BYTES {
                break;
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

fn encode_heartbeat(format: Format, last_seq: u64, head_seq: u64) -> Bytes {
    let json = serde_json::json!({
        "last_seq": last_seq,
        "head_seq": head_seq.max(last_seq),
        "at_ms": crate::store::now_ms(),
    });
    Bytes::from(match format {
        Format::Lines => format!("{}\n", serde_json::json!({ "heartbeat": json })),
        Format::Events => format!("id: {last_seq}\nevent: heartbeat\ndata: {json}\n\n"),
    })
}

fn encode_error(format: Format, after: u64) -> Bytes {
    let json = serde_json::json!({
        "code": "sequence_expired",
        "message": format!("the change log no longer holds the changes after {after}: resynchronise"),
    });
    Bytes::from(match format {
        Format::Lines => format!("{}\n", serde_json::json!({ "error": json })),
        Format::Events => format!("event: error\ndata: {json}\n\n"),
    })
}
