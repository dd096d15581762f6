//! A sidecar for tests: the real [`Sidecar`] and its router on a loopback
//! port, following a droid (usually a [`TestDroid`](crate::TestDroid)).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::droid::{Running, TestResponse, sample, send};
use droid_host::sidecar::Sidecar;
use droid_host::sidecar::config::{Overrides, SidecarConfig};

/// A running sidecar. Stops when dropped.
#[derive(Debug)]
pub struct TestSidecar {
    addr: SocketAddr,
    sidecar: Arc<Sidecar>,
    client: reqwest::Client,
    server: Running,
    _dir: tempfile::TempDir,
}

/// Feed settings fast enough for tests: heartbeats every 100 ms, out of sync
/// after 500 ms of silence, reconnecting within 50-400 ms.
pub const FAST_FEED: &str = "[feed]\nheartbeat_ms = 100\nsync_timeout_ms = 500\nreconnect_initial_ms = 50\nreconnect_max_ms = 400\n";

impl TestSidecar {
    /// Starts a sidecar following the droid at `upstream` (a base URL) with
    /// `config` as its file (`[record_types.*]` and anything else).
    pub async fn start(upstream: &str, config: &str) -> Self {
        let dir = tempfile::tempdir().expect("sidecar folder");
        let path = dir.path().join("sidecar.toml");
        std::fs::write(&path, config).expect("write sidecar.toml");
        let overrides = Overrides {
            upstream: Some(upstream.to_owned()),
            ..Overrides::default()
        };
        let config = SidecarConfig::load(&path, &overrides)
            .unwrap_or_else(|e| panic!("sidecar config: {e}"));
        let sidecar = Arc::new(Sidecar::new(config).expect("sidecar"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sidecar");
        let addr = listener.local_addr().expect("sidecar address");
        let served = sidecar.clone();
        let server = Running::spawn(move |stopped| {
            droid_host::sidecar::run(served, listener, async {
                let _ = stopped.await;
            })
        });
        Self {
            addr,
            sidecar,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            server,
            _dir: dir,
        }
    }

    /// Sends `body` (if any) to `path` with `method`.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> TestResponse {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        send(request, path).await
    }

    /// The sidecar itself, for in-process checks.
    pub fn sidecar(&self) -> &Arc<Sidecar> {
        &self.sidecar
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> TestResponse {
        send(self.client.get(self.url(path)), path).await
    }

    /// GETs `path` with extra headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> TestResponse {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request, path).await
    }

    /// The value of one sample in `/metrics`: the line starting with `series`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        sample(&self.get("/metrics").await.body, series)
    }

    /// Waits until the sidecar is in sync with its droid (panics after 10 s).
    pub async fn wait_in_sync(&self) {
        self.wait_for("in sync", || self.sidecar.sync().in_sync())
            .await;
    }

    /// Waits until the sidecar has applied the change log up to `seq`.
    pub async fn wait_position(&self, seq: u64) {
        self.wait_for(&format!("position {seq}"), || {
            self.sidecar.sync().position().is_some_and(|p| p >= seq)
        })
        .await;
    }

    async fn wait_for(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the sidecar did not reach {what} in 10 s: {:?}",
                self.sidecar.sync().report()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the sidecar.
    pub async fn stop(mut self) {
        self.server.stop().await;
    }
}
