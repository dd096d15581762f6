//! Sources whose events arrive on NATS JetStream (`sources.NAME.stream`).
//!
//! Every node pulls from one durable consumer, so JetStream hands each event
//! to one node at a time. A node takes what is ready (up to `batch`), runs it
//! through the same ingestion as `POST /v1/ingest` (rate limit, transformer,
//! checks, one store transaction, dead letters, failure thresholds, metrics)
//! and acknowledges each event only once its changes are committed. An event
//! that cannot be ingested (not an event, refused or failed by the
//! transformer) is kept as a dead letter and acknowledged, so it never blocks
//! the stream. When the store fails nothing is acknowledged: JetStream
//! delivers the events again, to this node or another, and the store's
//! idempotency by event id makes a second delivery change nothing (the
//! stream's own duplicate window is shorter than a redelivery can be late).
//!
//! Invalidations of read-through keys may arrive on a stream too
//! (`invalidations.stream`): one node applies each and logs it, and the
//! others follow the log (see `peers`). The stream is the operator's, so
//! its messages are not checked against `invalidators`.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;

use super::Service;
use crate::config::{Config, StreamSource};
use crate::ingest::{EventResult, IncomingEvent, Refusal, Route, ingest_routed};
use crate::metrics::{INGEST_STREAM_NAKS, INGEST_STREAM_RECONNECTS, INVALIDATION_STREAM_REFUSED};
use crate::readthrough::Invalidation;
use crate::store::{self, DeadLetter};

/// How long connecting to NATS may take at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait before pulling again after the stream failed.
const RETRY: Duration = Duration::from_secs(1);

/// How soon JetStream offers an event again after the store failed.
const REDELIVER_AFTER: Duration = Duration::from_secs(1);

/// Why a stream cannot be consumed: named by its field.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct StreamError {
    /// The field (`sources.NAME.stream`, `invalidations.stream`).
    pub field: String,
    /// Why.
    pub reason: String,
}

/// What a stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Carries {
    /// A source's events, to ingest.
    Events,
    /// Invalidations of read-through keys.
    Invalidations,
}

/// A stream's consumer, connected.
#[derive(Debug)]
pub(super) struct Consumer {
    /// The source, or `invalidations`.
    source: String,
    carries: Carries,
    settings: StreamSource,
    consumer: PullConsumer,
}

/// Connects to every stream source's server, finds its stream and binds the
/// shared durable consumer (creating it if missing): what must work before
/// droid serves.
pub(super) async fn connect(config: &Config) -> Result<Vec<Consumer>, StreamError> {
    let streams = config
        .sources
        .iter()
        .filter_map(|(name, source)| {
            Some((name.as_str(), Carries::Events, source.stream.as_ref()?))
        })
        .chain(
            config
                .invalidation_stream
                .as_ref()
                .map(|settings| ("invalidations", Carries::Invalidations, settings)),
        );
    let mut out = Vec::new();
    for (name, carries, settings) in streams {
        let field = match carries {
            Carries::Events => format!("sources.{name}.stream"),
            Carries::Invalidations => "invalidations.stream".to_owned(),
        };
        out.push(Consumer {
            source: name.to_owned(),
            consumer: bind(settings, name)
                .await
                .map_err(|reason| StreamError { field, reason })?,
            carries,
            settings: settings.clone(),
        });
    }
    Ok(out)
}

