//! The change log on PostgreSQL stays gapless and in commit order with
//! writers on several nodes: four writers on three store handles (three
//! nodes' pools) commit 20,000 events while a follower reads the log as it
//! grows, advancing by sequence number the way the feed does. Then again with
//! every write transaction held open after it has numbered its changes (a
//! trigger sleeps before the commit), so later writers would commit first if
//! they could.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use droid_host::store::{
    EventOutcome, EventWrite, Op, Postgres, PostgresOptions, RecordId, Records,
};
use droid_test_servers::PostgresServer;

const WRITERS: usize = 4;
const NODES: usize = 3;
const EVENTS: usize = 20_000;
const BATCH: usize = 50;

fn node(server: &PostgresServer, schema: &str) -> Arc<Postgres> {
    Arc::new(
        Postgres::open(&PostgresOptions {
            url: server.url(),
            schema: schema.to_owned(),
            pool_size: 4,
            statement_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(100),
        })
        .expect("the store opens"),
    )
}

/// Event `n` of writer `w`: one upsert of a key of its own.
fn event(w: usize, n: usize) -> EventWrite {
    let key = format!("w{w}-{n}");
    EventWrite {
        overwrite: false,
        source: "load".into(),
        event_id: key.clone(),
        occurred_at_ms: 1,
        ops: vec![Op::Upsert {
            id: RecordId {
                record_type: "ticket".into(),
                tenant: "acme".into(),
                key,
            },
            body: format!("{{\"n\":{n}}}"),
            version: 1,
        }],
    }
}

/// Runs the writers and the follower; checks what the follower saw against
/// what the writers were told.
fn writers_and_a_follower(nodes: &[Arc<Postgres>]) {
    let per_writer = EVENTS / WRITERS;
    let (acknowledged, followed) = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = nodes[w % NODES].clone();
                scope.spawn(move || {
                    let mut acked = BTreeMap::new();
                    for start in (0..per_writer).step_by(BATCH) {
                        let events: Vec<EventWrite> =
                            (start..start + BATCH).map(|n| event(w, n)).collect();
                        let outcomes = store.apply(&events).expect("a batch commits");
                        for (event, outcome) in events.iter().zip(outcomes) {
                            let EventOutcome::Applied { seqs, .. } = outcome else {
                                panic!("{} was not applied", event.event_id);
                            };
                            acked.insert(seqs[0], event.event_id.clone());
                        }
                    }
                    acked
                })
            })
            .collect();
        let reader = nodes[1].clone();
        let follower = scope.spawn(move || {
            let mut position = 0u64;
            let mut seen = BTreeMap::new();
            while (position as usize) < EVENTS {
                let page = reader.changes(position, 500).expect("the log reads");
                if page.is_empty() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                for change in page {
                    assert_eq!(
                        change.seq,
                        position + 1,
                        "the follower at {position} was handed {} next: a change was skipped or repeated",
                        change.seq
                    );
                    position = change.seq;
                    seen.insert(change.seq, change.event_id);
                }
            }
            seen
        });
        let mut acknowledged = BTreeMap::new();
        for writer in writers {
            acknowledged.extend(writer.join().expect("a writer"));
        }
        (acknowledged, follower.join().expect("the follower"))
    });
    assert_eq!(acknowledged.len(), EVENTS, "every event got its own number");
    assert_eq!(
        followed, acknowledged,
        "the follower saw exactly what was acknowledged"
    );
    assert_eq!(nodes[2].last_seq().unwrap(), EVENTS as u64);
}

#[test]
fn writers_on_three_nodes_leave_a_gapless_log_a_follower_reads_in_order() {
    let server = PostgresServer::start();
    let nodes: Vec<_> = (0..NODES).map(|_| node(&server, "gapless")).collect();
    writers_and_a_follower(&nodes);
}

#[test]
fn transactions_held_open_after_numbering_do_not_let_later_ones_pass() {
    let server = PostgresServer::start();
    let nodes: Vec<_> = (0..NODES).map(|_| node(&server, "held")).collect();
    // Every write transaction sleeps once its changes are numbered and
    // inserted, before it commits.
    server.execute(
        "CREATE FUNCTION held.linger() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep(0.001 + random() * 0.004); RETURN NULL; END $$;
         CREATE TRIGGER linger AFTER INSERT ON held.changes
           FOR EACH STATEMENT EXECUTE FUNCTION held.linger();",
    );
    writers_and_a_follower(&nodes);
}
