//! The PostgreSQL store: what several droid nodes share (`[store] backend =
//! "postgres"`).
//!
//! Tables live in one schema (`store.schema`), created and migrated at start
//! (`migrations/`, run by refinery under an advisory lock, so nodes starting
//! together migrate once); a droid that finds a schema newer than it knows
//! refuses to start. Every write runs in one transaction that locks the one
//! row of `log` before it reads a record or numbers a change: writers on
//! every node take turns, each hands out the next sequence numbers and
//! commits before the next one reads the counter, so the change log grows in
//! commit order without gaps, and a follower that reads `seq > n` never
//! misses a change that commits later with a smaller number. (Event ids are
//! claimed before the lock: their unique index orders racing writers alone.)
//!
//! Followers learn that the log grew from their own node's commits at once,
//! and from other nodes' through `LISTEN`/`NOTIFY` (see [`follow`]); a
//! notification is only a hint, lost while disconnected, so the log's end is
//! also read every `poll_interval`.

use std::sync::Arc;
use std::time::Duration;

use postgres::NoTls;
use r2d2_postgres::PostgresConnectionManager;

use super::{EventOutcome, StoreError};

mod dead_letters;
mod directory;
mod fleet;
mod follow;
mod records;
mod recovery;
mod snapshots;

refinery::embed_migrations!("src/store/postgres/migrations");

/// How to reach the database, and how to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// A libpq connection string or URL (`postgresql://user:pass@host/db`).
    pub url: String,
    /// The schema droid's tables live in: a plain lower-case identifier.
    pub schema: String,
    /// The most connections this node holds (besides the one that listens).
    pub pool_size: u32,
    /// How long one statement may run (and a transaction sit idle) before
    /// PostgreSQL cancels it.
    pub statement_timeout: Duration,
    /// How long connecting, or waiting for a free connection, may take.
    pub connect_timeout: Duration,
    /// How often the log's end is read when no notification came.
    pub poll_interval: Duration,
}

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// The store in a PostgreSQL schema.
#[derive(Debug)]
pub struct Postgres {
    /// Always `Some` until dropped (see the `Drop` impl).
    pool: Option<Pool>,
    /// The notification channel of this schema's log.
    channel: String,
    /// The last sequence number known committed, for followers of the log;
    /// the listening thread ends once the store is gone (it holds a `Weak`).
    grown: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Postgres {
    /// Connects, creates and migrates the schema, and starts following the
    /// log. Fails when the database cannot be reached, refuses the
    /// credentials, or holds a schema newer than this droid's.
    pub fn open(options: &PostgresOptions) -> Result<Self, StoreError> {
        let config = client_config(options)?;
        let mut client = config.connect(NoTls).map_err(|e| open_error(options, &e))?;
        migrate(&mut client, &options.schema)?;
        let last: i64 = client
            .query_one("SELECT last_seq FROM log", &[])
            .map_err(io("open"))?
            .get(0);
        drop(client);
        let manager = PostgresConnectionManager::new(config.clone(), NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(options.connect_timeout)
            // A dead connection shows on first use and is retried once (see
            // `with_client`); a test query per checkout would cost a round trip.
            .test_on_check_out(false)
            .build_unchecked(manager);
        let store = Self {
            pool: Some(pool),
            channel: channel(&options.schema),
            grown: Arc::new(tokio::sync::watch::Sender::new(last as u64)),
        };
        follow::start(
            config,
            store.channel.clone(),
            Arc::downgrade(&store.grown),
            options.poll_interval,
        );
        Ok(store)
    }

    /// Runs `f` with a pooled connection; again with another while the one
    /// it had turns out closed (the server restarted since the connection
    /// was last used: the pool may hold several such). Every write is safe
    /// to run twice: events are idempotent by id.
    fn with_client<T>(
        &self,
        operation: &'static str,
        mut f: impl FnMut(&mut postgres::Client) -> Result<T, Failed>,
    ) -> Result<T, StoreError> {
        let pool = self
            .pool
            .as_ref()
            .expect("the pool lives as long as the store");
        let mut tries = 0;
        loop {
            tries += 1;
            let mut client = pool.get().map_err(|e| StoreError::Io {
                operation,
                reason: format!("no connection to PostgreSQL: {e}"),
            })?;
            match f(&mut client) {
                Ok(value) => return Ok(value),
                Err(Failed::Db(_)) if client.is_closed() && tries <= pool.max_size() => {}
                Err(Failed::Db(e)) => return Err(io(operation)(e)),
                Err(Failed::Store(e)) => return Err(e),
            }
        }
    }

    /// Tells followers the log grew to `last`, if it did.
    fn grew_to(&self, last: u64) {
        self.grown.send_if_modified(|seen| {
            let newer = last > *seen;
            if newer {
                *seen = last;
            }
            newer
        });
    }

    /// Tells followers the log grew to the last sequence number `outcomes` got.
    fn grew(&self, outcomes: &[EventOutcome]) {
        let last = outcomes.iter().filter_map(|o| match o {
            EventOutcome::Applied { seqs, .. } => seqs.last().copied(),
            EventOutcome::Duplicate => None,
        });
        if let Some(last) = last.max() {
            self.grew_to(last);
        }
    }
}

/// Closing a connection blocks on its own little runtime, which may not
/// happen on a thread that drives async tasks, where a store is often
/// dropped (a server shutting down): the pool closes on a thread of its own.
impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let closed = std::thread::Builder::new()
                .name("droid-store-close".to_owned())
                .spawn(move || drop(pool));
            if let Err(e) = closed {
                tracing::warn!(error = %e, "cannot start a thread to close the PostgreSQL connections");
            }
        }
    }
}

