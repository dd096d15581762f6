//! Serving a router on a listener until told to stop, with every connection
//! bounded: droid's API and a sidecar's both run here.
//!
//! Each connection gets `header_timeout` to send a request head once it has
//! begun one, is closed after `idle_timeout` with nothing in progress, and
//! dropped when its peer reads nothing for `write_timeout` ([`connections`]). At most `max_connections` are open at once: at the cap,
//! a new connection closes the one idle the longest; when none is idle, up to
//! `reserve_connections` more are served for operations only (`/healthz`,
//! `/metrics`, `/v1/admin/...`, one request each, everything else `503
//! server_busy`), and past those a connection gets `503 server_busy` at once
//! and is closed. A failing accept (out of file descriptors) is retried after
//! a doubling pause, and frees a descriptor by closing the longest-idle
//! connection, instead of spinning.
//!
//! Shutdown is graceful: on the signal the listener closes, long-lived
//! streams are told to end, and requests in flight finish before [`serve`]
//! returns.

mod connections;
mod io;

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::app::App;
use crate::config::ConnectionLimits;
use connections::{Activity, Handle, Reason, RequestGuard, Tracker};

/// How long a connection droid closes (idle, evicted) may take to finish
/// what it is writing before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// The longest pause between failing accepts.
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Serves droid's API (`app`) on `listener` until `shutdown` completes.
pub async fn run(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    app.spawn_background();
    let router = crate::api::router(app.clone());
    let limits = app.service.config().connections;
    let closing = app.service.clone();
    serve(listener, router, limits, "api", async move {
        shutdown.await;
        // Endless responses (the change feed) end now; the rest finish.
        closing.close_streams();
    })
    .await
}

/// Serves `router` on `listener` under `limits` until `shutdown` completes,
/// then waits for the requests in flight. `name` labels its metrics.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    name: &'static str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tracker = Arc::new(Tracker::new(limits, name));
    let watchdog = tokio::spawn(watch(tracker.clone()));
    let mut shutdown = pin!(shutdown);
    let mut pause = Duration::from_millis(5);
    let connections = TaskSet::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => {
                pause = Duration::from_millis(5);
                stream
            }
            // The peer gave up before its connection was accepted.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                accept_failed(&tracker, &e, name);
                // Out of descriptors (or memory): free one, wait, try again.
                tracker.evict_one();
                tokio::select! {
                    () = tokio::time::sleep(pause) => {},
                    () = &mut shutdown => break,
                }
                pause = (pause * 2).min(MAX_ACCEPT_PAUSE);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let open = tracker.len();
        let mode = if open < limits.max_connections || tracker.evict_one() {
            Mode::Full
        } else if open < limits.max_connections + limits.reserve_connections {
            Mode::Reserve
        } else {
            tracker.count_closed(Reason::Refused);
            refuse(&stream);
            continue;
        };
        let handle = tracker.open();
        let router = router.clone();
        let tracker = tracker.clone();
        connections.spawn(async move {
            serve_connection(stream, router, handle, mode, &tracker).await;
        });
    }
    drop(listener);
    watchdog.abort();
    tracker.close_all();
    connections.wait().await;
    Ok(())
}

/// How a connection is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every route, with keep-alive.
    Full,
    /// Above the cap: operations routes only, one request, then closed.
    Reserve,
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    handle: Handle,
    mode: Mode,
    tracker: &Tracker,
) {
    let activity = handle.activity.clone();
    let io = TokioIo::new(io::TrackedIo::new(stream, activity.clone()));
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |request: hyper::Request<hyper::body::Incoming>| {
            let request = request.map(Body::new);
            let (router, activity) = (router.clone(), activity.clone());
            async move { Ok::<_, Infallible>(answer(router, request, &activity, mode).await) }
        }
    });
    let mut builder = Builder::new(TokioExecutor::new());
    // Request heads are timed by the tracker (hyper's own timer would also
    // cut kept-alive connections between requests).
    builder
        .http1()
        .keep_alive(mode == Mode::Full)
        .header_read_timeout(None);
    let connection = builder.serve_connection_with_upgrades(io, service);
    let mut connection = pin!(connection);
    let reason = tokio::select! {
        _ = connection.as_mut() => return,
        reason = activity.closed() => reason,
    };
    tracker.count_closed(reason);
    connection.as_mut().graceful_shutdown();
    match reason {
        // Requests in flight finish; the feed's streams were told to end.
        Reason::Shutdown => {
            let _ = connection.await;
        }
        // Its peer reads nothing: dropping it frees what it holds at once.
        Reason::WriteTimeout => {}
        // Idle or a late head: nothing worth waiting for.
        Reason::HeaderTimeout | Reason::Idle | Reason::Evicted | Reason::Refused => {
            let _ = tokio::time::timeout(CLOSE_GRACE, connection).await;
        }
    }
}

