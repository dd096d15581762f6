//! The checks every store backend must pass, trait by trait, so the next
//! backend gets its tests for free: open a fresh, empty backend per check and
//! hand it to [`run`] (see `host/tests/all/store_conformance.rs`, which runs
//! them against the embedded store with and without the read cache).
//!
//! The checks say what droid relies on, not how a backend does it: gapless
//! sequence numbers, idempotent events, versions that never go back, pages in
//! key order, a change log that can be trimmed, dead letters that leave when
//! their event goes through, and snapshots that are invisible until committed.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{
    ChangeKind, DeadLetter, EventOutcome, EventWrite, InvalidatedKey, Op, RecordId, Snapshot,
    StoredRecord, Stores,
};

/// One check: its name and what it does to a fresh, empty backend.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// What it checks, as a sentence in snake case.
    pub name: &'static str,
    /// Panics when the backend does not behave.
    pub run: fn(&Stores),
}

/// Every check, records first, then dead letters, then snapshots.
pub const CHECKS: &[Check] = &[
    Check {
        name: "writes_get_consecutive_sequence_numbers_and_read_back",
        run: writes_get_consecutive_sequence_numbers_and_read_back,
    },
    Check {
        name: "an_export_pages_through_one_record_type_in_order_without_tombstones",
        run: an_export_pages_through_one_record_type_in_order_without_tombstones,
    },
    Check {
        name: "a_resent_event_changes_nothing",
        run: a_resent_event_changes_nothing,
    },
    Check {
        name: "older_versions_never_overwrite_newer_ones_not_even_after_a_delete",
        run: older_versions_never_overwrite_newer_ones_not_even_after_a_delete,
    },
    Check {
        name: "invalidations_join_the_log_and_trimming_keeps_the_tail",
        run: invalidations_join_the_log_and_trimming_keeps_the_tail,
    },
    Check {
        name: "reading_the_log_stops_at_a_byte_bound_but_never_before_one_change",
        run: reading_the_log_stops_at_a_byte_bound_but_never_before_one_change,
    },
    Check {
        name: "dead_letters_are_kept_listed_by_source_and_removed",
        run: dead_letters_are_kept_listed_by_source_and_removed,
    },
    Check {
        name: "an_event_that_goes_through_leaves_the_dead_letters",
        run: an_event_that_goes_through_leaves_the_dead_letters,
    },
    Check {
        name: "a_snapshot_is_invisible_until_committed_and_then_applied_whole",
        run: a_snapshot_is_invisible_until_committed_and_then_applied_whole,
    },
    Check {
        name: "a_refused_commit_keeps_the_snapshot_and_an_abort_drops_it",
        run: a_refused_commit_keeps_the_snapshot_and_an_abort_drops_it,
    },
    Check {
        name: "a_tenant_pages_out_with_tombstones_and_purges_with_invalidations",
        run: a_tenant_pages_out_with_tombstones_and_purges_with_invalidations,
    },
    Check {
        name: "pins_and_migrations_are_kept_and_a_stale_revision_writes_nothing",
        run: pins_and_migrations_are_kept_and_a_stale_revision_writes_nothing,
    },
    Check {
        name: "a_scan_sees_one_instant_and_an_overwrite_sets_an_older_version",
        run: a_scan_sees_one_instant_and_an_overwrite_sets_an_older_version,
    },
    Check {
        name: "an_erasure_leaves_a_marker_drops_staged_events_and_the_pin",
        run: an_erasure_leaves_a_marker_drops_staged_events_and_the_pin,
    },
    Check {
        name: "operations_are_compared_and_set_and_the_audit_log_appends",
        run: operations_are_compared_and_set_and_the_audit_log_appends,
    },
];