/// The client settings: the URL's, with droid's schema, timeouts and name.
fn client_config(options: &PostgresOptions) -> Result<postgres::Config, StoreError> {
    let mut config: postgres::Config = options.url.parse().map_err(|e| StoreError::Open {
        path: "store.url".to_owned(),
        reason: format!("not a PostgreSQL connection string or URL: {e}"),
    })?;
    let timeout_ms = options.statement_timeout.as_millis().max(1);
    config
        .connect_timeout(options.connect_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .options(&format!(
            "-c search_path={schema} -c statement_timeout={timeout_ms} \
             -c idle_in_transaction_session_timeout={timeout_ms}",
            schema = options.schema
        ));
    if config.get_application_name().is_none() {
        config.application_name("droid");
    }
    Ok(config)
}

/// Where followers hear that this schema's log grew.
fn channel(schema: &str) -> String {
    format!("droid_log_{schema}")
}

/// Why the database could not be opened, without the URL (it may hold a
/// password).
fn open_error(options: &PostgresOptions, e: &postgres::Error) -> StoreError {
    let reason = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    let target = options
        .url
        .parse::<postgres::Config>()
        .map(|c| describe_target(&c))
        .unwrap_or_default();
    StoreError::Open {
        path: format!("store.url{target}"),
        reason,
    }
}

/// ` (user@host:port/db)`, for error messages.
fn describe_target(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        " ({}@{host}:{port}/{})",
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("?")
    )
}

/// Creates the schema and brings it to the newest migration, holding an
/// advisory lock so that nodes starting together take turns.
fn migrate(client: &mut postgres::Client, schema: &str) -> Result<(), StoreError> {
    let migration = |e: &dyn std::fmt::Display| StoreError::Io {
        operation: "migrate",
        reason: e.to_string(),
    };
    client
        .execute("SELECT pg_advisory_lock(hashtext($1))", &[&schema])
        .map_err(|e| migration(&e))?;
    let outcome = (|| {
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .map_err(|e| migration(&e))?;
        let runner = migrations::runner();
        let known = runner
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max()
            .unwrap_or(0);
        let history: Option<String> = client
            .query_one("SELECT to_regclass('refinery_schema_history')::text", &[])
            .map_err(|e| migration(&e))?
            .get(0);
        if history.is_some() {
            let found: Option<i32> = client
                .query_one("SELECT max(version) FROM refinery_schema_history", &[])
                .map_err(|e| migration(&e))?
                .get(0);
            let found = i64::from(found.unwrap_or(0));
            if found > known {
                return Err(StoreError::NewerSchema {
                    schema: schema.to_owned(),
                    found,
                    known,
                });
            }
        }
        runner
            .set_grouped(true)
            .run(client)
            .map_err(|e| migration(&e))?;
        Ok(())
    })();
    let unlocked = client.execute("SELECT pg_advisory_unlock(hashtext($1))", &[&schema]);
    outcome?;
    unlocked.map_err(|e| migration(&e))?;
    Ok(())
}

/// What a step inside a connection can fail with: the database, or droid's
/// own decoding.
#[derive(Debug)]
enum Failed {
    Db(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for Failed {
    fn from(e: postgres::Error) -> Self {
        Failed::Db(e)
    }
}

impl From<StoreError> for Failed {
    fn from(e: StoreError) -> Self {
        Failed::Store(e)
    }
}

fn io(operation: &'static str) -> impl Fn(postgres::Error) -> StoreError {
    move |e| StoreError::Io {
        operation,
        reason: match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        },
    }
}

/// A u64 in a bigint, by its bits: round-trips exactly, and reads as itself
/// for every value up to `i64::MAX`.
fn to_db(n: u64) -> i64 {
    n as i64
}

fn from_db(n: i64) -> u64 {
    n as u64
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("does not decode: {e}")))
}
