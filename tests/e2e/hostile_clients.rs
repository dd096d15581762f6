//! Clients that try to hold droid's connections, memory or attention: slow
//! request heads, idle connections, more connections than droid may hold,
//! huge declared bodies, malformed requests and path segments. Each gets its
//! documented answer, and a well-behaved client still gets in.

use std::time::{Duration, Instant};

use droid_e2e::droid::parse_raw_response;
use droid_e2e::{Setup, TestBackend, TestDroid, TestResponse, TestSidecar};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn droid(server: &str) -> (TestBackend, TestDroid) {
    let backend = TestBackend::start().await;
    backend.put("s-1", r#"{"site":1}"#);
    let droid = Setup::new()
        .server(server)
        .site(&backend, "")
        .tickets()
        .start()
        .await;
    (backend, droid)
}

/// Reads until the peer closes; how long that took, or `None` past `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + within),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

/// Sends `request` as raw bytes on a new connection and reads the answer
/// until droid closes the connection.
async fn raw(droid: &TestDroid, request: &[u8]) -> TestResponse {
    let mut stream = TcpStream::connect(droid.addr()).await.expect("connect");
    stream.write_all(request).await.expect("send");
    read_answer(&mut stream).await
}

async fn read_answer(stream: &mut TcpStream) -> TestResponse {
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut bytes)).await;
    parse_raw_response(&bytes)
}

/// A client that sends a request head a byte at a time is cut off at the
/// header timeout, however steadily it trickles.
#[tokio::test]
async fn a_slow_request_head_is_cut_off_at_the_header_timeout() {
    let (_backend, droid) = droid("header_timeout_ms = 400").await;
    let mut stream = TcpStream::connect(droid.addr()).await.unwrap();
    stream
        .write_all(b"GET /v1/entity/site/s-1 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let started = Instant::now();
    let mut cut = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if stream.write_all(b"a").await.is_err() {
            cut = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await
        {
            cut = Some(started.elapsed());
            break;
        }
    }
    let cut = cut.expect("the trickling connection is closed");
    // However steadily it trickled: not before the timeout, and for that reason.
    assert!(cut >= Duration::from_millis(350), "closed early: {cut:?}");
    let closed = droid
        .metric("droid_connections_closed_total{listener=\"api\",reason=\"header_timeout\"}")
        .await;
    assert_eq!(closed, Some(1.0));
    // A normal client is served meanwhile and after.
    assert_eq!(droid.get("/v1/entity/site/s-1").await.status, 200);
}

/// A connection that sends nothing, or stays open after its answer, is
/// closed after the idle timeout.
#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let (_backend, droid) = droid("idle_timeout_ms = 400").await;
    let mut silent = TcpStream::connect(droid.addr()).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(3))
        .await
        .expect("a silent connection is closed");
    assert!(took >= Duration::from_millis(350), "closed early: {took:?}");
    let mut kept = TcpStream::connect(droid.addr()).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(
        closed_within(&mut kept, Duration::from_secs(3))
            .await
            .is_some(),
        "a kept-alive connection is closed once idle"
    );
}

