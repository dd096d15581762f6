//! A transformer for an issue tracker's ticket events.
//!
//! The tracker publishes one event per change, carrying the ticket together with
//! its project and the people on it. Consumers want one ready-to-use record per
//! ticket, so this transformer denormalises the event into a `ticket` record keyed
//! by the ticket key, and leaves out what consumers must not see: people's email
//! addresses (PII) and the ticket description (user-generated content).
//!
//! Event kinds: `ticket.created` and `ticket.updated` upsert the record,
//! `ticket.deleted` deletes it; anything else is refused as invalid input.
//!
//! Consumers that need to match people by email can have it sealed: the config
//! value `email` says what becomes of addresses: `drop` (the default), `hash`
//! (a keyed hash: matchable, not readable) or `encrypt` (readable with the
//! record type's seal key), both with `droid_sdk::seal`; `plain` copies them
//! as they are, which a record type declaring them sensitive refuses.

use droid_sdk::{Entity, EntityOp, EntityRef, PluginError, SourceEvent, Transformer};
use serde::{Deserialize, Serialize};

/// The transformer.
#[derive(Debug)]
pub struct TicketTransformer;

/// The tracker's event payload.
#[derive(Debug, Deserialize)]
pub struct TicketEvent {
    /// The ticket as it is after the change.
    pub ticket: Ticket,
    /// The project the ticket belongs to.
    pub project: Project,
    /// Who the ticket is assigned to, if anyone.
    pub assignee: Option<Person>,
    /// Who reported the ticket.
    pub reporter: Person,
}

/// A ticket as the tracker sends it.
#[derive(Debug, Deserialize)]
pub struct Ticket {
    /// The human-readable key, such as `OPS-1234`.
    pub key: String,
    /// One-line summary.
    pub summary: String,
    /// Free text from users; never copied into records.
    #[serde(default)]
    pub description: Option<String>,
    /// Workflow status.
    pub status: String,
    /// Priority name.
    pub priority: String,
    /// Labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// The tracker's revision counter for the ticket.
    pub version: u64,
}

/// A project.
#[derive(Debug, Deserialize)]
pub struct Project {
    /// Project key, such as `OPS`.
    pub key: String,
    /// Display name.
    pub name: String,
}

/// A person.
#[derive(Debug, Deserialize)]
pub struct Person {
    /// Stable account id.
    pub account_id: String,
    /// Display name.
    pub display_name: String,
    /// Email address; never copied into records.
    #[serde(default)]
    pub email: Option<String>,
}

/// The record consumers read.
#[derive(Debug, Serialize)]
struct TicketRecord<'a> {
    key: &'a str,
    summary: &'a str,
    status: &'a str,
    priority: &'a str,
    labels: &'a [String],
    project: ProjectRef<'a>,
    assignee: Option<PersonRef<'a>>,
    reporter: PersonRef<'a>,
    updated_at: &'a str,
}

#[derive(Debug, Serialize)]
struct ProjectRef<'a> {
    key: &'a str,
    name: &'a str,
}

#[derive(Debug, Serialize)]
struct PersonRef<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
}

/// What becomes of email addresses (the config value `email`).
#[derive(Debug, Clone, Copy)]
enum Emails {
    Drop,
    Hash,
    Encrypt,
    Plain,
}

impl Emails {
    fn configured() -> Result<Self, PluginError> {
        match droid_sdk::config::get_or("email", "drop").as_str() {
            "drop" => Ok(Emails::Drop),
            "hash" => Ok(Emails::Hash),
            "encrypt" => Ok(Emails::Encrypt),
            "plain" => Ok(Emails::Plain),
            other => Err(PluginError::Internal(format!(
                "config value email is {other:?}; expected drop, hash, encrypt or plain"
            ))),
        }
    }

    fn person(self, p: &Person) -> Result<PersonRef<'_>, PluginError> {
        let email = match (self, &p.email) {
            (Emails::Drop, _) | (_, None) => None,
            (Emails::Hash, Some(e)) => Some(droid_sdk::seal::hash(e)?),
            (Emails::Encrypt, Some(e)) => Some(droid_sdk::seal::encrypt(e)?),
            (Emails::Plain, Some(e)) => Some(e.clone()),
        };
        Ok(PersonRef {
            id: &p.account_id,
            name: &p.display_name,
            email,
        })
    }
}

impl Transformer for TicketTransformer {
    fn transform(event: SourceEvent) -> Result<Vec<EntityOp>, PluginError> {
        let payload: TicketEvent = event.json()?;
        let ticket = &payload.ticket;
        match event.kind.as_str() {
            "ticket.created" | "ticket.updated" => {
                let emails = Emails::configured()?;
                let record = TicketRecord {
                    key: &ticket.key,
                    summary: &ticket.summary,
                    status: &ticket.status,
                    priority: &ticket.priority,
                    labels: &ticket.labels,
                    project: ProjectRef {
                        key: &payload.project.key,
                        name: &payload.project.name,
                    },
                    assignee: payload
                        .assignee
                        .as_ref()
                        .map(|p| emails.person(p))
                        .transpose()?,
                    reporter: emails.person(&payload.reporter)?,
                    updated_at: &ticket.updated_at,
                };
                let entity =
                    Entity::json(&ticket.key, &event.tenant, &record)?.with_version(ticket.version);
                Ok(vec![EntityOp::Upsert(entity)])
            }
            "ticket.deleted" => Ok(vec![EntityOp::Delete(EntityRef {
                key: ticket.key.clone(),
                tenant: event.tenant,
                version: Some(ticket.version),
            })]),
            other => Err(PluginError::InvalidInput(format!(
                "event {}: unknown kind {other:?}; expected ticket.created, ticket.updated or ticket.deleted",
                event.id
            ))),
        }
    }
}

