//! Transformers through the real runtime: a batch in, one result per event out.

use droid_e2e::TestDroid;
use droid_e2e::plugins as _;
use droid_host::entity::{EntityOp, PluginFailure, SourceEvent};

fn event(n: u64, kind: &str, payload: &str) -> SourceEvent {
    SourceEvent {
        id: format!("ev-{n}"),
        source: "tracker".into(),
        kind: kind.into(),
        tenant: "acme".into(),
        occurred_at: 1_763_633_700_000,
        payload: payload.as_bytes().to_vec(),
    }
}

const TICKET: &str = r#"{"ticket":{"key":"OPS-1","summary":"Disk full","description":"secret words","status":"open","priority":"high","labels":[],"updated_at":"2026-11-20T10:00:00Z","version":3},"project":{"key":"OPS","name":"Operations"},"assignee":null,"reporter":{"account_id":"u-1","display_name":"Grace","email":"grace@example.com"}}"#;

async fn droid() -> TestDroid {
    TestDroid::start(
        "[record_types.ticket]\nmode = \"ingested\"\ntransformer = \"ticket_transformer.wasm\"\n",
    )
    .await
}

#[tokio::test]
async fn a_batch_gets_one_result_per_event_in_order() {
    let droid = droid().await;
    let registry = droid.app().service.registry();
    let binding = registry.get("ticket").expect("bound");
    let version = binding.select("default");
    let transformer = version.transformer().expect("a transformer");
    let events = vec![
        event(1, "ticket.updated", TICKET),
        event(2, "ticket.updated", "{not json"),
        event(3, "ticket.deleted", TICKET),
    ];
    let results = transformer
        .transform(&binding.context, events)
        .await
        .expect("the call succeeds");
    assert_eq!(results.len(), 3);
    let Ok(ops) = &results[0] else {
        panic!("{:?}", results[0])
    };
    let [EntityOp::Upsert(entity)] = ops.as_slice() else {
        panic!("{ops:?}")
    };
    assert_eq!((entity.key.as_str(), entity.version), ("OPS-1", Some(3)));
    assert!(!entity.body.contains("grace@example.com") && !entity.body.contains("secret words"));
    assert!(
        matches!(&results[1], Err(PluginFailure::InvalidInput(m)) if m.contains("ev-2")),
        "{:?}",
        results[1]
    );
    assert!(
        matches!(&results[2], Ok(ops) if matches!(ops.as_slice(), [EntityOp::Delete(r)] if r.key == "OPS-1"))
    );
}

#[tokio::test]
async fn large_batches_and_empty_batches_work() {
    let droid = droid().await;
    let registry = droid.app().service.registry();
    let binding = registry.get("ticket").expect("bound");
    let version = binding.select("default");
    let transformer = version.transformer().expect("a transformer");
    let batch: Vec<_> = (0..256)
        .map(|n| event(n, "ticket.created", TICKET))
        .collect();
    let results = transformer
        .transform(&binding.context, batch)
        .await
        .expect("call");
    assert_eq!(results.len(), 256);
    assert!(results.iter().all(Result::is_ok));
    let empty = transformer
        .transform(&binding.context, Vec::new())
        .await
        .expect("call");
    assert!(empty.is_empty());
}

/// An ingested record type is read from the store: no plugin call, no read-through cache.
#[tokio::test]
async fn an_ingested_type_is_read_from_the_store_not_through_a_plugin() {
    let droid = droid().await;
    let r = droid.get("/v1/entity/ticket/OPS-1").await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "not_found"),
        "{}",
        r.body
    );
    assert_eq!(
        r.header("droid-cache"),
        None,
        "no read-through cache involved"
    );
}