/// Connects to `settings`' server, finds its stream and binds the durable
/// consumer, creating it if missing.
async fn bind(settings: &StreamSource, name: &str) -> Result<PullConsumer, String> {
    let client = async_nats::ConnectOptions::new()
        .name(format!("droid {name}"))
        .connection_timeout(CONNECT_TIMEOUT)
        .connect(settings.url.as_str())
        .await
        .map_err(|e| format!("cannot connect to NATS at {}: {e}", settings.url))?;
    let jetstream = async_nats::jetstream::new(client);
    let stream = jetstream.get_stream(&settings.stream).await.map_err(|e| {
        format!(
            "stream {:?} on {}: {e} (create it, with subject {:?})",
            settings.stream, settings.url, settings.subject
        )
    })?;
    stream
        .get_or_create_consumer(
            &settings.durable,
            pull::Config {
                durable_name: Some(settings.durable.clone()),
                filter_subject: settings.subject.clone(),
                ack_policy: AckPolicy::Explicit,
                ack_wait: settings.ack_wait,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| {
            format!(
                "durable consumer {:?} of stream {:?}: {e}",
                settings.durable, settings.stream
            )
        })
}

/// Starts consuming, one task per source on the current runtime; each ends
/// when the server shuts down or the service goes.
pub(super) fn start(service: &Arc<Service>, consumers: Vec<Consumer>) {
    for consumer in consumers {
        tokio::spawn(consume(Arc::downgrade(service), consumer));
    }
}

async fn consume(service: Weak<Service>, consumer: Consumer) {
    let Some(mut closing) = service.upgrade().map(|s| s.closing()) else {
        return;
    };
    let source = consumer.source.as_str();
    let reconnects = metrics::counter!(INGEST_STREAM_RECONNECTS, "source" => source.to_owned());
    loop {
        if *closing.borrow() {
            return;
        }
        let messages = consumer
            .consumer
            .stream()
            .max_messages_per_batch(consumer.settings.batch)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await;
        let mut chunks = match messages {
            Ok(messages) => messages.ready_chunks(consumer.settings.batch),
            Err(e) => {
                tracing::warn!(source, error = %e, "cannot pull from JetStream; retrying");
                reconnects.increment(1);
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => continue,
                    _ = closing.changed() => return,
                }
            }
        };
        loop {
            let chunk = tokio::select! {
                chunk = chunks.next() => chunk,
                _ = closing.changed() => return,
            };
            let Some(chunk) = chunk else { break };
            let (messages, errors): (Vec<_>, Vec<_>) = chunk.into_iter().partition(Result::is_ok);
            let messages: Vec<Message> = messages.into_iter().filter_map(Result::ok).collect();
            let Some(service) = service.upgrade() else {
                return;
            };
            if !messages.is_empty() {
                match consumer.carries {
                    Carries::Events => handle(&service, &consumer, messages).await,
                    Carries::Invalidations => invalidate(&service, messages).await,
                }
            }
            if let Some(Err(e)) = errors.into_iter().next() {
                tracing::warn!(source, error = %e, "pulling from JetStream failed; pulling again");
                reconnects.increment(1);
                break;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            _ = closing.changed() => return,
        }
    }
}

/// Ingests one chunk of messages and acknowledges what is done with.
async fn handle(service: &Service, consumer: &Consumer, messages: Vec<Message>) {
    let source = consumer.source.as_str();
    let config = service.config();
    let Some((source_config, binding)) = config.sources.get(source).and_then(|s| {
        let binding = service.registry().get(&s.record_type).cloned()?;
        Some((s, binding))
    }) else {
        // The source left the configuration: another node may still serve it.
        nak(source, &messages).await;
        return;
    };
    // The agreed rate applies as over HTTP: the node pulls no faster.
    let count = u32::try_from(messages.len()).unwrap_or(u32::MAX);
    loop {
        match service.rate_limits.admit(source, source_config, count) {
            Ok(()) => break,
            Err(Refusal::Later(wait)) => tokio::time::sleep(wait).await,
            // More than the burst at once: the excess is offered again soon.
            Err(Refusal::TooMany { burst }) => {
                let mut messages = messages;
                let rest = messages.split_off((burst as usize).min(messages.len()).max(1));
                nak(source, &rest).await;
                return Box::pin(handle(service, consumer, messages)).await;
            }
        }
    }
    let events: Vec<Result<IncomingEvent, String>> = messages
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).map_err(|e| format!("not an event: {e}")))
        .collect();
    let results = match ingest_routed(&service.realms, &binding, source, events, Route::Live).await
    {
        Ok(results) => results,
        Err(e) => {
            tracing::warn!(source, error = %e, events = messages.len(), "the store failed; the events stay unacknowledged and come again");
            nak(source, &messages).await;
            return;
        }
    };
    service
        .source_health
        .note_outcomes(source, source_config, &results);
    // Events that are not events at all are kept too, so nothing vanishes.
    let letters: Vec<DeadLetter> = messages
        .iter()
        .zip(&results)
        .filter_map(|(message, result)| match result {
            EventResult::Invalid { reason } => Some(invalid_letter(consumer, message, reason)),
            _ => None,
        })
        .collect();
    if !letters.is_empty() {
        let store = service.home_store().dead_letters.clone();
        if let Err(e) = store::blocking(move || store.put_dead_letters(&letters)).await {
            tracing::warn!(source, error = %e, "cannot keep invalid events as dead letters; they come again");
            nak(source, &messages).await;
            return;
        }
    }
    // Refused events (their tenant migrates, or is served elsewhere) come
    // again later, or reach a node that serves their realm.
    let (refused, taken): (Vec<_>, Vec<_>) = messages
        .iter()
        .zip(&results)
        .partition(|(_, result)| matches!(result, EventResult::Refused { .. }));
    let refused: Vec<Message> = refused.into_iter().map(|(m, _)| m.clone()).collect();
    if !refused.is_empty() {
        nak(source, &refused).await;
    }
    for (message, _) in taken {
        if let Err(e) = message.ack().await {
            tracing::warn!(source, error = %e, "an acknowledgement did not reach JetStream; the event comes again (and is a duplicate)");
        }
    }
}

