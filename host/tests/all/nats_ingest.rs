//! Ingestion from NATS JetStream with real servers (PostgreSQL, nats-server)
//! and real `droid serve` processes: two nodes share one durable consumer;
//! 10,000 events are applied exactly once across a node killed with SIGKILL
//! and restarted, nats-server restarted, and PostgreSQL stopped and started;
//! a poison event lands in the dead letters without blocking the stream.

use std::path::Path;
use std::time::{Duration, Instant};

use droid_host::store::{DeadLetters, Postgres, PostgresOptions, Records};
use droid_test_servers::{NatsServer, PostgresServer};

use crate::support::{Serving, droid, text, ticket_config_dir_with, ticket_event};

const EVENTS: u64 = 10_000;
const STREAM: &str = "EVENTS";
const SUBJECT: &str = "events.tracker";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Creates the stream the provider publishes to.
fn create_stream(nats: &NatsServer) {
    runtime().block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let jetstream = async_nats::jetstream::new(client);
        jetstream
            .create_stream(async_nats::jetstream::stream::Config {
                name: STREAM.to_owned(),
                subjects: vec!["events.>".to_owned()],
                ..Default::default()
            })
            .await
            .unwrap();
    });
}

/// Publishes `payloads` to the stream, each acknowledged by JetStream.
fn publish(nats: &NatsServer, payloads: impl Iterator<Item = String>) {
    runtime().block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let jetstream = async_nats::jetstream::new(client);
        let mut acks = Vec::new();
        for payload in payloads {
            acks.push(jetstream.publish(SUBJECT, payload.into()).await.unwrap());
            if acks.len() == 500 {
                for ack in acks.drain(..) {
                    ack.await.unwrap();
                }
            }
        }
        for ack in acks {
            ack.await.unwrap();
        }
    });
}

fn config(pg: &PostgresServer, nats: &NatsServer) -> (tempfile::TempDir, std::path::PathBuf) {
    ticket_config_dir_with(&format!(
        "stream = {{ url = \"{}\", stream = \"{STREAM}\", subject = \"{SUBJECT}\", durable = \"droid\", batch = 200, ack_wait_ms = 2000 }}\n\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\nschema = \"streamed\"\nconnect_timeout_ms = 1000\npoll_interval_ms = 200\n",
        nats.url(),
        pg.url()
    ))
}

fn store(pg: &PostgresServer) -> Postgres {
    Postgres::open(&PostgresOptions {
        url: pg.url(),
        schema: "streamed".into(),
        pool_size: 2,
        statement_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(2),
        poll_interval: Duration::from_secs(1),
    })
    .unwrap()
}

/// Waits until the change log holds at least `n` changes; fails with the
/// nodes' logs.
fn wait_for_changes(pg: &PostgresServer, n: u64, what: &str, nodes: &[&Serving]) {
    let store = store(pg);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let last = store.last_seq().unwrap_or(0);
        if last >= n {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = nodes.iter().map(|node| node.log()).collect();
            panic!(
                "{what}: {last} of {n} changes; the nodes logged:\n{}",
                logs.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stream_events_are_applied_once_each_across_a_kill_and_server_restarts() {
    let mut pg = PostgresServer::start();
    let mut nats = NatsServer::start();
    create_stream(&nats);
    let (_dir, path) = config(&pg, &nats);
    let mut a = Serving::start(&path);
    let b = Serving::start(&path);

    publish(&nats, (1..=EVENTS / 2).map(ticket_event));
    // A dies mid-stream, holding events it has not acknowledged.
    wait_for_changes(&pg, 500, "before the kill", &[&a, &b]);
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let a = Serving::start(&path);

    // NATS restarts; what it stored is kept, and both nodes pull again.
    nats.stop();
    nats.resume();
    // A poison event, among the rest.
    publish(
        &nats,
        std::iter::once("{\"id\":\"poison\",\"kind\":1}".to_owned())
            .chain((EVENTS / 2 + 1..=EVENTS).map(ticket_event)),
    );
    // PostgreSQL goes away for a moment: events stay unacknowledged.
    pg.stop();
    std::thread::sleep(Duration::from_secs(2));
    pg.resume();

    wait_for_changes(&pg, EVENTS, "after the restarts", &[&a, &b]);
    let store = store(&pg);
    let log = store.changes(0, EVENTS as usize + 10).unwrap();
    assert_eq!(log.len() as u64, EVENTS, "one change per event, none twice");
    for (i, change) in log.iter().enumerate() {
        assert_eq!(change.seq, i as u64 + 1, "gapless");
    }
    let mut ids: Vec<&str> = log.iter().map(|c| c.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, EVENTS, "every event applied, each once");
    let letters = store.dead_letters(Some("tracker"), 10).unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].event_id, "poison");
    assert!(
        letters[0].reason.contains("missing field") || letters[0].reason.contains("not an event"),
        "{letters:?}"
    );
    drop((a, b));
}

/// `droid serve` with `config`: it must fail, saying `needles`.
fn refused(config: &Path, needles: &[&str]) {
    let out = droid(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--insecure-no-auth",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
}

#[test]
fn a_stream_that_cannot_be_consumed_stops_droid_at_start_naming_the_field() {
    let pg = PostgresServer::start();
    let nats = NatsServer::start();
    // No stream yet.
    let (_dir, path) = config(&pg, &nats);
    refused(&path, &["sources.tracker.stream", "stream \"EVENTS\""]);
    // No server.
    let closed = droid_test_servers::free_port();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&nats.url(), &format!("nats://127.0.0.1:{closed}"));
    std::fs::write(&path, text).unwrap();
    refused(&path, &["sources.tracker.stream", "cannot connect to NATS"]);
}
