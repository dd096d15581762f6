//! A backing store the tests control: records, status overrides, delays,
//! redirects, and a count of every request it received.
//!
//! It serves the read-through contract under `/records/{key}`: `200` with the
//! stored JSON, `404` for unknown keys. Anything can be overridden per key or for
//! all keys, to play a failing or slow store.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::oneshot;

/// One request the backend received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request path.
    pub path: String,
    /// The request headers, names in lower case.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct Behaviour {
    records: HashMap<String, String>,
    status: Option<u16>,
    delay: Duration,
    key_delay: HashMap<String, Duration>,
    redirect: Option<String>,
    fail_next: Vec<u16>,
    seen: Vec<Seen>,
    /// Record requests being answered now, and the most there ever were at once.
    in_flight: usize,
    peak_in_flight: usize,
}

/// Counts a record request as in flight until dropped.
struct Answering<'a>(&'a Mutex<Behaviour>);

impl<'a> Answering<'a> {
    fn start(state: &'a Mutex<Behaviour>) -> Self {
        let mut b = state.lock().unwrap();
        b.in_flight += 1;
        b.peak_in_flight = b.peak_in_flight.max(b.in_flight);
        Self(state)
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap().in_flight -= 1;
    }
}

/// A running test backing store. Stops when dropped.
#[derive(Debug)]
pub struct TestBackend {
    addr: SocketAddr,
    state: Arc<Mutex<Behaviour>>,
    _stop: oneshot::Sender<()>,
}

impl TestBackend {
    /// Starts a backend on a free loopback port.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(Behaviour::default()));
        let app = Router::new()
            .route("/records/{key}", get(record))
            .route("/redirect", get(redirect))
            .fallback(other)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            addr,
            state,
            _stop: stop,
        }
    }

    /// The backend's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stores a record.
    pub fn put(&self, key: &str, json: &str) -> &Self {
        self.state
            .lock()
            .unwrap()
            .records
            .insert(key.to_owned(), json.to_owned());
        self
    }

    /// Answers every record request with `status` (and an error text body) from now on; `None` restores normal service.
    pub fn set_status(&self, status: Option<u16>) {
        self.state.lock().unwrap().status = status;
    }

    /// Delays every answer.
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// Delays answers for one key.
    pub fn set_key_delay(&self, key: &str, delay: Duration) {
        self.state
            .lock()
            .unwrap()
            .key_delay
            .insert(key.to_owned(), delay);
    }

    /// Answers the next `statuses.len()` record requests with these statuses, in
    /// order, then serves normally again.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.state.lock().unwrap().fail_next = statuses.to_vec();
    }

    /// Makes `/redirect` and `/records/redirect` answer `302` to `location`.
    pub fn redirect_to(&self, location: &str) {
        self.state.lock().unwrap().redirect = Some(location.to_owned());
    }

    /// Requests received for `/records/{key}`.
    pub fn hits(&self, key: &str) -> usize {
        let path = format!("/records/{key}");
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|s| s.path == path)
            .count()
    }

    /// Every request received, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Record requests being answered now (a delayed one counts until it ends):
    /// what tests check instead of timing, since a request still in flight
    /// shows that whatever answered meanwhile did not wait for it.
    pub fn in_flight(&self) -> usize {
        self.state.lock().unwrap().in_flight
    }

    /// The most record requests ever answered at once.
    pub fn peak_in_flight(&self) -> usize {
        self.state.lock().unwrap().peak_in_flight
    }
}

type Shared = State<Arc<Mutex<Behaviour>>>;

fn note(state: &Mutex<Behaviour>, path: String, headers: &HeaderMap) {
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    state.lock().unwrap().seen.push(Seen { path, headers });
}

async fn record(State(state): Shared, Path(key): Path<String>, headers: HeaderMap) -> Response {
    note(&state, format!("/records/{key}"), &headers);
    let _answering = Answering::start(&state);
    if key == "redirect" {
        return redirect_answer(&state);
    }
    let (delay, status, body) = {
        let mut b = state.lock().unwrap();
        let delay = b.delay + b.key_delay.get(&key).copied().unwrap_or_default();
        let status = if b.fail_next.is_empty() {
            b.status
        } else {
            Some(b.fail_next.remove(0))
        };
        (delay, status, b.records.get(&key).cloned())
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = status {
        let status = StatusCode::from_u16(status).expect("valid status");
        return (status, "backend says no").into_response();
    }
    match body {
        Some(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn redirect(State(state): Shared, headers: HeaderMap) -> Response {
    note(&state, "/redirect".to_owned(), &headers);
    redirect_answer(&state)
}

fn redirect_answer(state: &Mutex<Behaviour>) -> Response {
    let location = state
        .lock()
        .unwrap()
        .redirect
        .clone()
        .unwrap_or_else(|| "/".to_owned());
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn other(State(state): Shared, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    note(&state, uri.path().to_owned(), &headers);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{}",
    )
        .into_response()
}
