//! One builder for the configurations the end-to-end tests start droid with,
//! so a test names what it needs (a read-through `site` on a test backend, the
//! ingested tickets, a `[server]` table) instead of writing the TOML again.

use crate::droid::TICKETS;
use crate::{TestBackend, TestDroid};

/// A droid configuration being put together; [`Setup::start`] starts it.
///
/// Every part is a TOML chunk starting with its own table, so parts may come
/// in any order; the `extra` lines a record type takes go straight after its
/// table (keys of it, or sub-tables such as `[record_types.site.http]`).
#[derive(Debug, Default, Clone)]
pub struct Setup {
    toml: String,
}

impl Setup {
    /// An empty configuration (the harness adds `[plugins]`, `[runtime]` and
    /// `[defaults]`).
    pub fn new() -> Self {
        Self::default()
    }

    /// A read-through record type `name` served by `http_json_adapter.wasm`
    /// from `backend`'s `/records`, with `extra` lines in its table.
    pub fn read_through(mut self, name: &str, backend: &TestBackend, extra: &str) -> Self {
        self.toml.push_str(&format!(
            "\n[record_types.{name}]\nmode = \"read-through\"\nadapter = \"http_json_adapter.wasm\"\nbase_url = \"{}\"\n{extra}\n",
            backend.url("/records")
        ));
        self
    }

    /// The read-through record type `site` (see [`Setup::read_through`]).
    pub fn site(self, backend: &TestBackend, extra: &str) -> Self {
        self.read_through("site", backend, extra)
    }

    /// The ingested record type `ticket` behind source `tracker`.
    pub fn tickets(self) -> Self {
        self.raw(TICKETS)
    }

    /// A `[server]` table with `lines` in it.
    pub fn server(self, lines: &str) -> Self {
        self.raw(&format!("[server]\n{lines}\n"))
    }

    /// A `[store]` on PostgreSQL at `url`, in schema `schema`: several droids
    /// with the same one share records and the change log.
    pub fn postgres(self, url: &str, schema: &str) -> Self {
        self.raw(&format!(
            "[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"\npool_size = 8\npoll_interval_ms = 200\nstatement_timeout_ms = 20000\nconnect_timeout_ms = 2000\n"
        ))
    }

    /// Any other TOML, as written (each chunk starting with its table).
    pub fn raw(mut self, toml: &str) -> Self {
        self.toml.push('\n');
        self.toml.push_str(toml);
        self.toml.push('\n');
        self
    }

    /// The TOML put together so far.
    pub fn toml(&self) -> &str {
        &self.toml
    }

    /// Starts droid with it; panics with the reason when it does not start.
    pub async fn start(self) -> TestDroid {
        TestDroid::start(&self.toml).await
    }

    /// Starts droid with it, or returns the start-up error as text.
    pub async fn try_start(self) -> Result<TestDroid, String> {
        TestDroid::try_start(&self.toml).await
    }
}
