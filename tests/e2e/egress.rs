//! The egress rule holds against the known tricks: an adapter reaches only its
//! record type's base URL, and a refused request never leaves the host.

use droid_e2e::{TestBackend, TestDroid};

/// The tricks, each as the URL the probe plugin requests (`{P}` is the real
/// store's port, `{E}` the other server's).
const TRICKS: &[(&str, &str)] = &[
    ("outside-path", "http://localhost:{P}/admin"),
    ("prefix-lookalike", "http://localhost:{P}/recordsX/x"),
    ("dotdot", "http://localhost:{P}/records/../admin"),
    (
        "encoded-dotdot",
        "http://localhost:{P}/records/%2e%2e/admin",
    ),
    (
        "encoded-slash",
        "http://localhost:{P}/records/x%2F..%2F..%2Fadmin",
    ),
    ("other-host", "http://127.0.0.1:{E}/records/x"),
    ("userinfo", "http://localhost:{P}@127.0.0.1:{E}/records/x"),
    ("credentials", "http://user:secret@localhost:{P}/records/x"),
    ("ip-literal", "http://127.0.0.1:{P}/records/x"),
    ("ip-decimal", "http://2130706433:{P}/records/x"),
    ("ip-hex", "http://0x7f.0.0.1:{P}/records/x"),
    ("ipv6-literal", "http://[::1]:{P}/records/x"),
    ("trailing-dot", "http://localhost.:{P}/records/x"),
    ("other-port", "http://localhost:{E}/records/x"),
    ("other-scheme", "https://localhost:{P}/records/x"),
    ("file-scheme", "file:///etc/passwd"),
    ("host-header", "http://localhost:{P}/records/x"),
    ("redirect", "http://localhost:{P}/records/redirect"),
];

async fn setup() -> (TestBackend, TestBackend, TestDroid) {
    let store = TestBackend::start().await;
    let elsewhere = TestBackend::start().await;
    let (p, e) = (
        store.addr().port().to_string(),
        elsewhere.addr().port().to_string(),
    );
    store.redirect_to(&format!("http://127.0.0.1:{e}/records/x"));
    let mut values: String = TRICKS
        .iter()
        .map(|(name, url)| format!("{name} = {:?}\n", url.replace("{P}", &p).replace("{E}", &e)))
        .collect();
    values.push_str(&format!("allowed = \"http://localhost:{p}/records/x\"\n"));
    let droid = TestDroid::start(&format!(
        r#"
[record_types.probe]
mode = "read-through"
adapter = "egress_probe.wasm"
base_url = "http://localhost:{p}/records"

[record_types.probe.config]
{values}
"#
    ))
    .await;
    (store, elsewhere, droid)
}

/// The control: a request under the base URL goes through.
#[tokio::test]
async fn a_request_under_the_base_url_goes_through() {
    let (store, _elsewhere, droid) = setup().await;
    let r = droid.get("/v1/entity/probe/allowed").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], 404);
    assert_eq!(store.seen().len(), 1);
}

/// Every trick is refused with `egress_denied`, and nothing reaches the other server.
#[tokio::test]
async fn every_known_trick_is_refused_before_anything_is_sent() {
    let (store, elsewhere, droid) = setup().await;
    for (name, _) in TRICKS {
        let r = droid.get(&format!("/v1/entity/probe/{name}")).await;
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (502, "egress_denied"),
            "trick {name} was not refused: {}",
            r.body
        );
    }
    assert!(
        elsewhere.seen().is_empty(),
        "the other server was reached: {:?}",
        elsewhere.seen()
    );
    // Only the redirect's first hop, which is inside the base URL, reached the store.
    let paths: Vec<String> = store.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, vec!["/records/redirect"]);
}

/// Denials are counted per record type.
#[tokio::test]
async fn denials_are_counted() {
    let (_store, _elsewhere, droid) = setup().await;
    droid.get("/v1/entity/probe/other-host").await;
    let metrics = droid.get("/metrics").await.body;
    assert!(
        metrics.contains(r#"droid_egress_denied_total{record_type="probe"}"#),
        "{metrics}"
    );
}