/// At its cap, droid closes the longest-idle connection for a new one; when
/// every connection is busy, the reserve still answers operators, and past
/// it a connection gets `503 server_busy` at once.
#[tokio::test]
async fn at_the_connection_cap_idle_connections_make_room_and_the_reserve_answers_operators() {
    let (_backend, droid) = droid("max_connections = 8\nreserve_connections = 1").await;
    // Twenty idle connections: each new one past eight evicts an older one.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(droid.addr()).await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let health = droid.get("/healthz").await;
    assert_eq!(health.status, 200, "{}", health.body);
    let evicted = droid
        .metric("droid_connections_closed_total{listener=\"api\",reason=\"evicted\"}")
        .await
        .unwrap_or(0.0);
    assert!(evicted >= 12.0, "evicted {evicted}");
    drop(idle);
    // Eight connections busy with change-feed streams: none is idle.
    let mut feeds = Vec::new();
    for _ in 0..8 {
        let mut stream = TcpStream::connect(droid.addr()).await.unwrap();
        stream
            .write_all(b"GET /v1/changes?since=now HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        feeds.push(stream);
    }
    // The reserve: operations routes only.
    let entity = raw(
        &droid,
        b"GET /v1/entity/site/s-1 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    entity.assert_error(503, "server_busy", "a read above the cap");
    let health = raw(&droid, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(health.status, 200, "{}", health.body);
    // Hold the reserve with a connection whose head is still arriving (not
    // idle, so not evicted); the next one is refused at once.
    let mut holding = TcpStream::connect(droid.addr()).await.unwrap();
    holding
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = raw(&droid, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    refused.assert_error(503, "server_busy", "past the cap and the reserve");
    assert_eq!(refused.header("retry-after"), Some("1"));
}

/// A declared body over the limit is refused before droid reads any of it:
/// a client that asked `Expect: 100-continue` is never told to go on.
#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_at_once() {
    let (_backend, droid) = droid("").await;
    let mut stream = TcpStream::connect(droid.addr()).await.unwrap();
    stream
        .write_all(
            b"POST /v1/ingest/tracker HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
        .await
        .expect("answered at once")
        .unwrap();
    let answer = parse_raw_response(&buf[..n]);
    answer.assert_error(413, "body_too_large", "10 GB declared");
    assert!(answer.body.contains("10000000000"), "{}", answer.body);
    // And a body that grows past the limit without declaring it.
    let chunked = droid
        .send_with(
            reqwest::Method::POST,
            "/v1/admin/plugins/x/rollback",
            Some(&"x".repeat(3 << 20)),
            &[],
        )
        .await;
    chunked.assert_error(413, "body_too_large", "a 3 MiB body");
}

/// A request hyper cannot parse (invalid bytes in the request line, a
/// header block too large) is answered with droid's JSON error too.
#[tokio::test]
async fn malformed_requests_are_answered_in_json() {
    let (_backend, droid) = droid("").await;
    let answer = raw(
        &droid,
        b"GET /v1/entity/site/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    answer.assert_error(400, "invalid_request", "invalid bytes in the request line");
    let answer = raw(&droid, b"NOT-HTTP\r\n\r\n").await;
    answer.assert_error(400, "invalid_request", "not HTTP");
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let answer = raw(&droid, huge.as_bytes()).await;
    assert_eq!(answer.status, 431, "{}", answer.body);
    assert_eq!(answer.error_code(), "invalid_request");
}

/// Every route answers a malformed path segment, query string or body with
/// JSON and a stable code, never axum's plain text.
#[tokio::test]
async fn every_route_refuses_malformed_input_in_json() {
    let (_backend, droid) = droid("").await;
    let big = "x".repeat(3 << 20);
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("GET", "/v1/entity/%FF/k", None),
        ("GET", "/v1/entity/site/%FF", None),
        ("GET", "/v1/entity/%FF/batch", None),
        ("POST", "/v1/entity/%FF/batch", Some("{}")),
        ("POST", "/v1/entity/site/batch", Some("not json")),
        ("POST", "/v1/entity/site/batch", Some(&big)),
        ("GET", "/v1/entity/site/s-1?tenant=%FF", None),
        ("GET", "/v1/entity/site/s-1/extra", None),
        ("POST", "/v1/invalidate", Some("[")),
        ("POST", "/v1/invalidate", Some(&big)),
        ("GET", "/v1/changes?since=x", None),
        ("GET", "/v1/changes?heartbeat_ms=x", None),
        ("GET", "/v1/records/%FF", None),
        ("GET", "/v1/records/ticket?limit=x", None),
        ("POST", "/v1/ingest/%FF", Some("[]")),
        ("POST", "/v1/ingest/tracker", Some("{")),
        ("POST", "/v1/ingest/tracker", Some(&big)),
        ("POST", "/v1/ingest/%FF/snapshots", Some("{}")),
        ("POST", "/v1/ingest/tracker/snapshots", Some("nope")),
        ("POST", "/v1/ingest/tracker/snapshots", Some(&big)),
        ("GET", "/v1/ingest/tracker/snapshots/%FF", None),
        ("POST", "/v1/ingest/tracker/snapshots/%FF", Some("[]")),
        ("POST", "/v1/ingest/tracker/snapshots/%FF/commit", None),
        ("DELETE", "/v1/ingest/tracker/snapshots/%FF", None),
        ("POST", "/v1/admin/plugins/%FF/rollout", Some("{}")),
        ("POST", "/v1/admin/plugins/x/rollout", Some("nope")),
        ("POST", "/v1/admin/plugins/%FF/promote", None),
        ("POST", "/v1/admin/plugins/%FF/rollback", None),
        ("POST", "/v1/admin/plugins/x/rollback", Some(&big)),
        ("GET", "/v1/admin/dead-letters?limit=x", None),
        ("POST", "/v1/admin/dead-letters/%FF/replay", None),
        (
            "POST",
            "/v1/admin/dead-letters/tracker/replay",
            Some("nope"),
        ),
        ("PUT", "/v1/admin/reload", None),
        ("GET", "/nowhere/%FF", None),
    ];
    // In process: what the router answers, with no socket in between.
    for (method, path, body) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = droid.call(method.clone(), path, *body).await;
        let what = format!("{method} {path} ({} byte body)", body.map_or(0, str::len));
        assert_json_refusal(&r, &what);
    }
}

/// A `Last-Event-ID` that is not a sequence number is refused, whatever its
/// bytes: it never falls back to a replay of the whole log.
#[tokio::test]
async fn a_last_event_id_that_is_not_a_sequence_number_is_refused() {
    let (_backend, droid) = droid("").await;
    let bytes = raw(
        &droid,
        b"GET /v1/changes HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: \xff\xfe\r\nConnection: close\r\n\r\n",
    )
    .await;
    bytes.assert_error(400, "invalid_since", "non-UTF-8 Last-Event-ID");
    let text = droid
        .get_with("/v1/changes", &[("last-event-id", "bogus")])
        .await;
    text.assert_error(400, "invalid_since", "a word as Last-Event-ID");
}

/// `route` with every parameter replaced by bytes that are not UTF-8 once
/// percent-decoded; `None` for a route without parameters.
fn malformed(route: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = route;
    let mut any = false;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').expect("a closed parameter") + start;
        out.push_str(&rest[..start]);
        out.push_str("%FF");
        rest = &rest[end + 1..];
        any = true;
    }
    out.push_str(rest);
    any.then_some(out)
}

/// One request per method of every route with parameters, each parameter
/// malformed (a `POST` carries an empty JSON object).
fn malformed_requests(
    routes: &[(&str, &[&str])],
) -> Vec<(reqwest::Method, String, Option<&'static str>)> {
    let mut requests = Vec::new();
    for (route, methods) in routes {
        let Some(path) = malformed(route) else {
            continue;
        };
        for method in *methods {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let body = (method == reqwest::Method::POST).then_some("{}");
            requests.push((method, path.clone(), body));
        }
    }
    requests
}

/// Checks an answer to a malformed path is a JSON refusal.
fn assert_json_refusal(r: &TestResponse, what: &str) {
    assert!(r.status >= 400, "{what}: {} {}", r.status, r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{what}: {} {}",
        r.status,
        r.body
    );
    // HEAD answers carry no body.
    if !what.starts_with("HEAD") {
        assert!(!r.error_code().is_empty(), "{what}: {}", r.body);
    }
}

/// Every route of droid's router and of a sidecar's, walked from the list
/// they are built from, refuses a malformed path segment in JSON.
#[tokio::test]
async fn every_route_of_droid_and_the_sidecar_refuses_a_malformed_segment_in_json() {
    let (_backend, droid) = droid("").await;
    for (method, path, body) in malformed_requests(droid_host::api::routes::ALL) {
        let r = droid.call(method.clone(), &path, body).await;
        assert_json_refusal(&r, &format!("{method} {path}"));
    }
    let sidecar = TestSidecar::start(
        &droid.url(""),
        "[record_types.site]\n[record_types.ticket]\n",
    )
    .await;
    for (method, path, body) in malformed_requests(droid_host::api::routes::SIDECAR) {
        let r = sidecar.request(method.clone(), &path, body).await;
        assert_json_refusal(&r, &format!("{method} {path} (sidecar)"));
    }
    let big = "x".repeat(3 << 20);
    let r = sidecar
        .request(reqwest::Method::POST, "/v1/entity/site/batch", Some(&big))
        .await;
    r.assert_error(413, "body_too_large", "a 3 MiB batch to the sidecar");
}

/// A sidecar's connections are bounded the same way: a silent connection
/// is closed after its idle timeout.
#[tokio::test]
async fn a_sidecar_closes_idle_connections_too() {
    let (_backend, droid) = droid("").await;
    let sidecar = TestSidecar::start(
        &droid.url(""),
        "idle_timeout_ms = 300\n[record_types.site]\n",
    )
    .await;
    let addr = sidecar.url("").trim_start_matches("http://").to_owned();
    let mut silent = TcpStream::connect(addr.trim_end_matches('/'))
        .await
        .unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(3))
            .await
            .is_some(),
        "the sidecar closes a silent connection"
    );
}
