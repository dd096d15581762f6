//! A droid server for tests: the real [`App`] and router on a loopback port,
//! configured from a TOML snippet, with every test plugin in its plugin folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use droid_host::app::App;
use droid_host::config::Config;
use reqwest::Method;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running droid. Stops (gracefully) when dropped.
#[derive(Debug)]
pub struct TestDroid {
    addr: SocketAddr,
    /// `None` only while restarting.
    app: Option<Arc<App>>,
    client: reqwest::Client,
    server: Running,
    dir: tempfile::TempDir,
}

/// A server task and the switch that stops it; stopped when dropped.
#[derive(Debug, Default)]
pub(crate) struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    /// Serves `serve` (given the future that completes on stop) as a task.
    pub(crate) fn spawn<F>(serve: impl FnOnce(oneshot::Receiver<()>) -> F) -> Self
    where
        F: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(stopped));
        let task = tokio::spawn(async move {
            task.await.expect("server task").expect("server ran");
        });
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server and waits for requests in flight to finish.
    pub(crate) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server stopped cleanly");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct TestResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as text.
    pub body: String,
}

impl TestResponse {
    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    /// The `error.code` of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Asserts a JSON error answer with `status` and `code`; `context` names
    /// the request in the failure.
    pub fn assert_error(&self, status: u16, code: &str, context: &str) {
        assert_eq!(
            (self.status, self.error_code()),
            (status, code.to_owned()),
            "{context}: {}",
            self.body
        );
    }

    /// The `Droid-Cache` header: hit, miss, stale or coalesced.
    pub fn cache(&self) -> &str {
        self.header("droid-cache").unwrap_or("(none)")
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP/1.1 response read off a raw socket, as a [`TestResponse`].
pub fn parse_raw_response(raw: &[u8]) -> TestResponse {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let mut headers = reqwest::header::HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()),
                reqwest::header::HeaderValue::from_str(value.trim()),
            )
        {
            headers.insert(name, value);
        }
    }
    TestResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The value of the Prometheus sample starting with `series` in `text`.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// Sends `request` and reads the whole response; panics when it fails.
pub(crate) async fn send(request: reqwest::RequestBuilder, path: &str) -> TestResponse {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("request to {path} failed: {e}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("response body");
    TestResponse {
        status,
        headers,
        body,
    }
}

/// The ingested ticket record type behind ingestion source `tracker`.
pub const TICKETS: &str = r#"
[record_types.ticket]
mode = "ingested"
transformer = "ticket_transformer.wasm"

[sources.tracker]
record_type = "ticket"
"#;

/// The compiled-artifact cache shared by every test, so each plugin compiles once.
fn shared_cache_dir() -> PathBuf {
    Path::new(droid_test_artifacts::DIR).join("../../cache")
}

/// Writes `droid.toml` (a `[plugins]` table pointing at a folder holding every test
/// plugin, a small instance pool of which each record type takes 8 unless it
/// says otherwise, then `record_types`) into a fresh temporary folder. A
/// `record_types` with a `[runtime]` table of its own sizes the pool itself.
pub fn write_config(record_types: &str) -> (tempfile::TempDir, PathBuf) {
    write_config_with(record_types, &[])
}

/// Like [`write_config`], with extra files (name, bytes) in the plugin folder.
pub fn write_config_with(
    record_types: &str,
    extra_plugins: &[(&str, &[u8])],
) -> (tempfile::TempDir, PathBuf) {
    write_config_full("watch = false\n", record_types, extra_plugins)
}

/// Like [`write_config_with`], with `plugin_settings` (lines of the `[plugins]`
/// table) instead of the default, which switches watching off.
pub fn write_config_full(
    plugin_settings: &str,
    record_types: &str,
    extra_plugins: &[(&str, &[u8])],
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).expect("plugin dir");
    for entry in std::fs::read_dir(droid_test_artifacts::DIR).expect("plugin artifacts") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "wasm") {
            std::fs::copy(&path, plugins.join(path.file_name().unwrap())).expect("copy plugin");
        }
    }
    for (name, bytes) in extra_plugins {
        std::fs::write(plugins.join(name), bytes).expect("write extra plugin");
    }
    // A snippet with a `[runtime]` table of its own replaces the harness's.
    let runtime = if record_types.contains("[runtime]") {
        ""
    } else {
        "[runtime]\nmax_instances = 64\n"
    };
    let config = format!(
        "[plugins]\ndir = \"plugins\"\ncache_dir = {:?}\n{plugin_settings}\n{runtime}\n# Each record type's share of the pool, so several fit in the tests' small one.\n[defaults]\nmax_in_flight = 8\n\n{record_types}",
        shared_cache_dir().display().to_string()
    );
    let path = dir.path().join("droid.toml");
    std::fs::write(&path, config).expect("write config");
    (dir, path)
}