/// Runs every check against a fresh backend from `open` (which may return a
/// guard, such as a temporary directory, kept until the check ends), and
/// panics naming each check that failed.
pub fn run<G>(open: impl Fn() -> (G, Stores)) {
    let failed: Vec<&str> = CHECKS
        .iter()
        .filter(|check| {
            let (guard, stores) = open();
            let outcome = catch_unwind(AssertUnwindSafe(|| (check.run)(&stores)));
            drop((stores, guard));
            outcome.is_err()
        })
        .map(|check| check.name)
        .collect();
    assert!(failed.is_empty(), "store conformance failed: {failed:?}");
}

/// A record of type `ticket` for tenant `acme`.
pub fn id(key: &str) -> RecordId {
    RecordId {
        record_type: "ticket".into(),
        tenant: "acme".into(),
        key: key.into(),
    }
}

/// An upsert of [`id`]`(key)`.
pub fn upsert(key: &str, version: u64, body: &str) -> Op {
    Op::Upsert {
        id: id(key),
        body: body.into(),
        version,
    }
}

/// An event of source `jira`.
pub fn event(event_id: &str, ops: Vec<Op>) -> EventWrite {
    EventWrite {
        overwrite: false,
        source: "jira".into(),
        event_id: event_id.into(),
        occurred_at_ms: 1_000,
        ops,
    }
}

fn applied(seqs: &[u64], stale: usize) -> EventOutcome {
    EventOutcome::Applied {
        seqs: seqs.to_vec(),
        stale,
    }
}

fn body(stores: &Stores, key: &str) -> Option<String> {
    stores.records.get(&id(key)).unwrap().and_then(|r| r.body)
}

fn seqs_of(stores: &Stores) -> Vec<u64> {
    let log = stores.records.changes(0, 1000).unwrap();
    log.iter().map(|c| c.seq).collect()
}

fn writes_get_consecutive_sequence_numbers_and_read_back(stores: &Stores) {
    let store = &stores.records;
    assert_eq!(
        store.last_seq().unwrap(),
        0,
        "an empty store has no changes"
    );
    let out = store
        .apply(&[
            event(
                "e1",
                vec![upsert("A", 1, "{\"a\":1}"), upsert("B", 1, "{}")],
            ),
            event("e2", vec![upsert("A", 2, "{\"a\":2}")]),
        ])
        .unwrap();
    assert_eq!(out, [applied(&[1, 2], 0), applied(&[3], 0)]);
    let a = store.get(&id("A")).unwrap().unwrap();
    assert_eq!(
        (a.body.as_deref(), a.version, a.seq),
        (Some("{\"a\":2}"), 2, 3)
    );
    assert_eq!(store.get(&id("none")).unwrap(), None);
    assert_eq!(store.last_seq().unwrap(), 3);
    assert_eq!(seqs_of(stores), [1, 2, 3]);
    let log = store.changes(0, 10).unwrap();
    assert_eq!(
        (log[0].source.as_str(), log[0].event_id.as_str()),
        ("jira", "e1")
    );
    assert_eq!(log[0].occurred_at_ms, 1_000);
    assert_eq!(store.changes(2, 10).unwrap().len(), 1);
    assert_eq!(store.changes(0, 2).unwrap().len(), 2);
}

