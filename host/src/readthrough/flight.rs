//! Fetches in flight, one per key, shared by every request that misses meanwhile.
//!
//! A fetch runs as its own task, so it finishes (and fills the cache) even when
//! the request that started it goes away; waiters hold a shared handle to its
//! result. The table is also where writes to the cache and invalidations meet:
//! both happen under its lock, so an invalidation that arrives while a fetch is in
//! flight always wins (see [`Flights::lock`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::cache::{Cached, Failure};
use crate::failure::{CallError, FetchError};

/// The shared result of one fetch.
pub(super) type FlightResult = Shared<BoxFuture<'static, Arc<Cached>>>;

/// One fetch in flight.
#[derive(Clone)]
pub(super) struct Flight {
    /// Tells this flight apart from a later one for the same key.
    pub id: u64,
    /// The fetch's result, for every waiter.
    pub result: FlightResult,
}

/// The in-flight table of one record type.
#[derive(Default)]
pub(super) struct Flights {
    table: Mutex<HashMap<String, Flight>>,
    next_id: AtomicU64,
}

impl Flights {
    /// Locks the table. Writing a fetched entry into the cache and applying an
    /// invalidation both happen while holding this lock, which orders them: a
    /// fetch that started before an invalidation sees it when it comes to write.
    pub fn lock(&self) -> MutexGuard<'_, HashMap<String, Flight>> {
        self.table.lock().expect("flight table lock")
    }

    /// A fresh flight id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Wraps a spawned fetch so any number of waiters can await its result;
/// `failed` records a failure of the task itself.
pub(super) fn share(
    task: tokio::task::JoinHandle<Arc<Cached>>,
    failed: impl FnOnce(FetchError) -> Failure + Send + 'static,
) -> FlightResult {
    async move {
        match task.await {
            Ok(entry) => entry,
            // The task never panics on purpose; if it did, or was cancelled at
            // shutdown, the waiters get a failure rather than hanging.
            Err(e) => {
                tracing::error!(error = %e, "a fetch task failed");
                let error = FetchError::Call(CallError::Trap {
                    message: format!("the fetch task failed: {e}"),
                });
                Arc::new(Cached::new(
                    Err(failed(error)),
                    crate::cache::Producer::default(),
                    std::time::Instant::now(),
                    std::time::Duration::ZERO,
                ))
            }
        }
    }
    .boxed()
    .shared()
}
