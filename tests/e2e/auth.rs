//! Service authentication and access control, with real signed tokens: the
//! negative matrix (each refusal with its status and code, never a 500), each
//! role inside and outside its grant, key repositories over HTTP, and the
//! replay rule.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use droid_e2e::tokens::{self, Algorithm, EncodingKey, Issuers, RSA_A, RSA_B, claims, sign};
use droid_e2e::{TestBackend, TestDroid, TestResponse};
use reqwest::Method;
use serde_json::json;

/// A droid where `reader` reads sites and tickets, `invalidator` invalidates
/// sites, `tracker` publishes tickets and `ops` administers.
async fn droid(issuers: &Issuers, backend: &TestBackend, auth_extra: &str) -> TestDroid {
    TestDroid::start(&format!(
        r#"{}
[record_types.site]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "{}"
readers = ["reader"]
invalidators = ["invalidator"]

[record_types.ticket]
mode = "ingested"
transformer = "ticket_transformer.wasm"
readers = ["*"]

[sources.tracker]
record_type = "ticket"
publishers = ["tracker"]
"#,
        issuers.auth_table(&["ops"], auth_extra),
        backend.url("/records")
    ))
    .await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn read_site(droid: &TestDroid, token: &str) -> TestResponse {
    droid
        .get_with("/v1/entity/site/a", &[("authorization", &bearer(token))])
        .await
}

fn b64(value: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Asserts a refusal: its status, its code, and for a 401 the challenge.
fn refused(r: &TestResponse, status: u16, code: &str, case: &str) {
    assert_eq!(r.status, status, "{case}: {}", r.body);
    assert_eq!(r.error_code(), code, "{case}: {}", r.body);
    if status == 401 {
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer realm=\"droid\""),
            "{case}: {challenge}"
        );
    }
    // The message names the failed check, never key material.
    assert!(!r.body.contains("BEGIN"), "{case}: {}", r.body);
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_own_code() {
    let issuers = Issuers::new(&["reader", "other"]);
    let backend = TestBackend::start().await;
    backend.put("a", r#"{"n":"a"}"#);
    let droid = droid(&issuers, &backend, "").await;
    let reader_es = issuers.es_key("reader");
    let now = tokens::now_s();
    let spoilt = |change: serde_json::Value| {
        let mut c = claims("reader");
        for (k, v) in change.as_object().unwrap() {
            c[k] = v.clone();
        }
        sign(Algorithm::ES256, "reader/es", &c, &reader_es)
    };
    let valid = issuers.token("reader");
    let (head, rest) = valid.split_once('.').unwrap();
    let (payload, _signature) = rest.split_once('.').unwrap();
    let other_payload = b64(&claims("reader"));
    let public_pem = std::fs::read(format!("{RSA_A}.pub")).unwrap();

    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("no token", None, 401, "missing_token"),
        (
            "not bearer",
            Some(format!("Basic {valid}")),
            401,
            "missing_token",
        ),
        (
            "malformed",
            Some(bearer("not-a-jwt")),
            401,
            "malformed_token",
        ),
        (
            "bad signature",
            Some(bearer(&format!(
                "{head}.{other_payload}.{}",
                &rest[payload.len() + 1..]
            ))),
            401,
            "bad_signature",
        ),
        (
            "alg none",
            Some(bearer(&format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "kid": "reader/es"})),
                b64(&claims("reader"))
            ))),
            401,
            "unsupported_algorithm",
        ),
        (
            "HS256 with the public key as secret",
            Some(bearer(&sign(
                Algorithm::HS256,
                "reader/rsa",
                &claims("reader"),
                &EncodingKey::from_secret(&public_pem),
            ))),
            401,
            "unsupported_algorithm",
        ),
        (
            "RS256 against a mismatched key",
            Some(bearer(&sign(
                Algorithm::RS256,
                "reader/rsa",
                &claims("reader"),
                &tokens::rsa_key(RSA_B),
            ))),
            401,
            "bad_signature",
        ),
        (
            "wrong audience",
            Some(bearer(&spoilt(json!({"aud": "someone-else"})))),
            401,
            "wrong_audience",
        ),
        (
            "expired",
            Some(bearer(&spoilt(json!({"iat": now - 900, "exp": now - 600})))),
            401,
            "token_expired",
        ),
        (
            "issued in the future",
            Some(bearer(&spoilt(json!({"iat": now + 600, "exp": now + 900})))),
            401,
            "issued_in_future",
        ),
        (
            "lives over an hour",
            Some(bearer(&spoilt(json!({"iat": now, "exp": now + 3601})))),
            401,
            "lifetime_too_long",
        ),
        (
            "not yet valid",
            Some(bearer(&spoilt(json!({"nbf": now + 600})))),
            401,
            "token_not_yet_valid",
        ),
        (
            "no jti",
            Some(bearer(&spoilt(json!({"jti": null})))),
            401,
            "invalid_claims",
        ),
        (
            "kid of another issuer",
            Some(bearer(&sign(
                Algorithm::ES256,
                "other/es",
                &claims("reader"),
                &reader_es,
            ))),
            401,
            "kid_issuer_mismatch",
        ),
        (
            "kid with ../",
            Some(bearer(&sign(
                Algorithm::ES256,
                "reader/../other/es",
                &claims("reader"),
                &reader_es,
            ))),
            401,
            "invalid_kid",
        ),
        (
            "kid with %2e%2e",
            Some(bearer(&sign(
                Algorithm::ES256,
                "reader/%2e%2e/es",
                &claims("reader"),
                &reader_es,
            ))),
            401,
            "invalid_kid",
        ),
        (
            "unknown kid",
            Some(bearer(&sign(
                Algorithm::ES256,
                "reader/nope",
                &claims("reader"),
                &reader_es,
            ))),
            401,
            "unknown_key",
        ),
        (
            "oversized token",
            Some(bearer(&format!("{}.{payload}.sig", "A".repeat(9000)))),
            401,
            "token_too_large",
        ),
        (
            "oversized token header",
            Some(bearer(&format!(
                "{}.{payload}.sig",
                b64(&json!({"alg": "ES256", "kid": "reader/es", "pad": "x".repeat(2000)}))
            ))),
            401,
            "token_too_large",
        ),
    ];
    for (case, authorization, status, code) in cases {
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let r = droid.get_with("/v1/entity/site/a", &headers).await;
        refused(&r, status, code, case);
    }
    // The valid token reads, and may read again (reads are not replay-protected by default).
    assert_eq!(read_site(&droid, &valid).await.status, 200);
    assert_eq!(read_site(&droid, &valid).await.status, 200);
    // RS256 with the right key passes too.
    let rs = sign(
        Algorithm::RS256,
        "reader/rsa",
        &claims("reader"),
        &tokens::rsa_key(RSA_A),
    );
    assert_eq!(read_site(&droid, &rs).await.status, 200);
    // Each refusal is counted by reason.
    assert!(
        droid
            .metric("droid_auth_failures_total{reason=\"unknown_key\"}")
            .await
            >= Some(1.0)
    );
}