fn an_export_pages_through_one_record_type_in_order_without_tombstones(stores: &Stores) {
    let store = &stores.records;
    let other = |key: &str| Op::Upsert {
        id: RecordId {
            record_type: "ticket2".into(),
            tenant: "acme".into(),
            key: key.into(),
        },
        body: "{}".into(),
        version: 1,
    };
    let mut ops: Vec<Op> = ["B", "A", "AB", "C", "D"]
        .iter()
        .map(|k| upsert(k, 1, "{}"))
        .collect();
    ops.push(other("A"));
    ops.push(Op::Delete {
        id: id("C"),
        version: 2,
    });
    store.apply(&[event("e1", ops)]).unwrap();
    let keys = |page: Vec<(RecordId, StoredRecord)>| -> Vec<String> {
        page.into_iter().map(|(id, _)| id.key).collect()
    };
    assert_eq!(
        keys(store.records("ticket", None, 10).unwrap()),
        ["A", "AB", "B", "D"]
    );
    assert_eq!(keys(store.records("ticket", None, 2).unwrap()), ["A", "AB"]);
    assert_eq!(
        keys(store.records("ticket", Some(("acme", "A")), 2).unwrap()),
        ["AB", "B"]
    );
    assert_eq!(
        keys(store.records("ticket", Some(("acme", "D")), 2).unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(keys(store.records("ticket2", None, 10).unwrap()), ["A"]);
    assert!(store.records("tick", None, 10).unwrap().is_empty());
}

fn a_resent_event_changes_nothing(stores: &Stores) {
    let store = &stores.records;
    store
        .apply(&[event("e1", vec![upsert("A", 1, "{}")])])
        .unwrap();
    let again = store
        .apply(&[event("e1", vec![upsert("A", 5, "{\"x\":1}")])])
        .unwrap();
    assert_eq!(again, [EventOutcome::Duplicate]);
    assert_eq!(store.get(&id("A")).unwrap().unwrap().version, 1);
    assert_eq!(store.last_seq().unwrap(), 1);
    // The same id from another source is another event.
    let elsewhere = EventWrite {
        overwrite: false,
        source: "crm".into(),
        ..event("e1", vec![upsert("A", 6, "{}")])
    };
    assert_eq!(store.apply(&[elsewhere]).unwrap(), [applied(&[2], 0)]);
}

fn older_versions_never_overwrite_newer_ones_not_even_after_a_delete(stores: &Stores) {
    let store = &stores.records;
    store
        .apply(&[
            event("e3", vec![upsert("A", 3, "{\"v\":3}")]),
            event("e2", vec![upsert("A", 2, "{\"v\":2}")]),
        ])
        .unwrap();
    assert_eq!(store.get(&id("A")).unwrap().unwrap().version, 3);
    let delete = Op::Delete {
        id: id("A"),
        version: 4,
    };
    store.apply(&[event("d4", vec![delete])]).unwrap();
    let out = store
        .apply(&[event("e1", vec![upsert("A", 1, "{\"v\":1}")])])
        .unwrap();
    assert_eq!(out, [applied(&[], 1)]);
    let tombstone = store.get(&id("A")).unwrap().unwrap();
    assert_eq!((tombstone.body, tombstone.version), (None, 4));
    let kinds: Vec<_> = store
        .changes(0, 10)
        .unwrap()
        .into_iter()
        .map(|c| c.kind)
        .collect();
    let upserted = ChangeKind::Upsert {
        body: "{\"v\":3}".into(),
    };
    assert_eq!(kinds, [upserted, ChangeKind::Delete]);
}

fn invalidations_join_the_log_and_trimming_keeps_the_tail(stores: &Stores) {
    let store = &stores.records;
    let mut signal = store.subscribe();
    store
        .apply(&[event("e1", vec![upsert("A", 1, "{}")])])
        .unwrap();
    assert_eq!(
        *signal.borrow_and_update(),
        1,
        "followers hear of the commit"
    );
    let seqs = store
        .log_invalidations(&[InvalidatedKey {
            id: id("site-1"),
            version: Some(4),
            occurred_at_ms: None,
        }])
        .unwrap();
    assert_eq!(seqs, [2]);
    assert!(
        signal.has_changed().unwrap(),
        "followers hear of invalidations"
    );
    let log = store.changes(0, 10).unwrap();
    assert_eq!(log[1].kind, ChangeKind::Invalidate);
    assert_eq!((log[1].key.as_str(), log[1].version), ("site-1", 4));
    assert_eq!(store.log_invalidations(&[]).unwrap(), Vec::<u64>::new());
    for n in 0..5 {
        store
            .apply(&[event(&format!("f{n}"), vec![upsert("B", n + 1, "{}")])])
            .unwrap();
    }
    assert_eq!(store.first_seq().unwrap(), 1);
    assert_eq!(store.trim_changes(3).unwrap(), 4);
    assert_eq!(store.first_seq().unwrap(), 5);
    assert_eq!(seqs_of(stores), [5, 6, 7]);
    assert_eq!(store.trim_changes(3).unwrap(), 0, "nothing more to trim");
    // Records stay; only the log is trimmed; numbering goes on.
    assert!(store.get(&id("A")).unwrap().is_some());
    let next = store
        .apply(&[event("g", vec![upsert("C", 1, "{}")])])
        .unwrap();
    assert_eq!(next, [applied(&[8], 0)]);
}

fn reading_the_log_stops_at_a_byte_bound_but_never_before_one_change(stores: &Stores) {
    let store = &stores.records;
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096));
    let events: Vec<_> = (0..4)
        .map(|n| event(&format!("e{n}"), vec![upsert(&format!("K{n}"), 1, &big)]))
        .collect();
    store.apply(&events).unwrap();
    assert_eq!(store.changes_within(0, 10, 1).unwrap().len(), 1);
    let two = store.changes_within(0, 10, 4096 * 2).unwrap();
    assert!(
        (1..=3).contains(&two.len()),
        "a bound of two bodies reads {} changes",
        two.len()
    );
    assert_eq!(store.changes_within(0, 10, usize::MAX).unwrap().len(), 4);
    assert_eq!(store.changes_within(0, 2, usize::MAX).unwrap().len(), 2);
}

