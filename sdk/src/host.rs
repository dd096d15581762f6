//! The seam between the SDK's functions and whoever provides them: droid's real
//! imports inside a WebAssembly component, or the [`testing`](crate::testing) host
//! in native unit tests.

use crate::http::{HttpError, Request, Response};
use crate::log::Level;

pub(crate) use imp::*;

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;
    use crate::export::adapter::droid::plugin::{clock, config, log, outbound_http as h};

    pub(crate) fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::log(level, message);
    }

    pub(crate) fn now_ms() -> u64 {
        clock::now()
    }

    pub(crate) fn config_get(name: &str) -> Option<String> {
        config::get(name)
    }

    pub(crate) fn config_names() -> Vec<String> {
        config::names()
    }

    pub(crate) fn http_base_url() -> String {
        h::base_url()
    }

    pub(crate) fn http_send(request: Request) -> Result<Response, HttpError> {
        use crate::http::Method;
        let method = match request.method {
            Method::Get => h::Method::Get,
            Method::Head => h::Method::Head,
            Method::Post => h::Method::Post,
            Method::Put => h::Method::Put,
            Method::Delete => h::Method::Delete,
        };
        let request = h::Request {
            method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        };
        match h::send(&request) {
            Ok(r) => Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(h::HttpError::Denied(m)) => Err(HttpError::Denied(m)),
            Err(h::HttpError::Timeout) => Err(HttpError::Timeout),
            Err(h::HttpError::Connect(m)) => Err(HttpError::Connect(m)),
            Err(h::HttpError::ResponseTooLarge(n)) => Err(HttpError::ResponseTooLarge(n)),
            Err(h::HttpError::Protocol(m)) => Err(HttpError::Protocol(m)),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::*;
    use crate::testing::with_current;

    pub(crate) fn log(level: Level, message: &str) {
        with_current(|h| h.record_log(level, message));
    }

    pub(crate) fn now_ms() -> u64 {
        with_current(|h| h.now_ms())
    }

    pub(crate) fn config_get(name: &str) -> Option<String> {
        with_current(|h| h.config_get(name))
    }

    pub(crate) fn config_names() -> Vec<String> {
        with_current(|h| h.config_names())
    }

    pub(crate) fn http_base_url() -> String {
        with_current(|h| h.base_url())
    }

    pub(crate) fn http_send(request: Request) -> Result<Response, HttpError> {
        with_current(|h| h.http_send(request))
    }
}
