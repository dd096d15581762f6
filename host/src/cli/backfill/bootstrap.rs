//! The provider's side of a backfill: its bootstrap endpoint, one page at a time.
//!
//! The contract (also in the README): `GET {bootstrap_url}?limit=N` for the
//! first page and `GET {bootstrap_url}?limit=N&cursor=C` for the next, each
//! answering `200` with
//! `{"events": [...], "next_cursor": "C" | null, "total": 12345}`.
//! Events have the shape `POST /v1/ingest/{source}` takes; `next_cursor` is
//! opaque and absent or `null` on the last page; `total` (optional) is the
//! endpoint's estimate of all events, for the progress bar's ETA.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::retry::{Attempt, Retry};

/// One page of the bootstrap endpoint.
#[derive(Debug, Deserialize)]
pub struct Page {
    /// The events, kept as the provider wrote them: droid parses them.
    pub events: Vec<Box<RawValue>>,
    /// The next page's cursor; `None` on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
    /// The endpoint's estimate of all events.
    #[serde(default)]
    pub total: Option<u64>,
}

/// A client of one bootstrap endpoint.
#[derive(Debug)]
pub struct Bootstrap {
    url: url::Url,
    headers: Vec<(String, String)>,
    page_size: usize,
    client: reqwest::Client,
}

impl Bootstrap {
    /// A client of the endpoint at `url`, sending `headers` with every request
    /// (such as the provider's `Authorization`).
    pub fn new(
        url: url::Url,
        headers: Vec<(String, String)>,
        page_size: usize,
        client: reqwest::Client,
    ) -> Self {
        Self {
            url,
            headers,
            page_size,
            client,
        }
    }

    /// The page at `cursor` (the first page for `None`), retrying what may pass.
    pub async fn page(&self, cursor: Option<&str>, retry: &Retry) -> anyhow::Result<Page> {
        let mut url = self.url.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &self.page_size.to_string());
            if let Some(cursor) = cursor {
                query.append_pair("cursor", cursor);
            }
        }
        let page = retry
            .run(&format!("GET {url}"), || self.fetch(&url))
            .await?;
        if page.next_cursor.is_some() && page.next_cursor.as_deref() == cursor {
            bail!(
                "the bootstrap endpoint answered cursor {:?} with the same cursor as the next one; following it would never end",
                cursor.unwrap_or_default()
            );
        }
        Ok(page)
    }

    async fn fetch(&self, url: &url::Url) -> Attempt<Page> {
        let mut request = self.client.get(url.clone());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Attempt::Again(format!("{e}"), None),
        };
        let status = response.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let wait = retry_after(&response);
            return Attempt::Again(format!("the bootstrap endpoint answered {status}"), wait);
        }
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => return Attempt::Again(format!("reading the page: {e}"), None),
        };
        if !status.is_success() {
            return Attempt::Fatal(anyhow::anyhow!(
                "the bootstrap endpoint answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(500)])
            ));
        }
        match serde_json::from_slice(&body).context(
            "the bootstrap endpoint's page does not follow the contract ({\"events\": [...], \"next_cursor\": ...})",
        ) {
            Ok(page) => Attempt::Done(page),
            Err(e) => Attempt::Fatal(e),
        }
    }
}

/// The `Retry-After` of an answer, in whole seconds.
pub fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}