fn letter(source: &str, event_id: &str) -> DeadLetter {
    DeadLetter {
        source: source.into(),
        event_id: event_id.into(),
        kind: "ticket.created".into(),
        tenant: "acme".into(),
        occurred_at_ms: 1,
        payload: "{}".into(),
        reason: "bad".into(),
        plugin_version: "1.0.0+abc".into(),
        at_ms: 2,
        attempts: 1,
    }
}

fn dead_letters_are_kept_listed_by_source_and_removed(stores: &Stores) {
    let store = &stores.dead_letters;
    store
        .put_dead_letters(&[letter("jira", "b"), letter("jira", "a"), letter("crm", "c")])
        .unwrap();
    let jira: Vec<_> = store
        .dead_letters(Some("jira"), 10)
        .unwrap()
        .into_iter()
        .map(|l| l.event_id)
        .collect();
    assert_eq!(jira, ["a", "b"]);
    let all: Vec<_> = store
        .dead_letters(None, 10)
        .unwrap()
        .into_iter()
        .map(|l| (l.source, l.event_id))
        .collect();
    let pair = |s: &str, e: &str| (s.to_owned(), e.to_owned());
    assert_eq!(
        all,
        [pair("crm", "c"), pair("jira", "a"), pair("jira", "b")]
    );
    assert_eq!(store.dead_letters(None, 2).unwrap().len(), 2);
    // Refused again: the letter is replaced and the attempts add up.
    let again = DeadLetter {
        reason: "still bad".into(),
        attempts: 2,
        ..letter("jira", "a")
    };
    store.put_dead_letters(&[again]).unwrap();
    let kept = &store.dead_letters(Some("jira"), 1).unwrap()[0];
    assert_eq!((kept.reason.as_str(), kept.attempts), ("still bad", 3));
    assert!(store.remove_dead_letter("jira", "a").unwrap());
    assert!(!store.remove_dead_letter("jira", "a").unwrap());
    assert_eq!(store.dead_letters(Some("jira"), 10).unwrap().len(), 1);
    assert_eq!(
        stores.records.last_seq().unwrap(),
        0,
        "dead letters are not changes"
    );
}

