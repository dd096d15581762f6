//! The test host refuses what droid refuses, by the same rules: a plugin that
//! passes its native tests is not denied inside droid.

use droid_sdk::http::{self, HttpError, Request};
use droid_sdk::testing::TestHost;
use droid_sdk::{Entity, EntityOp, EntityRef, PluginError, SourceEvent, Transformer};

fn host() -> TestHost {
    TestHost::new()
        .base_url("http://store.test/api/v1")
        .respond("http://store.test/api/v1/a", 200, "{}")
}

fn denied(result: Result<http::Response, HttpError>) -> String {
    match result {
        Err(HttpError::Denied(why)) => why,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn requests_outside_the_base_url_are_denied_as_droid_denies_them() {
    let host = host();
    host.run(|| {
        assert!(http::get("http://store.test/api/v1/a").is_ok());
        for url in [
            "http://store.test/api/v1/%2e%2e/admin",
            "http://store.test/api/v1/a%2F..%2F..%2Fadmin",
            "http://store.test/api/v1/../admin",
            "http://store.test/api/v10",
            "http://user@store.test/api/v1/a",
            "https://store.test/api/v1/a",
            "http://store.test:81/api/v1/a",
        ] {
            let why = denied(http::get(url));
            assert!(!why.is_empty(), "{url}");
        }
    });
}

#[test]
fn headers_the_host_owns_are_denied() {
    let host = host();
    host.run(|| {
        for name in [
            "Host",
            "Proxy-Authorization",
            "proxy-anything",
            "Transfer-Encoding",
        ] {
            let request = Request::get("http://store.test/api/v1/a").header(name, "x");
            let why = denied(request.send());
            assert!(why.contains("set by the host"), "{name}: {why}");
        }
        let fine = Request::get("http://store.test/api/v1/a").header("accept", "application/json");
        assert!(fine.send().is_ok());
    });
}

/// Writes whatever the event's payload names: key, tenant and version.
struct Echo;

impl Transformer for Echo {
    fn transform(event: SourceEvent) -> Result<Vec<EntityOp>, PluginError> {
        let v: serde_json::Value = event.json()?;
        let key = v["key"].as_str().unwrap_or_default().to_owned();
        let tenant = v["tenant"].as_str().unwrap_or(&event.tenant).to_owned();
        let version = v["version"].as_u64();
        Ok(vec![
            EntityOp::Upsert(Entity {
                key: key.clone(),
                tenant: tenant.clone(),
                body: "{}".to_owned(),
                version,
            }),
            EntityOp::Delete(EntityRef {
                key: format!("{key}-old"),
                tenant,
                version,
            }),
        ])
    }
}

fn event(payload: &str) -> SourceEvent {
    SourceEvent {
        id: "e1".to_owned(),
        source: "jira".to_owned(),
        kind: "ticket.updated".to_owned(),
        tenant: "acme".to_owned(),
        occurred_at: 1,
        payload: payload.as_bytes().to_vec(),
    }
}

#[test]
fn changes_droid_would_refuse_come_back_as_errors() {
    let results = TestHost::new().transform::<Echo>(vec![
        event(r#"{"key": "T-1"}"#),
        event(r#"{"key": "a/b"}"#),
        event(r#"{"key": "T-2", "tenant": "globex"}"#),
        event(r#"{"key": "T-3", "version": 9007199254740992}"#),
    ]);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    for (n, result) in results.iter().enumerate().skip(1) {
        match result {
            Err(PluginError::Internal(why)) => {
                assert!(why.starts_with("droid would refuse this event"), "{why}")
            }
            other => panic!("event {n}: expected a refusal, got {other:?}"),
        }
    }
}
