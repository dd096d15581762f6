//! `droid plugins list|rollout|promote|rollback`: a small client of the admin
//! API of a running droid, printing for a person (or JSON with `--json`).

use anyhow::{Context, bail};

use super::credentials::CredentialArgs;
use serde_json::Value;

/// Where the running droid listens.
pub struct Server {
    base: String,
    credentials: CredentialArgs,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    /// A client of the droid at `base` (such as `http://127.0.0.1:8080`).
    pub fn new(base: &str, credentials: CredentialArgs) -> anyhow::Result<Self> {
        droid_host::tls::install_default_provider();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("cannot build an HTTP client")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            credentials,
            client,
            runtime,
        })
    }

    /// GETs `path` and returns its JSON, or the server's error as an error.
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.client.get(self.url(path)))
    }

    /// POSTs `body` to `path` and returns the JSON answer.
    pub fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(
            self.client
                .post(self.url(path))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(&self, mut request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        if let Some(authorization) = self.credentials.authorization()? {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        self.runtime.block_on(async {
            let response = request
                .send()
                .await
                .with_context(|| format!("cannot reach droid at {}", self.base))?;
            let status = response.status();
            let text = response.text().await?;
            let json: Value = serde_json::from_str(&text)
                .with_context(|| format!("droid answered {status} with a body that is not JSON"))?;
            if !status.is_success() {
                let code = json["error"]["code"].as_str().unwrap_or("?");
                let message = json["error"]["message"].as_str().unwrap_or(&text);
                bail!("{message} ({status}, {code})");
            }
            Ok(json)
        })
    }
}

/// Prints the plugin list as a table.
pub fn print_plugins(list: &Value) {
    let plugins = list["plugins"].as_array().cloned().unwrap_or_default();
    if plugins.is_empty() {
        println!("no plugins loaded");
    }
    for plugin in &plugins {
        println!(
            "{} ({})",
            plugin["name"].as_str().unwrap_or("?"),
            plugin["world"].as_str().unwrap_or("?")
        );
        println!(
            "  {:<28} {:<12} {:>7} {:>9} {:>8} {:>7} {:>10}  file",
            "version", "state", "share", "calls", "failures", "traps", "mean"
        );
        for v in plugin["versions"].as_array().into_iter().flatten() {
            let calls = &v["calls"];
            let file = v["file"].as_str().unwrap_or("?");
            let on_disk = if v["on_disk"].as_bool().unwrap_or(true) {
                ""
            } else {
                " (file gone or replaced)"
            };
            println!(
                "  {:<28} {:<12} {:>7} {:>9} {:>8} {:>7} {:>8.0}us  {file}{on_disk}",
                v["label"].as_str().unwrap_or("?"),
                v["state"].as_str().unwrap_or("?"),
                v["share"].as_str().unwrap_or("?"),
                calls["calls"].as_u64().unwrap_or(0),
                calls["failures"].as_u64().unwrap_or(0),
                calls["traps"].as_u64().unwrap_or(0),
                v["mean_call_us"].as_f64().unwrap_or(0.0),
            );
        }
        if let Some(rb) = plugin["last_rollback"].as_object() {
            println!(
                "  last rollback: {} -> {} ({}): {}",
                rb["version"].as_str().unwrap_or("?"),
                rb["serving"].as_str().unwrap_or("?"),
                if rb["automatic"].as_bool().unwrap_or(false) {
                    "automatic"
                } else {
                    "manual"
                },
                rb["reason"].as_str().unwrap_or("?")
            );
        }
    }
    let failures = list["load_failures"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !failures.is_empty() {
        println!("files that did not load:");
        for f in failures {
            println!(
                "  {}: {}",
                f["file"].as_str().unwrap_or("?"),
                f["reason"].as_str().unwrap_or("?")
            );
        }
    }
}