/// Runs one request, marking it in progress until its response body ends.
async fn answer(
    router: Router,
    request: Request,
    activity: &Arc<Activity>,
    mode: Mode,
) -> Response {
    if mode == Mode::Reserve && (activity.served() || !operations_route(request.uri().path())) {
        return busy().into_response();
    }
    let guard = activity.begin();
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    response.map(|body| {
        Body::new(Guarded {
            body,
            _guard: guard,
        })
    })
}

/// Routes a connection above the cap may still use: what an operator needs
/// to see and act on an overloaded droid.
fn operations_route(path: &str) -> bool {
    path == "/healthz" || path == "/metrics" || path.starts_with("/v1/admin/")
}

fn busy() -> crate::web::ApiError {
    crate::web::ApiError::new(
        crate::web::ErrorCode::ServerBusy,
        "droid holds as many connections as it may and none is idle; try again shortly",
    )
    .retry_after(1)
}

/// Answers a connection past the cap and the reserve at once, and closes
/// it: one write that never waits (a fresh socket's buffer takes it), so a
/// flood of connections costs no descriptor beyond this moment.
fn refuse(stream: &TcpStream) {
    let body = serde_json::json!({ "error": {
        "code": crate::web::ErrorCode::ServerBusy.as_str(),
        "message": "droid holds as many connections as it may; try again shortly",
    }})
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
    // What the peer already sent is read, so closing does not reset the
    // connection before the answer is seen.
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match stream.try_read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// Errors of one connection that `accept` reports: nothing to pause for.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// A response body that keeps its request in progress until it ends.
struct Guarded {
    body: Body,
    _guard: RequestGuard,
}

impl http_body::Body for Guarded {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The watchdog of a listener's connections, until aborted.
async fn watch(tracker: Arc<Tracker>) {
    let mut tick = tokio::time::interval(tracker.sweep_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        tracker.sweep();
    }
}

/// Counts and logs (at most once a second) a failed accept.
fn accept_failed(tracker: &Tracker, error: &std::io::Error, listener: &'static str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_LOGGED_S: AtomicU64 = AtomicU64::new(0);
    let kind = match error.raw_os_error() {
        Some(24) => "too_many_open_files",
        Some(23) => "system_file_table_full",
        _ => "other",
    };
    metrics::counter!(crate::metrics::ACCEPT_ERRORS, "listener" => listener, "kind" => kind)
        .increment(1);
    let now = crate::store::now_ms() / 1000;
    if LAST_LOGGED_S.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(
            error = %error,
            open_connections = tracker.len(),
            max_connections = tracker.limits().max_connections,
            "cannot accept a connection; pausing accepts (is max_connections above the open-files limit?)"
        );
    }
}

/// Tasks that can be waited for together.
#[derive(Debug, Default)]
struct TaskSet {
    live: Arc<tokio::sync::watch::Sender<usize>>,
}

impl TaskSet {
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let live = self.live.clone();
        live.send_modify(|n| *n += 1);
        tokio::spawn(async move {
            // Counted down even if the task panics.
            struct Done(Arc<tokio::sync::watch::Sender<usize>>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.send_modify(|n| *n -= 1);
                }
            }
            let _done = Done(live);
            task.await;
        });
    }

    async fn wait(&self) {
        let mut live = self.live.subscribe();
        let _ = live.wait_for(|n| *n == 0).await;
    }
}

/// Completes on Ctrl-C or SIGTERM, whichever comes first. The handlers are
/// installed when this is called (inside the runtime, before listening), so a
/// signal that arrives before the server first waits on it is not missed.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        let terminate = async move {
            match terminate {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            () = terminate => {},
        }
        tracing::info!("shutting down: finishing requests in flight");
    }
}