/// Logs droid's events to the test output when `DROID_TEST_LOG` is set (a filter
/// such as `debug` or `droid_host=info`).
fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("DROID_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// Builds an app from the configuration at `path` and serves it on a loopback
/// port (`addr` when given).
async fn launch(
    path: &Path,
    addr: Option<SocketAddr>,
) -> Result<(Arc<App>, SocketAddr, Running), String> {
    let mut config = Config::load(path).map_err(|e| e.to_string())?;
    // Tests that are not about authentication run droid in its explicit
    // insecure mode; the authentication tests configure `[auth]` and send
    // real tokens.
    config.insecure_no_auth = config.auth.is_none();
    let app = tokio::task::spawn_blocking(move || App::build(config))
        .await
        .expect("build task")
        .map_err(|e| e.to_string())?;
    let app = Arc::new(app);
    app.start_streams().await.map_err(|e| e.to_string())?;
    // Watching starts before the test goes on, so no change it makes is missed.
    app.spawn_background();
    let listener = tokio::net::TcpListener::bind(addr.unwrap_or(([127, 0, 0, 1], 0).into()))
        .await
        .expect("bind droid");
    let addr = listener.local_addr().expect("droid address");
    let served = app.clone();
    let server = Running::spawn(move |stopped| {
        droid_host::server::run(served, listener, async {
            let _ = stopped.await;
        })
    });
    Ok((app, addr, server))
}

impl TestDroid {
    /// Starts droid with `record_types` (TOML `[record_types.*]` tables); panics
    /// with the reason when it does not start.
    pub async fn start(record_types: &str) -> Self {
        Self::try_start(record_types)
            .await
            .unwrap_or_else(|e| panic!("droid did not start: {e}"))
    }

    /// Starts droid, or returns the start-up error as text.
    pub async fn try_start(record_types: &str) -> Result<Self, String> {
        Self::try_start_with(record_types, &[]).await
    }

    /// Starts droid with extra files in its plugin folder, or returns the start-up error as text.
    pub async fn try_start_with(
        record_types: &str,
        extra_plugins: &[(&str, &[u8])],
    ) -> Result<Self, String> {
        Self::try_start_full("watch = false\n", record_types, extra_plugins).await
    }

    /// Starts droid with `plugin_settings` as the lines of its `[plugins]` table
    /// (watching is on unless they say otherwise); panics when it does not start.
    pub async fn start_with_plugin_settings(
        plugin_settings: &str,
        record_types: &str,
        extra_plugins: &[(&str, &[u8])],
    ) -> Self {
        Self::try_start_full(plugin_settings, record_types, extra_plugins)
            .await
            .unwrap_or_else(|e| panic!("droid did not start: {e}"))
    }

    async fn try_start_full(
        plugin_settings: &str,
        record_types: &str,
        extra_plugins: &[(&str, &[u8])],
    ) -> Result<Self, String> {
        init_logging();
        droid_host::tls::install_default_provider();
        let (dir, path) = write_config_full(plugin_settings, record_types, extra_plugins);
        let (app, addr, server) = launch(&path, None).await?;
        Ok(Self {
            addr,
            app: Some(app),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            server,
            dir,
        })
    }

    /// Stops this droid and starts a new one on the same folder (configuration,
    /// plugins and saved state), as a process restart would.
    /// The address stays the same, so clients (sidecars) find it again.
    pub async fn restart(&mut self) {
        self.halt().await;
        self.resume().await;
    }

    /// Stops this droid (gracefully, closing its store) without forgetting its
    /// folder or address: the droid is down until [`TestDroid::resume`].
    pub async fn halt(&mut self) {
        self.server.stop().await;
        // The old app must be gone (its store closed) before a new one opens
        // it; background threads hold it only for moments.
        if let Some(old) = self.app.take() {
            while Arc::strong_count(&old) > 1 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            // The tenancy thread lets go of the stores at its next page.
            let realms = old.service.realms.clone();
            drop(old);
            while Arc::strong_count(&realms) > 1 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    }

    /// Starts a halted droid again, on the same folder and address.
    pub async fn resume(&mut self) {
        let (app, addr, server) = launch(&self.config_path(), Some(self.addr))
            .await
            .unwrap_or_else(|e| panic!("droid did not restart: {e}"));
        (self.app, self.addr, self.server) = (Some(app), addr, server);
    }

    /// The plugin folder.
    pub fn plugin_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("droid.toml")
    }

    /// The running app, for in-process checks.
    pub fn app(&self) -> &Arc<App> {
        self.app.as_ref().expect("droid is running")
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(Method::GET, path).await
    }

    /// Sends a bodiless request.
    pub async fn request(&self, method: Method, path: &str) -> TestResponse {
        self.send(self.client.request(method, self.url(path)), path)
            .await
    }

    /// GETs `path` with extra headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> TestResponse {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request, path).await
    }

    /// Sends `body` (if any) to `path` with extra headers.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request, path).await
    }

    /// Sends a request (`body` with a JSON content type, if any) to droid's
    /// router in process, with no socket in between (`Router::oneshot`): for
    /// tests of what the API answers (routes, extractors, errors) rather than
    /// of the server loop.
    pub async fn call(&self, method: Method, path: &str, body: Option<&str>) -> TestResponse {
        use tower::ServiceExt;
        let mut request = axum::http::Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(axum::body::Body::from(body.unwrap_or_default().to_owned()))
            .expect("a request");
        let router = droid_host::api::router(self.app().clone());
        let response = router.oneshot(request).await.expect("the router answers");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("the whole body");
        TestResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// POSTs `body` (sent as is, with a JSON content type) to `path`.
    pub async fn post(&self, path: &str, body: &str) -> TestResponse {
        let request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        self.send(request, path).await
    }

    async fn send(&self, request: reqwest::RequestBuilder, path: &str) -> TestResponse {
        send(request, path).await
    }

    /// GETs `path` exactly as written, bypassing URL normalisation (HTTP clients
    /// resolve `..` and `%2e%2e` before sending; attackers do not).
    pub async fn raw_get(&self, path: &str) -> TestResponse {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: droid.test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        parse_raw_response(&raw)
    }

    /// The value of one sample in `/metrics`: the line starting with `series`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        sample(&self.get("/metrics").await.body, series)
    }

    /// Stops the server and waits for requests in flight to finish.
    pub async fn stop(mut self) {
        self.server.stop().await;
    }
}
