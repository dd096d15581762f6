//! Running one plugin call: one of the record type's call slots, a fresh store
//! under the record type's limits, a deadline enforced both on the wasm side
//! (epoch interruption) and the host side (a timer around the whole call,
//! covering time spent in host calls such as HTTP), then every failure sorted
//! into a [`CallError`] and counted.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::context::PluginContext;
use super::logs::Dropped;
use super::state::{CallState, MemoryCapExceeded};
use super::stats::CallStats;
use crate::failure::CallError;
use crate::failure::Outcome;
use crate::metrics;

/// One of `ctx`'s call slots, waited for up to the call's deadline: a record
/// type whose calls all run (slow plugins, a flood of events) waits for its
/// own slots and never takes another record type's instances.
pub(crate) async fn slot(
    ctx: &PluginContext,
) -> Result<tokio::sync::OwnedSemaphorePermit, CallError> {
    if let Ok(permit) = ctx.slots.clone().try_acquire_owned() {
        return Ok(permit);
    }
    let waited = tokio::time::timeout(ctx.limits.deadline, ctx.slots.clone().acquire_owned()).await;
    let outcome = if matches!(waited, Ok(Ok(_))) {
        "acquired"
    } else {
        "timeout"
    };
    ::metrics::counter!(
        metrics::PLUGIN_SLOT_WAITS,
        "record_type" => ctx.record_type.clone(),
        "outcome" => outcome
    )
    .increment(1);
    match waited {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(CallError::Capacity),
    }
}

/// A store ready for one call.
pub(crate) fn new_store(
    engine: &Engine,
    ctx: &Arc<PluginContext>,
    plugin: &Arc<str>,
) -> Store<CallState> {
    let deadline = Instant::now() + ctx.limits.deadline;
    let mut store = Store::new(
        engine,
        CallState::new(ctx.clone(), plugin.clone(), deadline),
    );
    store.limiter(|state| &mut state.limiter);
    // Check in at every epoch tick: yield so other calls on this worker thread get
    // their turn, or stop the plugin once its deadline has passed.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|state| {
        if Instant::now() >= state.data().deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store
}

/// Runs `work` (instantiation plus the export call) under the call's deadline.
/// The outcome is settled with [`settle`] once `work` has released the store.
pub(crate) async fn run<T>(
    deadline: std::time::Duration,
    work: impl Future<Output = wasmtime::Result<T>>,
) -> Result<wasmtime::Result<T>, tokio::time::error::Elapsed> {
    tokio::time::timeout(deadline, work).await
}

/// Turns a call's outcome into the host's terms.
pub(crate) fn settle<T>(
    outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    state: &CallState,
) -> Result<T, CallError> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(classify(&error, state)),
        Err(_elapsed) => Err(CallError::Timeout {
            deadline: state.ctx.limits.deadline,
        }),
    }
}

fn classify(error: &wasmtime::Error, state: &CallState) -> CallError {
    if state.limiter.exhausted || error.downcast_ref::<MemoryCapExceeded>().is_some() {
        return CallError::MemoryExhausted {
            limit_bytes: state.ctx.limits.memory_bytes,
        };
    }
    if error
        .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return CallError::Capacity;
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return CallError::Timeout {
            deadline: state.ctx.limits.deadline,
        };
    }
    let stderr = state.stderr.text();
    if let Some(message) = panic_message(&stderr) {
        return CallError::Panic { message };
    }
    let message = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}"),
    };
    CallError::Trap { message }
}

/// Rust's panic hook prints `panicked at LOCATION:\nMESSAGE` to stderr before the
/// abort that traps; that text is the most useful thing to report.
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at ")?;
    let rest = &stderr[start + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n").unwrap_or((rest, ""));
    let message = message.lines().next().unwrap_or("").trim();
    Some(if message.is_empty() {
        format!("at {}", location.trim())
    } else {
        format!("{message} (at {})", location.trim())
    })
}

/// Counts one finished call and its duration.
pub(crate) fn record(
    state: &CallState,
    version: &str,
    stats: &CallStats,
    outcome: Outcome,
    started: Instant,
) {
    let elapsed = started.elapsed();
    stats.record(outcome, elapsed);
    let labels = [
        ("plugin", state.plugin.to_string()),
        ("version", version.to_owned()),
        ("record_type", state.ctx.record_type.clone()),
        ("outcome", outcome.label().to_owned()),
    ];
    ::metrics::counter!(metrics::PLUGIN_CALLS, &labels).increment(1);
    ::metrics::histogram!(metrics::PLUGIN_CALL_DURATION, &labels).record(elapsed.as_secs_f64());
    report_dropped_logs(state, version);
    if !matches!(outcome, Outcome::Ok | Outcome::PluginError) {
        tracing::warn!(
            plugin = %state.plugin,
            version,
            record_type = %state.ctx.record_type,
            outcome = outcome.label(),
            "plugin call failed"
        );
    }
}

/// One line for a call whose log went over its budgets, instead of the lines.
fn report_dropped_logs(state: &CallState, version: &str) {
    let dropped = state.log.total_dropped();
    if dropped == 0 {
        return;
    }
    for (reason, count) in [Dropped::Call, Dropped::Rate]
        .into_iter()
        .zip(state.log.dropped)
        .filter(|(_, n)| *n > 0)
    {
        ::metrics::counter!(
            metrics::PLUGIN_LOG_DROPPED,
            "record_type" => state.ctx.record_type.clone(),
            "reason" => reason.label()
        )
        .increment(count);
    }
    tracing::warn!(
        target: "droid::plugin",
        record_type = %state.ctx.record_type,
        plugin = %state.plugin,
        version,
        dropped,
        "plugin log lines dropped: past the call's budget (limits.log_lines_per_call, log_bytes_per_call) or the record type's rate (limits.log_lines_per_s)"
    );
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn panic_messages_are_read_from_stderr() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nboom: key was empty\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("boom: key was empty (at src/lib.rs:12:9)")
        );
        assert_eq!(panic_message("nothing here"), None);
    }
}
