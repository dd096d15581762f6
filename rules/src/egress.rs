//! The egress rule for adapters: a request may go only under the record type's base URL.
//!
//! The check works on the URL as the HTTP client will send it (parsed and
//! normalised by the `url` crate, so dot segments, IP-literal spellings and
//! `user@host` tricks are resolved before comparing), and compares scheme, host and
//! port exactly and the path segment-wise. Hosts are compared as written in the
//! base URL: an IP literal does not match a host name even when DNS would resolve
//! them to the same address, which is the conservative answer.
//!
//! Not covered: DNS rebinding of the base URL's own host name; the base URL is
//! trusted configuration.

use url::Url;

/// Request headers a plugin may not set, because the host owns them or because they
/// could smuggle a second request or redirect the connection.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "expect",
    "proxy-authorization",
    "proxy-connection",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// The egress allowance of one record type.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    base: Url,
}

impl EgressPolicy {
    /// The allowance for `base` (already validated by the config: http(s), a host,
    /// no credentials, query or fragment, no trailing slash).
    pub fn new(base: Url) -> Self {
        Self { base }
    }

    /// The base URL, as plugins see it.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// Checks `url` and returns it parsed, or says which rule it breaks.
    pub fn check_url(&self, url: &str) -> Result<Url, String> {
        let parsed =
            Url::parse(url).map_err(|e| format!("{url:?} is not an absolute URL ({e})"))?;
        if parsed.scheme() != self.base.scheme() {
            return Err(format!(
                "scheme {:?} differs from the base URL's {:?}",
                parsed.scheme(),
                self.base.scheme()
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("URLs with credentials (user@host) are not allowed".to_owned());
        }
        if parsed.host() != self.base.host() {
            return Err(format!(
                "host {} is not the base URL's host {}",
                parsed.host_str().unwrap_or("(none)"),
                self.base.host_str().unwrap_or("(none)")
            ));
        }
        if parsed.port_or_known_default() != self.base.port_or_known_default() {
            return Err(format!(
                "port {} is not the base URL's port {}",
                display_port(&parsed),
                display_port(&self.base)
            ));
        }
        let path = parsed.path();
        let lower = path.to_ascii_lowercase();
        if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%2e") {
            return Err("encoded '/', '\\' or '.' in the path are not allowed".to_owned());
        }
        let base_path = self.base.path().trim_end_matches('/');
        let inside = path == base_path
            || path
                .strip_prefix(base_path)
                .is_some_and(|rest| rest.starts_with('/'));
        if !inside {
            return Err(format!(
                "path {path:?} is outside the base URL's path {base_path:?}"
            ));
        }
        Ok(parsed)
    }

    /// Checks one request header name.
    pub fn check_header(&self, name: &str) -> Result<(), String> {
        let lower = name.to_ascii_lowercase();
        if FORBIDDEN_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-") {
            return Err(format!(
                "header {name:?} is set by the host, not by plugins"
            ));
        }
        Ok(())
    }
}

fn display_port(url: &Url) -> String {
    url.port_or_known_default()
        .map_or_else(|| "(none)".to_owned(), |p| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> EgressPolicy {
        EgressPolicy::new(Url::parse("http://records.internal:8080/api/v1").unwrap())
    }

    #[test]
    fn urls_under_the_base_are_allowed() {
        let p = policy();
        for ok in [
            "http://records.internal:8080/api/v1",
            "http://records.internal:8080/api/v1/KEY-1",
            "http://RECORDS.internal:8080/api/v1/a%20b?x=1",
            "http://records.internal:8080/api/v1/x/../y",
        ] {
            assert!(
                p.check_url(ok).is_ok(),
                "{ok} should pass: {:?}",
                p.check_url(ok)
            );
        }
    }

    #[test]
    fn the_known_tricks_are_refused() {
        let p = policy();
        for bad in [
            "http://records.internal:8080/api/v10",
            "http://records.internal:8080/api",
            "http://records.internal:8080/api/v1/../admin",
            "http://records.internal:8080/api/v1/%2e%2e/admin",
            "http://records.internal:8080/api/v1/a%2F..%2F..%2Fadmin",
            "http://records.internal:8080@evil.example/api/v1",
            "http://user:pw@records.internal:8080/api/v1/x",
            "https://records.internal:8080/api/v1/x",
            "http://records.internal:8081/api/v1/x",
            "http://records.internal/api/v1/x",
            "http://127.0.0.1:8080/api/v1/x",
            "http://2130706433:8080/api/v1/x",
            "http://[::1]:8080/api/v1/x",
            "http://records.internal.:8080/api/v1/x",
            "file:///etc/passwd",
            "/api/v1/x",
        ] {
            assert!(p.check_url(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn host_owned_headers_are_refused() {
        let p = policy();
        assert!(p.check_header("Host").is_err());
        assert!(p.check_header("transfer-encoding").is_err());
        assert!(p.check_header("Proxy-Foo").is_err());
        assert!(p.check_header("accept").is_ok());
        assert!(p.check_header("x-tenant").is_ok());
    }
}