fn an_event_that_goes_through_leaves_the_dead_letters(stores: &Stores) {
    stores
        .records
        .apply(&[event("seen", vec![upsert("A", 1, "{}")])])
        .unwrap();
    stores
        .dead_letters
        .put_dead_letters(&[
            letter("jira", "fixed"),
            letter("jira", "seen"),
            letter("jira", "other"),
        ])
        .unwrap();
    let out = stores
        .records
        .apply(&[
            event("fixed", vec![upsert("B", 1, "{}")]),
            event("seen", vec![]),
        ])
        .unwrap();
    assert_eq!(out, [applied(&[2], 0), EventOutcome::Duplicate]);
    let left: Vec<_> = stores
        .dead_letters
        .dead_letters(None, 10)
        .unwrap()
        .into_iter()
        .map(|l| l.event_id)
        .collect();
    assert_eq!(left, ["other"]);
}

fn snapshot(id: &str) -> Snapshot {
    Snapshot {
        id: id.into(),
        source: "jira".into(),
        opened_at_ms: 0,
        expires_at_ms: u64::MAX,
        expected_count: Some(3),
        checksum: None,
        staged: 0,
    }
}

fn a_snapshot_is_invisible_until_committed_and_then_applied_whole(stores: &Stores) {
    stores
        .records
        .apply(&[event("e0", vec![upsert("A", 1, "{\"v\":1}")])])
        .unwrap();
    assert_eq!(body(stores, "A").as_deref(), Some("{\"v\":1}"));
    let batches = &stores.snapshots;
    batches.open_snapshot(&snapshot("s1")).unwrap();
    assert_eq!(batches.snapshot("s1").unwrap(), Some(snapshot("s1")));
    assert_eq!(batches.snapshot("s2").unwrap(), None);
    let staged = batches
        .stage(
            "s1",
            &[
                event("e1", vec![upsert("A", 2, "{\"v\":2}")]),
                event("e2", vec![upsert("B", 1, "{}")]),
            ],
        )
        .unwrap();
    assert_eq!(staged, 2);
    let staged = batches
        .stage("s1", &[event("e0", vec![upsert("C", 1, "{}")])])
        .unwrap();
    assert_eq!(staged, 3);
    assert_eq!(batches.snapshot("s1").unwrap().unwrap().staged, 3);
    assert!(batches.stage("s2", &[event("x", vec![])]).is_err());
    assert_eq!(body(stores, "A").as_deref(), Some("{\"v\":1}"), "not yet");
    assert_eq!(body(stores, "B"), None);
    assert_eq!(stores.records.last_seq().unwrap(), 1);

    let outcomes = stores
        .commit_snapshot("s1", &|batch, staged| {
            assert_eq!(batch.id, "s1");
            let ids: Vec<&str> = staged.iter().map(|e| e.event_id.as_str()).collect();
            assert_eq!(ids, ["e1", "e2", "e0"], "staged events in order");
            Ok(())
        })
        .unwrap()
        .expect("the commit goes through");
    assert_eq!(
        outcomes,
        [applied(&[2], 0), applied(&[3], 0), EventOutcome::Duplicate]
    );
    assert_eq!(body(stores, "A").as_deref(), Some("{\"v\":2}"));
    assert_eq!(body(stores, "B").as_deref(), Some("{}"));
    assert_eq!(body(stores, "C"), None, "a duplicate event changes nothing");
    assert_eq!(stores.records.last_seq().unwrap(), 3);
    assert_eq!(batches.snapshot("s1").unwrap(), None, "closed");
    assert!(batches.snapshots().unwrap().is_empty());
    let again = stores.commit_snapshot("s1", &|_, _| Ok(())).unwrap();
    assert!(again.is_err(), "a closed snapshot cannot commit twice");
}

