//! droid's side of a backfill: each chunk of events goes to the running droid's
//! `POST /v1/ingest/{source}`, through the transformer into the store, exactly
//! as live events do (so the same idempotency, version order, dead letters and
//! rate limit apply).

use serde_json::value::RawValue;

use super::super::credentials::CredentialArgs;
use super::bootstrap::retry_after;
use super::retry::{Attempt, Retry};

/// droid refused a post as too large (`413`: over the source's burst or the
/// request limits); the same events in smaller posts may pass.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TooLarge(pub String);

/// The ingestion endpoint of one source on a running droid.
#[derive(Debug)]
pub struct Sink {
    url: String,
    client: reqwest::Client,
    credentials: CredentialArgs,
}

impl Sink {
    /// The endpoint of `source` on the droid at `server`.
    pub fn new(
        server: &str,
        source: &str,
        client: reqwest::Client,
        credentials: CredentialArgs,
    ) -> Self {
        Self {
            url: format!("{}/v1/ingest/{source}", server.trim_end_matches('/')),
            client,
            credentials,
        }
    }

    /// Posts `events` and returns droid's answer once it has acknowledged them.
    pub async fn post(
        &self,
        events: &[Box<RawValue>],
        retry: &Retry,
    ) -> anyhow::Result<serde_json::Value> {
        let body = serde_json::to_string(events)?;
        retry
            .run(&format!("POST {}", self.url), || self.send(body.clone()))
            .await
    }

    async fn send(&self, body: String) -> Attempt<serde_json::Value> {
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        // A fresh token for every try: droid refuses a token used before.
        match self.credentials.authorization() {
            Ok(Some(authorization)) => {
                request = request.header(reqwest::header::AUTHORIZATION, authorization);
            }
            Ok(None) => {}
            Err(e) => return Attempt::Fatal(e),
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Attempt::Again(format!("{e}"), None),
        };
        let status = response.status();
        let wait = retry_after(&response);
        let text = match response.text().await {
            Ok(text) => text,
            Err(e) => return Attempt::Again(format!("reading droid's answer: {e}"), None),
        };
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Attempt::Wait(wait.unwrap_or(std::time::Duration::from_secs(1)));
        }
        if status.is_server_error() {
            return Attempt::Again(format!("droid answered {status}: {text}"), wait);
        }
        let json: serde_json::Value = match serde_json::from_str(&text) {
            Ok(json) => json,
            Err(_) => {
                return Attempt::Fatal(anyhow::anyhow!(
                    "droid answered {status} with a body that is not JSON: {text}"
                ));
            }
        };
        if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE {
            return Attempt::Fatal(TooLarge(text).into());
        }
        if !status.is_success() {
            let code = json["error"]["code"].as_str().unwrap_or("?");
            let message = json["error"]["message"].as_str().unwrap_or(&text);
            return Attempt::Fatal(anyhow::anyhow!("{message} ({status}, {code})"));
        }
        Attempt::Done(json)
    }
}
