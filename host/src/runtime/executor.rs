//! Where plugin calls run: threads of their own, apart from the HTTP server's.
//!
//! A plugin call is CPU the host does not control. Run on the server's tokio
//! workers, two busy plugins on a two-core machine would hold both workers and
//! every cache hit would wait behind them. So every call (and the trial
//! instance of every load) runs on this executor: a tokio runtime with its own
//! worker threads, its own I/O driver and timer (WASI's clocks and the
//! adapter's outbound HTTP need both), at a lower scheduling priority, so the
//! operating system gives the server's threads the CPU first whenever both
//! want it. The epoch yields of a busy plugin then hand its thread to the
//! other plugin calls queued there, never to the HTTP server's work.
//!
//! It does not limit how many calls run at once: that is each record type's
//! call slots ([`super::context::PluginContext`]) and the instance pool.

use std::future::Future;

use crate::failure::CallError;

/// A runtime for plugin calls. Shut down without waiting when dropped: a
/// call still running is abandoned (its store and instance are freed).
pub(crate) struct Executor {
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").finish_non_exhaustive()
    }
}

impl Executor {
    /// Starts `threads` worker threads at `nice` (0 to 19: how much lower
    /// their priority is than the server's).
    pub(crate) fn start(threads: usize, nice: i32) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("droid-plugin")
            .enable_all()
            .on_thread_start(move || lower_priority(nice))
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the executor runs until dropped")
            .handle()
    }

    /// Runs `work` on the plugin threads and waits for it. Dropping the
    /// returned future (the request went away) stops the work too.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, CallError> {
        let mut task = AbortOnDrop(self.handle().spawn(work));
        (&mut task.0).await.map_err(lost)
    }

    /// Runs `work` on the plugin threads and blocks this thread until it
    /// ends. For loading, which runs on a blocking thread (the watcher, a
    /// blocking task, start-up), never on an async worker.
    pub(crate) fn block_on<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, CallError> {
        let task = self.handle().spawn(work);
        futures::executor::block_on(task).map_err(lost)
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime blocks until its tasks end, which is not
            // allowed from inside another runtime (the server's, in tests).
            runtime.shutdown_background();
        }
    }
}

/// A task that is aborted when whoever waits for it stops waiting.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The error of a call whose task did not finish: host code panicked while
/// serving it, or the executor is shutting down.
fn lost(error: tokio::task::JoinError) -> CallError {
    tracing::error!(%error, "a plugin call's task ended without an answer");
    CallError::Trap {
        message: if error.is_panic() {
            "the host failed while running the call; details are in its log".to_owned()
        } else {
            "the call was stopped: droid is shutting down".to_owned()
        },
    }
}

/// Lowers the calling thread's scheduling priority (on Linux the nice value
/// is per thread). Failing to is logged, not fatal: calls still run, only
/// with the server's priority.
fn lower_priority(nice: i32) {
    #[cfg(unix)]
    if nice > 0 {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), nice) {
            tracing::warn!(error = %e, nice, "cannot lower the priority of a plugin thread");
        }
    }
    #[cfg(not(unix))]
    let _ = nice;
}
