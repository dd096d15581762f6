//! A generic backing-store adapter for droid's read-through contract.
//!
//! On a miss droid calls this adapter, which sends `GET {base_url}/{key}` (the key
//! percent-encoded as one path segment) with `Accept: application/json`, and reads
//! the answer by the contract:
//!
//! | backing store answers | droid serves |
//! |---|---|
//! | `200` with a JSON body | the record (`200`) |
//! | `404` | not found (`404`) |
//! | anything else | a backing-store error (`502`), with the status |
//!
//! Optional config values (the record type's `config` table in `droid.toml`):
//!
//! - `tenant_header`: send the tenant in this request header (for stores that
//!   serve several tenants under one URL);
//! - `version_field`: a top-level numeric field of the JSON body that holds the
//!   record's version.

use droid_sdk::{Adapter, FetchOutcome, FetchRequest, Fetched, PluginError, config, http};

/// The adapter.
#[derive(Debug)]
pub struct HttpJsonAdapter;

/// How much of an unexpected body goes into the error message.
const BODY_EXCERPT: usize = 200;

impl Adapter for HttpJsonAdapter {
    fn fetch(req: FetchRequest) -> Result<FetchOutcome, PluginError> {
        let mut request =
            http::Request::get(http::url_for_key(&req.key)).header("accept", "application/json");
        if let Some(header) = config::get("tenant_header") {
            request = request.header(header, req.tenant.clone());
        }
        let response = request.send()?;
        match response.status {
            200 => {
                let body = response.text()?.to_owned();
                let version = match config::get("version_field") {
                    Some(field) => version_of(&body, &field)?,
                    None => None,
                };
                Ok(FetchOutcome::Found(Fetched { body, version }))
            }
            404 => Ok(FetchOutcome::NotFound),
            status => {
                let text = String::from_utf8_lossy(&response.body);
                let excerpt: String = text.chars().take(BODY_EXCERPT).collect();
                Err(PluginError::UpstreamStatus {
                    status,
                    message: if excerpt.is_empty() {
                        format!("unexpected status {status}")
                    } else {
                        format!("unexpected status {status}: {excerpt}")
                    },
                })
            }
        }
    }
}

/// Reads a numeric top-level `field` of a JSON object body.
fn version_of(body: &str, field: &str) -> Result<Option<u64>, PluginError> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| PluginError::UpstreamStatus {
            status: 200,
            message: format!("the body is not JSON: {e}"),
        })?;
    Ok(value.get(field).and_then(serde_json::Value::as_u64))
}

droid_sdk::export_adapter!(HttpJsonAdapter);

#[cfg(test)]
mod tests {
    use droid_sdk::http::HttpError;
    use droid_sdk::testing::TestHost;

    use super::*;

    fn host() -> TestHost {
        TestHost::new().base_url("http://store.test/records")
    }

    #[test]
    fn a_200_is_the_record_with_its_body_as_served() {
        let host = host().respond(
            "http://store.test/records/K-1",
            200,
            r#"{"id":"K-1","version":4}"#,
        );
        let outcome = host
            .fetch::<HttpJsonAdapter>("things", "K-1", "acme")
            .unwrap();
        let FetchOutcome::Found(record) = outcome else {
            panic!("expected a record")
        };
        assert_eq!(record.body, r#"{"id":"K-1","version":4}"#);
        assert_eq!(record.version, None);
        assert_eq!(
            host.requests()[0].headers,
            vec![("accept".to_owned(), "application/json".to_owned())]
        );
    }

    #[test]
    fn keys_are_percent_encoded_as_one_segment() {
        let host = host().respond("http://store.test/records/a%20b%3F%23%25", 200, "{}");
        assert!(
            host.fetch::<HttpJsonAdapter>("things", "a b?#%", "t")
                .is_ok()
        );
    }

    #[test]
    fn a_404_is_not_found() {
        let host = host().respond("http://store.test/records/nope", 404, "");
        assert_eq!(
            host.fetch::<HttpJsonAdapter>("things", "nope", "t"),
            Ok(FetchOutcome::NotFound)
        );
    }

    #[test]
    fn other_statuses_are_backing_store_errors_with_an_excerpt() {
        let host = host().respond("http://store.test/records/x", 503, "overloaded");
        assert_eq!(
            host.fetch::<HttpJsonAdapter>("things", "x", "t"),
            Err(PluginError::UpstreamStatus {
                status: 503,
                message: "unexpected status 503: overloaded".into()
            })
        );
    }

    #[test]
    fn transport_failures_keep_their_meaning() {
        let host = host().fail("http://store.test/records/slow", HttpError::Timeout);
        assert!(matches!(
            host.fetch::<HttpJsonAdapter>("things", "slow", "t"),
            Err(PluginError::UpstreamTimeout(_))
        ));
    }

    #[test]
    fn config_adds_the_tenant_header_and_reads_the_version() {
        let host = host()
            .config("tenant_header", "x-tenant")
            .config("version_field", "rev")
            .respond("http://store.test/records/v", 200, r#"{"rev":12}"#);
        let FetchOutcome::Found(entity) = host
            .fetch::<HttpJsonAdapter>("things", "v", "acme")
            .unwrap()
        else {
            panic!("expected a record")
        };
        assert_eq!(entity.version, Some(12));
        assert!(
            host.requests()[0]
                .headers
                .contains(&("x-tenant".to_owned(), "acme".to_owned()))
        );
    }
}
