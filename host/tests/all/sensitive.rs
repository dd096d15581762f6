//! Sensitive fields with the real binary: plain-text PII from a transformer
//! goes to dead letters with the field named, a sealed value passes, and
//! nothing droid logs (at trace level) carries the raw value or the keys.

use crate::support::{Serving, config_dir_with, http, ticket_change};

#[test]
fn plain_pii_is_refused_sealed_pii_passes_and_logs_never_carry_either() {
    let key = "5e".repeat(32);
    let (dir, path) = config_dir_with("", &[droid_test_artifacts::TICKET_TRANSFORMER]);
    std::fs::write(dir.path().join("ticket.seal"), format!("{key}\n")).unwrap();
    let mut config = std::fs::read_to_string(&path).unwrap();
    for (name, email) in [("plain", "plain"), ("sealed", "hash")] {
        config.push_str(&format!(
            "\n[record_types.ticket_{name}]\nmode = \"ingested\"\ntransformer = \"ticket_transformer.wasm\"\nsensitive_fields = [\"/reporter/email\", \"/assignee/email\"]\nseal_key_file = \"ticket.seal\"\nconfig = {{ email = \"{email}\" }}\n\n[sources.{name}]\nrecord_type = \"ticket_{name}\"\n"
        ));
    }
    std::fs::write(&path, config).unwrap();
    let serving =
        Serving::start_logging(&path, "info,droid_host=trace,droid=trace,tower_http=trace");
    let event = |id: &str| format!("[{}]", ticket_change(id, 990_001, "ticket.created", 1));

    // Plain text: refused, kept as a dead letter naming the field, not the value.
    let (status, body) = http(&serving.address, "POST", "/v1/ingest/plain", &event("p1")).unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["rejected"], 1, "{answer}");
    let reason = answer["results"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("sensitive field /reporter/email is in plain text"),
        "{reason}"
    );
    assert!(!reason.contains("g@example.com"), "{reason}");
    let (_, letters) = http(
        &serving.address,
        "GET",
        "/v1/admin/dead-letters?source=plain",
        "",
    )
    .unwrap();
    assert!(letters.contains("/reporter/email"), "{letters}");

    // Sealed: stored, and the seal verifies with the record type's key.
    let (status, body) = http(&serving.address, "POST", "/v1/ingest/sealed", &event("s1")).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"applied\":1"), "{body}");
    let (status, record) = http(
        &serving.address,
        "GET",
        "/v1/entity/ticket_sealed/OPS-990001?tenant=acme",
        "",
    )
    .unwrap();
    assert_eq!(status, 200, "{record}");
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    let sealed = record["reporter"]["email"].as_str().unwrap();
    let key = droid_seal::parse_key(&key).unwrap();
    assert_eq!(droid_seal::verify(&key, sealed), Ok(droid_seal::Kind::Hash));
    assert_eq!(sealed, droid_seal::hash(&key, "g@example.com"));

    // Everything logged, at trace level: no raw value, no key of these record types.
    let log = serving.log_containing(&[r#""route":"/v1/entity/{record_type}/{key}""#]);
    assert!(
        log.contains(r#""route":"/v1/entity/{record_type}/{key}""#),
        "the read was logged, by its route"
    );
    for secret in ["g@example.com", "OPS-990001"] {
        assert!(!log.contains(secret), "{secret} reached the log:\n{log}");
    }
    assert!(serving.stop().success());
}