fn a_refused_commit_keeps_the_snapshot_and_an_abort_drops_it(stores: &Stores) {
    let batches = &stores.snapshots;
    batches.open_snapshot(&snapshot("s1")).unwrap();
    batches.open_snapshot(&snapshot("s2")).unwrap();
    batches
        .stage("s1", &[event("e1", vec![upsert("A", 1, "{}")])])
        .unwrap();
    let refused = stores
        .commit_snapshot("s1", &|_, staged| Err(format!("{} of 3", staged.len())))
        .unwrap();
    assert_eq!(refused, Err("1 of 3".to_owned()));
    assert_eq!(body(stores, "A"), None, "nothing applied");
    assert_eq!(batches.snapshot("s1").unwrap().unwrap().staged, 1);
    let mut open: Vec<_> = batches
        .snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    open.sort();
    assert_eq!(open, ["s1", "s2"]);
    assert!(batches.abort_snapshot("s1").unwrap());
    assert!(!batches.abort_snapshot("s1").unwrap());
    assert_eq!(batches.snapshot("s1").unwrap(), None);
    // Its id can be used again, starting empty.
    batches.open_snapshot(&snapshot("s1")).unwrap();
    assert_eq!(batches.snapshot("s1").unwrap().unwrap().staged, 0);
    let outcomes = stores.commit_snapshot("s1", &|_, _| Ok(())).unwrap();
    assert_eq!(outcomes, Ok(vec![]));
    assert_eq!(stores.records.last_seq().unwrap(), 0);
}

fn a_tenant_pages_out_with_tombstones_and_purges_with_invalidations(stores: &Stores) {
    let store = &stores.records;
    let other = |key: &str, version| Op::Upsert {
        id: RecordId {
            tenant: "globex".into(),
            ..id(key)
        },
        body: "{\"globex\":true}".into(),
        version,
    };
    store
        .apply(&[event(
            "e1",
            vec![
                upsert("a", 1, "{\"n\":1}"),
                upsert("b", 1, "{}"),
                upsert("c", 1, "{}"),
                other("a", 1),
            ],
        )])
        .unwrap();
    store
        .apply(&[event(
            "e2",
            vec![Op::Delete {
                id: id("b"),
                version: 2,
            }],
        )])
        .unwrap();
    let first = store.tenant_records("ticket", "acme", None, 2).unwrap();
    let keys: Vec<&str> = first.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a", "b"], "in key order, tombstones included");
    assert_eq!(first[1].1.body, None);
    assert_eq!(first[1].1.version, 2);
    let rest = store
        .tenant_records("ticket", "acme", Some("b"), 10)
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].0, "c");
    assert!(
        store
            .tenant_records("other", "acme", None, 10)
            .unwrap()
            .is_empty()
    );

    let last = store.last_seq().unwrap();
    let purged = store.purge_tenant("ticket", "acme", 2).unwrap();
    assert_eq!(purged.len(), 2, "at most the limit at a time");
    assert_eq!(purged[0].1, last + 1, "each purge is logged, gapless");
    let purged = store.purge_tenant("ticket", "acme", 10).unwrap();
    assert_eq!(purged.len(), 1);
    assert!(store.purge_tenant("ticket", "acme", 10).unwrap().is_empty());
    assert_eq!(
        store.get(&id("a")).unwrap(),
        None,
        "gone, tombstone and all"
    );
    assert_eq!(store.get(&id("b")).unwrap(), None);
    let log = store.changes(last, 10).unwrap();
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|c| c.kind == ChangeKind::Invalidate && c.tenant == "acme")
    );
    let kept = RecordId {
        tenant: "globex".into(),
        ..id("a")
    };
    assert!(
        store.get(&kept).unwrap().is_some(),
        "other tenants untouched"
    );

    let rewritten = store.redact_changes("acme").unwrap();
    assert_eq!(rewritten, 4, "three upserts and a delete lose their values");
    let log = store.changes(0, 100).unwrap();
    let seqs: Vec<u64> = log.iter().map(|c| c.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "still gapless"
    );
    for change in &log {
        if change.tenant == "acme" {
            assert_eq!(change.kind, ChangeKind::Invalidate);
        } else {
            assert!(matches!(change.kind, ChangeKind::Upsert { .. }));
        }
    }
}