#[tokio::test]
async fn each_role_may_do_its_part_and_nothing_else() {
    let issuers = Issuers::new(&["reader", "invalidator", "tracker", "ops"]);
    let backend = TestBackend::start().await;
    backend.put("a", r#"{"n":"a"}"#);
    let droid = droid(&issuers, &backend, "").await;
    let call = |method: Method, path: &'static str, body: Option<&'static str>, issuer: &str| {
        let token = bearer(&issuers.token(issuer));
        let droid = &droid;
        async move {
            droid
                .send_with(method, path, body, &[("authorization", &token)])
                .await
        }
    };
    let invalidation = Some(r#"{"record_type":"site","key":"a"}"#);
    let event = Some(
        r#"[{"id":"e1","kind":"ticket.created","tenant":"default","occurred_at":1,"payload":{"ticket":{"key":"OPS-1","summary":"s","status":"open","priority":"low","updated_at":"t","version":1},"project":{"key":"OPS","name":"Ops"},"assignee":null,"reporter":{"account_id":"u","display_name":"U"}}}]"#,
    );

    // The reader reads; the rest of the world is closed to it.
    assert_eq!(
        call(Method::GET, "/v1/entity/site/a", None, "reader")
            .await
            .status,
        200
    );
    for (method, path, body) in [
        (Method::POST, "/v1/invalidate", invalidation),
        (Method::POST, "/v1/ingest/tracker", event),
        (Method::GET, "/v1/admin/plugins", None),
    ] {
        let r = call(method, path, body, "reader").await;
        refused(&r, 403, "forbidden", path);
    }
    // The invalidator invalidates, and may not read.
    let r = call(Method::POST, "/v1/invalidate", invalidation, "invalidator").await;
    assert_eq!(r.status, 200, "{}", r.body);
    refused(
        &call(Method::GET, "/v1/entity/site/a", None, "invalidator").await,
        403,
        "forbidden",
        "invalidator reads",
    );
    // The provider publishes (and reads tickets, open to any service), and may not invalidate.
    let r = call(Method::POST, "/v1/ingest/tracker", event, "tracker").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["applied"], 1);
    let r = call(Method::GET, "/v1/entity/ticket/OPS-1", None, "tracker").await;
    assert_eq!(r.status, 200, "{}", r.body);
    refused(
        &call(Method::POST, "/v1/invalidate", invalidation, "tracker").await,
        403,
        "forbidden",
        "tracker invalidates",
    );
    refused(
        &call(
            Method::POST,
            "/v1/ingest/tracker/snapshots",
            Some("{}"),
            "reader",
        )
        .await,
        403,
        "forbidden",
        "reader snapshots",
    );
    // The admin administers, and may not publish.
    let r = call(Method::GET, "/v1/admin/plugins", None, "ops").await;
    assert_eq!(r.status, 200, "{}", r.body);
    refused(
        &call(Method::POST, "/v1/ingest/tracker", event, "ops").await,
        403,
        "forbidden",
        "ops publishes",
    );
    let message = call(Method::GET, "/v1/entity/site/a", None, "ops")
        .await
        .json()["error"]["message"]
        .clone();
    assert_eq!(
        message,
        "ops may not read record type \"site\" (not in its readers)"
    );
    // What is not declared is answered as unknown, not as forbidden.
    let r = call(Method::GET, "/v1/entity/nope/x", None, "reader").await;
    assert_eq!(
        (r.status, r.error_code()),
        (404, "unknown_record_type".to_owned())
    );
    let r = call(Method::POST, "/v1/ingest/nope", event, "tracker").await;
    assert_eq!(
        (r.status, r.error_code()),
        (404, "unknown_source".to_owned())
    );
    // Health and metrics need no token.
    assert_eq!(droid.get("/healthz").await.status, 200);
    assert_eq!(droid.get("/metrics").await.status, 200);
    // And an authenticated droid carries no insecure warning.
    assert!(
        droid
            .get("/healthz")
            .await
            .header("droid-warning")
            .is_none()
    );
}

#[tokio::test]
async fn a_token_is_used_once_on_mutating_calls_and_on_reads_when_configured() {
    let issuers = Issuers::new(&["reader", "invalidator"]);
    let backend = TestBackend::start().await;
    backend.put("a", r#"{"n":"a"}"#);
    let droid = droid(&issuers, &backend, "").await;
    let token = bearer(&issuers.token("invalidator"));
    let body = Some(r#"{"record_type":"site","key":"a"}"#);
    let headers = [("authorization", token.as_str())];
    let invalidate = || droid.send_with(Method::POST, "/v1/invalidate", body, &headers);
    let first = invalidate().await;
    assert_eq!(first.status, 200, "{}", first.body);
    refused(
        &invalidate().await,
        401,
        "replayed_token",
        "replayed invalidation",
    );

    let strict = self::droid(&issuers, &backend, "replay_protect_reads = true").await;
    let token = issuers.token("reader");
    assert_eq!(read_site(&strict, &token).await.status, 200);
    refused(
        &read_site(&strict, &token).await,
        401,
        "replayed_token",
        "replayed read",
    );
}

/// A key server that counts its requests and can be slowed down.
struct KeyServer {
    url: String,
    hits: Arc<AtomicUsize>,
    /// The most requests it served at once.
    most_at_once: Arc<AtomicUsize>,
    _runtime: tokio::task::JoinHandle<()>,
}

async fn key_server(repository: std::path::PathBuf, delay: Duration) -> KeyServer {
    let hits = Arc::new(AtomicUsize::new(0));
    let most_at_once = Arc::new(AtomicUsize::new(0));
    let now = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let most = most_at_once.clone();
    let app = axum::Router::new().route(
        "/keys/{*kid}",
        axum::routing::get(
            move |axum::extract::Path(kid): axum::extract::Path<String>| {
                let counter = counter.clone();
                let repository = repository.clone();
                let (now, most) = (now.clone(), most.clone());
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(running, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    match std::fs::read(repository.join(kid)) {
                        Ok(pem) => (
                            axum::http::StatusCode::OK,
                            [("cache-control", "max-age=600")],
                            pem,
                        ),
                        Err(_) => (
                            axum::http::StatusCode::NOT_FOUND,
                            [("cache-control", "no-store")],
                            Vec::new(),
                        ),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    KeyServer {
        url,
        hits,
        most_at_once,
        _runtime: task,
    }
}

/// An `[auth]` table with these key repositories (primary first).
fn http_auth(repositories: &[&str], timeout_ms: u64) -> String {
    format!(
        "[auth]\naudience = {:?}\nkey_repositories = {repositories:?}\nkey_fetch_timeout_ms = {timeout_ms}\n",
        tokens::AUDIENCE
    )
}

async fn droid_with_auth(auth: &str, backend: &TestBackend) -> TestDroid {
    TestDroid::start(&format!(
        "{auth}\n[record_types.site]\nmode = \"read-through\"\nadapter = \"http_json_adapter.wasm\"\nbase_url = \"{}\"\nreaders = [\"reader\"]\n",
        backend.url("/records")
    ))
    .await
}

#[tokio::test]
async fn keys_come_from_http_repositories_once_per_kid_with_a_fallback() {
    let issuers = Issuers::new(&["reader"]);
    let backend = TestBackend::start().await;
    backend.put("a", r#"{"n":"a"}"#);
    let keys = key_server(issuers.repository(), Duration::from_millis(200)).await;
    // The primary is down; the fallback serves the key.
    let auth = http_auth(&["http://127.0.0.1:9/keys", &keys.url], 2_000);
    let droid = droid_with_auth(&auth, &backend).await;

    // Twenty concurrent requests with tokens of one new kid: one fetch.
    let tokens: Vec<String> = (0..20).map(|_| issuers.token("reader")).collect();
    let answers = futures::future::join_all(tokens.iter().map(|t| read_site(&droid, t))).await;
    for r in &answers {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(keys.hits.load(Ordering::SeqCst), 1, "one fetch for the kid");
    // Kept as its max-age says: no fetch for the next token either.
    assert_eq!(
        read_site(&droid, &issuers.token("reader")).await.status,
        200
    );
    assert_eq!(keys.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_key_server_down_or_slow_is_a_503_never_a_500() {
    let issuers = Issuers::new(&["reader"]);
    let backend = TestBackend::start().await;
    backend.put("a", r#"{"n":"a"}"#);
    let down = droid_with_auth(&http_auth(&["http://127.0.0.1:9/keys"], 500), &backend).await;
    let r = read_site(&down, &issuers.token("reader")).await;
    refused(&r, 503, "key_unavailable", "key server down");
    assert_eq!(r.header("retry-after"), Some("1"));

    let slow_keys = key_server(issuers.repository(), Duration::from_secs(5)).await;
    let slow = droid_with_auth(&http_auth(&[&slow_keys.url], 300), &backend).await;
    // The key server would answer (with the key) after 5 s: a 503 is the
    // fetch timeout cutting the wait.
    let r = read_site(&slow, &issuers.token("reader")).await;
    refused(&r, 503, "key_unavailable", "key server slow");
}

#[tokio::test]
async fn an_insecure_droid_says_so_on_every_answer() {
    let backend = TestBackend::start().await;
    backend.put("a", r#"{"n":"a"}"#);
    let droid = TestDroid::start(&format!(
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"http_json_adapter.wasm\"\nbase_url = \"{}\"\n",
        backend.url("/records")
    ))
    .await;
    for path in ["/v1/entity/site/a", "/healthz", "/v1/entity/nope/x"] {
        let r = droid.get(path).await;
        assert!(
            r.header("droid-warning")
                .is_some_and(|w| w.starts_with("insecure-no-auth")),
            "{path}"
        );
    }
}

/// Tokens arrive before anything is known of their senders, so what their
/// headers can make droid fetch is bounded: nothing for an issuer no grant
/// names, a few lookups a second per issuer, a few at once in all; past
/// those, `503 key_unavailable` without a fetch.
#[tokio::test]
async fn unauthenticated_tokens_cannot_drive_the_key_repositories() {
    let issuers = Issuers::new(&["reader", "shop"]);
    let backend = TestBackend::start().await;
    backend.put("a", r#"{"n":"a"}"#);
    let keys = key_server(issuers.repository(), Duration::ZERO).await;
    let droid = droid_with_auth(&http_auth(&[&keys.url], 2_000), &backend).await;
    let forged = |issuer: &str, i: usize| {
        sign(
            Algorithm::ES256,
            &format!("{issuer}/unknown-{i}"),
            &claims(issuer),
            &issuers.es_key(issuer),
        )
    };
    // An issuer no grant names: refused before any lookup.
    for i in 0..300 {
        let r = read_site(&droid, &forged("shop", i)).await;
        refused(&r, 401, "unknown_issuer", "an issuer without grants");
    }
    assert_eq!(keys.hits.load(Ordering::SeqCst), 0);
    // A granted issuer's name with ever new kids: a few lookups a second.
    let started = std::time::Instant::now();
    let (mut unknown, mut busy) = (0, 0);
    for i in 0..300 {
        let r = read_site(&droid, &forged("reader", i)).await;
        match r.error_code().as_str() {
            "unknown_key" => unknown += 1,
            "key_unavailable" => {
                assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
                busy += 1;
            }
            other => panic!("{other}: {}", r.body),
        }
    }
    let fetched = keys.hits.load(Ordering::SeqCst);
    let allowed = 5 + 5 * started.elapsed().as_secs_f64().ceil() as usize;
    assert!(
        fetched <= allowed,
        "{fetched} fetches in {:?}",
        started.elapsed()
    );
    assert_eq!(unknown, fetched, "each fetch found nothing");
    assert_eq!(unknown + busy, 300);
    let refusals = droid
        .metric("droid_auth_key_lookups_refused_total{reason=\"issuer_rate\"}")
        .await
        .unwrap_or(0.0);
    assert!(refusals >= busy as f64, "{refusals}");
    // Once the flood stops, the issuer's budget refills within a second and
    // a token with its real key gets in (a key already cached never waits).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        read_site(&droid, &issuers.token("reader")).await.status,
        200
    );
}

/// However many tokens with new kids arrive at once, at most
/// `key_fetch_concurrency` lookups reach a slow repository.
#[tokio::test]
async fn concurrent_key_lookups_are_bounded() {
    let issuers = Issuers::new(&["reader"]);
    let backend = TestBackend::start().await;
    let keys = key_server(issuers.repository(), Duration::from_millis(500)).await;
    let auth = format!(
        "{}key_fetch_concurrency = 4\nkey_fetches_per_s = 10000\n",
        http_auth(&[&keys.url], 2_000)
    );
    let droid = droid_with_auth(&auth, &backend).await;
    let tokens: Vec<String> = (0..100)
        .map(|i| {
            sign(
                Algorithm::ES256,
                &format!("reader/new-{i}"),
                &claims("reader"),
                &issuers.es_key("reader"),
            )
        })
        .collect();
    let answers = futures::future::join_all(tokens.iter().map(|t| read_site(&droid, t))).await;
    assert!(keys.most_at_once.load(Ordering::SeqCst) <= 4);
    let busy = answers
        .iter()
        .filter(|r| r.error_code() == "key_unavailable")
        .count();
    assert!(busy >= 90, "{busy} of 100 refused at once");
    assert!(keys.hits.load(Ordering::SeqCst) <= 10);
}