/// Applies a chunk of invalidations (each the `POST /v1/invalidate` shape)
/// and logs those that invalidated, so sidecars and the other nodes drop the
/// keys too; acknowledged once logged. One that does not apply (not an
/// invalidation, an unknown record type, a bad key) is logged here and
/// terminated: delivering it again would not help.
async fn invalidate(service: &Service, messages: Vec<Message>) {
    let mut logged = Vec::new();
    let mut refused = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let applied = serde_json::from_slice::<Invalidation>(&message.payload)
            .map_err(|e| format!("not an invalidation: {e}"))
            .and_then(|event| service.invalidate(&event).map_err(|e| e.to_string()));
        match applied {
            Ok((_, key)) => logged.extend(key),
            Err(why) => {
                tracing::warn!(reason = %why, "an invalidation from the stream does not apply; dropped");
                refused.push(i);
            }
        }
    }
    if !logged.is_empty() {
        let realms = service.realms.clone();
        if let Err(e) = store::blocking(move || realms.log_invalidations(&logged)).await {
            tracing::warn!(error = %e, "the store failed; the invalidations come again");
            nak("invalidations", &messages).await;
            return;
        }
    }
    metrics::counter!(INVALIDATION_STREAM_REFUSED).increment(refused.len() as u64);
    for (i, message) in messages.iter().enumerate() {
        let kind = if refused.contains(&i) {
            AckKind::Term
        } else {
            AckKind::Ack
        };
        if let Err(e) = message.ack_with(kind).await {
            tracing::warn!(error = %e, "an acknowledgement did not reach JetStream; the invalidation comes again");
        }
    }
}

/// A dead letter for a message that is not a valid event, named by its id
/// when it has one, else by its place in the stream.
fn invalid_letter(consumer: &Consumer, message: &Message, reason: &str) -> DeadLetter {
    let value: Option<serde_json::Value> = serde_json::from_slice(&message.payload).ok();
    let field = |name: &str| {
        value
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let place = message
        .info()
        .map(|info| format!("{}:{}", consumer.settings.stream, info.stream_sequence))
        .unwrap_or_else(|_| consumer.settings.stream.clone());
    DeadLetter {
        source: consumer.source.clone(),
        event_id: field("id")
            .filter(|id| !id.is_empty() && id.len() <= 256)
            .unwrap_or(place),
        kind: field("kind").unwrap_or_default(),
        tenant: field("tenant").unwrap_or_default(),
        occurred_at_ms: value
            .as_ref()
            .and_then(|v| v.get("occurred_at"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        payload: String::from_utf8_lossy(&message.payload).into_owned(),
        reason: reason.to_owned(),
        plugin_version: String::new(),
        at_ms: store::now_ms(),
        attempts: 1,
    }
}

/// Hands `messages` back to JetStream for another delivery soon.
async fn nak(source: &str, messages: &[Message]) {
    metrics::counter!(INGEST_STREAM_NAKS, "source" => source.to_owned())
        .increment(messages.len() as u64);
    for message in messages {
        let _ = message.ack_with(AckKind::Nak(Some(REDELIVER_AFTER))).await;
    }
}
