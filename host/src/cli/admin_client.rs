//! A small client of a running droid's admin API, for the commands that talk
//! to one: answers come back as the API's own types
//! (`droid_host::api::answers`), errors as the API's code and message.

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::credentials::CredentialArgs;

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

    /// GETs `path` and returns its answer, or the server's error as an error.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.client.get(self.url(path)))
    }

    /// POSTs `body` to `path` and returns the answer.
    pub fn post<T: DeserializeOwned>(&self, path: &str, body: Value) -> anyhow::Result<T> {
        self.send(
            self.client
                .post(self.url(path))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
    }

    /// PUTs `body` to `path` and returns the answer.
    pub fn put<T: DeserializeOwned>(&self, path: &str, body: Value) -> anyhow::Result<T> {
        self.send(
            self.client
                .put(self.url(path))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
    }

    /// POSTs `bytes` (of `content_type`, with `headers`) to `path` and
    /// returns the answer.
    pub fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        headers: &[(&str, String)],
        bytes: Vec<u8>,
    ) -> anyhow::Result<T> {
        let mut request = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(bytes);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        self.send(request)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send<T: DeserializeOwned>(&self, mut request: reqwest::RequestBuilder) -> anyhow::Result<T> {
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
            serde_json::from_value(json).with_context(|| {
                format!("droid's answer ({status}) is not what this droid command expects")
            })
        })
    }
}