fn pins_and_migrations_are_kept_and_a_stale_revision_writes_nothing(stores: &Stores) {
    let directory = &stores.directory;
    assert!(directory.pins().unwrap().is_empty());
    let start = directory.directory_revision().unwrap();
    assert_eq!(directory.pin("acme", "eu", true).unwrap(), "eu");
    assert_eq!(
        directory.pin("acme", "us", true).unwrap(),
        "eu",
        "only if absent: the pin there wins"
    );
    assert_eq!(directory.pin("acme", "us", false).unwrap(), "us");
    let pins = directory.pins().unwrap();
    assert_eq!(pins.len(), 1);
    assert_eq!(
        (pins[0].tenant.as_str(), pins[0].realm.as_str()),
        ("acme", "us")
    );
    let moved = directory.directory_revision().unwrap();
    assert!(moved > start, "a pin moves the revision");
    directory
        .pin_absent(&[
            ("acme".into(), "eu".into()),
            ("globex".into(), "eu".into()),
            ("initech".into(), "us".into()),
        ])
        .unwrap();
    let pins: Vec<(String, String)> = directory
        .pins()
        .unwrap()
        .into_iter()
        .map(|p| (p.tenant, p.realm))
        .collect();
    assert_eq!(
        pins,
        [
            ("acme".into(), "us".into()),
            ("globex".into(), "eu".into()),
            ("initech".into(), "us".into()),
        ],
        "absent ones pinned, in tenant order; acme kept its pin"
    );
    let moved = directory.directory_revision().unwrap();

    assert_eq!(
        directory.put_migration("m1", "acme", "{}", 0).unwrap(),
        Some(1)
    );
    assert_eq!(
        directory
            .put_migration("m1", "acme", "{\"x\":1}", 0)
            .unwrap(),
        None,
        "recorded already"
    );
    assert_eq!(
        directory
            .put_migration("m1", "acme", "{\"x\":2}", 1)
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        directory
            .put_migration("m1", "acme", "{\"x\":3}", 1)
            .unwrap(),
        None,
        "a stale revision writes nothing"
    );
    let all = directory.migrations().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].body, "{\"x\":2}");
    assert_eq!(all[0].revision, 2);
    assert!(directory.directory_revision().unwrap() > moved);
}

fn a_scan_sees_one_instant_and_an_overwrite_sets_an_older_version(stores: &Stores) {
    let store = &stores.records;
    store
        .apply(&[event(
            "e1",
            vec![upsert("a", 5, "{\"v\":5}"), upsert("b", 1, "{}")],
        )])
        .unwrap();
    store
        .apply(&[event(
            "e2",
            vec![Op::Delete {
                id: id("b"),
                version: 2,
            }],
        )])
        .unwrap();
    let mut seen = Vec::new();
    let at = store
        .scan(&mut |id, record| {
            seen.push((id.key, record.body, record.version));
            Ok(())
        })
        .unwrap();
    assert_eq!(at, 3, "the scan's instant is the log's end");
    assert_eq!(
        seen,
        [
            ("a".to_owned(), Some("{\"v\":5}".to_owned()), 5),
            ("b".to_owned(), None, 2)
        ],
        "every record, tombstones included"
    );
    // A restore's write takes a record back to an older version, and logs it.
    let mut restore = event("r1", vec![upsert("a", 3, "{\"v\":3}")]);
    restore.overwrite = true;
    assert_eq!(store.apply(&[restore]).unwrap(), [applied(&[4], 0)]);
    let a = store.get(&id("a")).unwrap().unwrap();
    assert_eq!((a.body.as_deref(), a.version), (Some("{\"v\":3}"), 3));
    // An ordinary write still may not.
    let stale = event("e3", vec![upsert("a", 2, "{}")]);
    assert_eq!(store.apply(&[stale]).unwrap(), [applied(&[], 1)]);
    let log = store.changes(3, 10).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].version, 3);
}

