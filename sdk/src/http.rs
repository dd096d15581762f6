//! Outbound HTTP for adapters.
//!
//! Requests may go only under the record type's base URL: droid refuses anything
//! else (another host, port or scheme, a path outside the base, credentials in the
//! URL, host-owned headers such as `Host`) with [`HttpError::Denied`]. Redirects
//! are not followed; a 3xx comes back as it is. Each request is bounded by the
//! record type's request timeout and by the plugin call's deadline.
//!
//! Only adapters may use this module: a transformer that calls it is refused at
//! load time.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::host;
use crate::types::PluginError;

/// Request methods a plugin may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
}

/// One HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// An absolute URL under the record type's base URL.
    pub url: String,
    /// Extra headers, as name and value.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// A GET of `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            method: Method::Get,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sends the request.
    pub fn send(self) -> Result<Response, HttpError> {
        host::http_send(self)
    }
}

/// One HTTP response, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, PluginError> {
        std::str::from_utf8(&self.body).map_err(|_| PluginError::UpstreamStatus {
            status: self.status,
            message: "the response body is not UTF-8".to_owned(),
        })
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// droid refused to send it; the reason names the rule it broke.
    Denied(String),
    /// No response in time.
    Timeout,
    /// The connection could not be made.
    Connect(String),
    /// The response was larger than the record type allows (the limit in bytes).
    ResponseTooLarge(u64),
    /// The exchange broke off or was not valid HTTP.
    Protocol(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Denied(m) => write!(f, "request denied: {m}"),
            HttpError::Timeout => f.write_str("request timed out"),
            HttpError::Connect(m) => write!(f, "connection failed: {m}"),
            HttpError::ResponseTooLarge(n) => write!(f, "response larger than {n} bytes"),
            HttpError::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Lets adapters use `?` on requests: each transport failure becomes the plugin
/// error that tells droid whose problem it is.
impl From<HttpError> for PluginError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Timeout => PluginError::UpstreamTimeout(e.to_string()),
            HttpError::Connect(_) | HttpError::Protocol(_) => {
                PluginError::UpstreamUnavailable(e.to_string())
            }
            HttpError::Denied(_) | HttpError::ResponseTooLarge(_) => {
                PluginError::Internal(e.to_string())
            }
        }
    }
}

/// The record type's base URL, without a trailing slash.
pub fn base_url() -> String {
    host::http_base_url()
}

/// Characters kept as they are in a path segment (RFC 3986 unreserved); everything
/// else is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `{base_url}/{key}` with the key percent-encoded as one path segment: the
/// read-through contract's URL for a key.
pub fn url_for_key(key: &str) -> String {
    format!(
        "{}/{}",
        base_url().trim_end_matches('/'),
        utf8_percent_encode(key, SEGMENT)
    )
}

/// GETs `url`.
pub fn get(url: impl Into<String>) -> Result<Response, HttpError> {
    Request::get(url).send()
}