droid_sdk::export_transformer!(TicketTransformer);

/// A realistic event of `kind` for ticket number `n`, 300 to 400 bytes of JSON:
/// for tests, benchmarks and the quickstart's sample events.
pub fn sample_event(n: u64, kind: &str) -> SourceEvent {
    let status = ["open", "in_progress", "done"][(n % 3) as usize];
    let priority = ["low", "medium", "high"][(n % 3) as usize];
    let payload = serde_json::json!({
        "ticket": {
            "key": format!("OPS-{n}"),
            "summary": format!("Checkout latency above SLO, region {}", n % 6),
            "description": "Customers report slow checkouts.",
            "status": status,
            "priority": priority,
            "labels": ["payments"],
            "updated_at": "2026-11-20T10:15:00Z",
            "version": n % 50 + 1,
        },
        "project": { "key": "OPS", "name": "Operations" },
        "assignee": { "account_id": format!("u-{}", n % 97), "display_name": "Ada Lovelace", "email": "ada@example.com" },
        "reporter": { "account_id": "u-7", "display_name": "Grace Hopper" },
    });
    SourceEvent {
        id: format!("ev-{n}"),
        source: "tracker".to_owned(),
        kind: kind.to_owned(),
        tenant: "acme".to_owned(),
        occurred_at: 1_763_633_700_000 + n,
        payload: serde_json::to_vec(&payload).expect("sample payload serializes"),
    }
}

#[cfg(test)]
mod tests {
    use droid_sdk::testing::TestHost;

    use super::*;

    #[test]
    fn an_update_becomes_one_denormalised_record_without_pii_or_ugc() {
        let results = TestHost::new()
            .transform::<TicketTransformer>(vec![sample_event(42, "ticket.updated")]);
        let ops = results[0].as_ref().expect("transformed");
        let [EntityOp::Upsert(entity)] = ops.as_slice() else {
            panic!("expected one upsert: {ops:?}")
        };
        assert_eq!(
            (entity.key.as_str(), entity.tenant.as_str(), entity.version),
            ("OPS-42", "acme", Some(43))
        );
        let body: serde_json::Value = serde_json::from_str(&entity.body).unwrap();
        assert_eq!(body["project"]["name"], "Operations");
        assert_eq!(body["assignee"]["name"], "Ada Lovelace");
        assert!(
            !entity.body.contains("example.com"),
            "emails must not reach records"
        );
        assert!(
            !entity.body.contains("Customers report"),
            "descriptions must not reach records"
        );
    }

    #[test]
    fn emails_are_sealed_when_asked_to_be() {
        let key = "0a".repeat(32);
        let event = || vec![sample_event(42, "ticket.updated")];
        let body = |host: TestHost| {
            let results = host.transform::<TicketTransformer>(event());
            let [EntityOp::Upsert(entity)] = results[0].as_ref().unwrap().as_slice() else {
                panic!("expected one upsert")
            };
            serde_json::from_str::<serde_json::Value>(&entity.body).unwrap()
        };
        let hashed = body(
            TestHost::new()
                .config("email", "hash")
                .config(droid_sdk::seal::KEY_VALUE, &key),
        );
        let sealed = hashed["assignee"]["email"].as_str().unwrap().to_owned();
        let key = droid_sdk::seal::key_from_hex(&key).unwrap();
        assert_eq!(
            droid_sdk::seal::verify(&key, &sealed),
            Ok(droid_sdk::seal::Kind::Hash)
        );
        assert!(!sealed.contains("example.com"));
        let encrypted = body(
            TestHost::new()
                .config("email", "encrypt")
                .config(droid_sdk::seal::KEY_VALUE, &"0a".repeat(32)),
        );
        let sealed = encrypted["assignee"]["email"].as_str().unwrap();
        assert_eq!(
            droid_sdk::seal::open(&key, sealed).unwrap(),
            "ada@example.com"
        );
        // Without a key, sealing fails the event rather than leaking the address.
        let results = TestHost::new()
            .config("email", "hash")
            .transform::<TicketTransformer>(event());
        assert!(results[0].is_err());
    }

    #[test]
    fn a_delete_names_the_ticket() {
        let results =
            TestHost::new().transform::<TicketTransformer>(vec![sample_event(7, "ticket.deleted")]);
        assert_eq!(
            results[0],
            Ok(vec![EntityOp::Delete(EntityRef {
                key: "OPS-7".into(),
                tenant: "acme".into(),
                version: Some(8)
            })])
        );
    }

    #[test]
    fn bad_events_fail_alone_in_a_batch() {
        let mut garbage = sample_event(1, "ticket.updated");
        garbage.payload = b"not json".to_vec();
        let batch = vec![
            sample_event(1, "ticket.created"),
            garbage,
            sample_event(2, "ticket.moved"),
        ];
        let results = TestHost::new().transform::<TicketTransformer>(batch);
        assert!(results[0].is_ok());
        assert!(
            matches!(&results[1], Err(PluginError::InvalidInput(m)) if m.contains("not the expected JSON"))
        );
        assert!(
            matches!(&results[2], Err(PluginError::InvalidInput(m)) if m.contains("unknown kind"))
        );
    }

    #[test]
    fn sample_events_are_about_300_bytes() {
        let size = sample_event(1234, "ticket.updated").payload.len();
        assert!(
            (250..=450).contains(&size),
            "sample payload is {size} bytes"
        );
    }
}