fn an_erasure_leaves_a_marker_drops_staged_events_and_the_pin(stores: &Stores) {
    let store = &stores.records;
    store
        .apply(&[event("e1", vec![upsert("a", 1, "{\"secret\":1}")])])
        .unwrap();
    stores.snapshots.open_snapshot(&snapshot("s1")).unwrap();
    let globex = EventWrite {
        ops: vec![Op::Upsert {
            id: RecordId {
                tenant: "globex".into(),
                ..id("g")
            },
            body: "{}".into(),
            version: 1,
        }],
        ..event("g1", vec![])
    };
    stores
        .snapshots
        .stage(
            "s1",
            &[event("s-a", vec![upsert("x", 1, "{}")]), globex.clone()],
        )
        .unwrap();
    assert_eq!(stores.snapshots.drop_staged("acme").unwrap(), 1);
    assert_eq!(stores.snapshots.drop_staged("acme").unwrap(), 0);
    let kept = stores
        .commit_snapshot("s1", &|_, staged| {
            if staged.len() == 1 {
                Ok(())
            } else {
                Err(format!("{} staged", staged.len()))
            }
        })
        .unwrap();
    assert!(kept.is_ok(), "only globex's event stays staged: {kept:?}");
    store.purge_tenant("ticket", "acme", 100).unwrap();
    assert_eq!(store.redact_changes("acme").unwrap(), 1);
    let marker = store.log_erasure("acme").unwrap();
    let last = store.changes(marker - 1, 10).unwrap();
    assert_eq!(
        last.last().map(|c| (&c.kind, c.tenant.as_str())),
        Some((&ChangeKind::Erase, "acme"))
    );
    assert_eq!(store.last_seq().unwrap(), marker);
    assert_eq!(
        store.redact_changes("acme").unwrap(),
        0,
        "the marker is no value"
    );
    store.compact().unwrap();
    assert!(store.get(&id("a")).unwrap().is_none());
    assert_eq!(
        store
            .get(&RecordId {
                tenant: "globex".into(),
                ..id("g")
            })
            .unwrap()
            .map(|r| r.version),
        Some(1)
    );
    let directory = &stores.directory;
    directory.pin("acme", "us", false).unwrap();
    assert!(directory.unpin("acme").unwrap());
    assert!(!directory.unpin("acme").unwrap());
    assert!(directory.pins().unwrap().is_empty());
}

fn operations_are_compared_and_set_and_the_audit_log_appends(stores: &Stores) {
    let recovery = &stores.recovery;
    let directory = &stores.directory;
    let start = directory.directory_revision().unwrap();
    assert_eq!(
        recovery
            .put_operation("op1", "{\"kind\":\"restore\"}", 0)
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        recovery.put_operation("op1", "{}", 0).unwrap(),
        None,
        "recorded already"
    );
    assert_eq!(
        recovery.put_operation("op1", "{\"n\":2}", 1).unwrap(),
        Some(2)
    );
    assert_eq!(
        recovery.put_operation("op1", "{}", 1).unwrap(),
        None,
        "a stale revision"
    );
    assert!(
        directory.directory_revision().unwrap() > start,
        "an operation moves the directory's revision: it may fence writes"
    );
    let all = recovery.operations().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].body.as_str(), all[0].revision), ("{\"n\":2}", 2));
    assert_eq!(recovery.append_audit("{\"a\":1}").unwrap(), 1);
    assert_eq!(recovery.append_audit("{\"a\":2}").unwrap(), 2);
    assert_eq!(recovery.append_audit("{\"a\":3}").unwrap(), 3);
    let entries = recovery.audit(1, 10).unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.id, e.entry.as_str()))
            .collect::<Vec<_>>(),
        [(2, "{\"a\":2}"), (3, "{\"a\":3}")]
    );
    assert!(entries.iter().all(|e| e.at_ms > 0));
    assert_eq!(recovery.audit(0, 1).unwrap().len(), 1, "a limit");
}
