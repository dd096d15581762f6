//! Write droid plugins in plain Rust.
//!
//! droid serves entity records to many consumers at low latency. Providers (the
//! teams that own the data) plug their own code into it as sandboxed WebAssembly
//! components of two kinds:
//!
//! - a **transformer** turns the provider's events into entity changes
//!   ([`Transformer`], exported with [`export_transformer!`]);
//! - an **adapter** fetches one record from the provider's backing store on a
//!   cache miss ([`Adapter`], exported with [`export_adapter!`]).
//!
//! A plugin is a library crate with `crate-type = ["cdylib", "rlib"]` that depends
//! on `droid-sdk`, implements one trait and calls one macro. Build it with
//! `cargo build --release --target wasm32-wasip2` and hand droid the `.wasm` file
//! from `target/wasm32-wasip2/release/`. The same code runs natively in `cargo test`
//! against a [`testing::TestHost`].
//!
//! Plugins get no ambient authority: no files, environment, sockets or clocks
//! beyond this crate's [`log`], [`clock`], [`config`] and, for adapters, [`http`]
//! restricted to the record type's base URL. Each call runs under a deadline and a
//! memory cap; a panic fails that call only.
//!
//! # A complete transformer
//!
//! ```
//! use droid_sdk::{Entity, EntityOp, PluginError, SourceEvent, Transformer};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct TicketEvent {
//!     key: String,
//!     title: String,
//!     assignee: Option<String>,
//! }
//!
//! #[derive(Serialize)]
//! struct TicketRecord<'a> {
//!     title: &'a str,
//!     assignee: &'a str,
//! }
//!
//! pub struct Tickets;
//!
//! impl Transformer for Tickets {
//!     fn transform(event: SourceEvent) -> Result<Vec<EntityOp>, PluginError> {
//!         let ticket: TicketEvent = event.json()?;
//!         let record = TicketRecord {
//!             title: &ticket.title,
//!             assignee: ticket.assignee.as_deref().unwrap_or("unassigned"),
//!         };
//!         Ok(vec![EntityOp::Upsert(Entity::json(&ticket.key, &event.tenant, &record)?)])
//!     }
//! }
//!
//! droid_sdk::export_transformer!(Tickets);
//!
//! // The same logic, tested natively:
//! let event = SourceEvent {
//!     id: "ev-1".into(),
//!     source: "tickets".into(),
//!     kind: "ticket.updated".into(),
//!     tenant: "acme".into(),
//!     occurred_at: 1_700_000_000_000,
//!     payload: br#"{"key":"T-1","title":"Printer on fire","assignee":null}"#.to_vec(),
//! };
//! let results = droid_sdk::testing::TestHost::new().transform::<Tickets>(vec![event]);
//! let ops = results[0].as_ref().unwrap();
//! assert!(matches!(&ops[0], EntityOp::Upsert(e) if e.body.contains("unassigned")));
//! ```
//!
//! # A complete adapter
//!
//! ```
//! use droid_sdk::{Adapter, FetchOutcome, FetchRequest, Fetched, PluginError, http};
//!
//! pub struct Profiles;
//!
//! impl Adapter for Profiles {
//!     fn fetch(req: FetchRequest) -> Result<FetchOutcome, PluginError> {
//!         let response = http::Request::get(http::url_for_key(&req.key))
//!             .header("accept", "application/json")
//!             .send()?;
//!         match response.status {
//!             200 => Ok(FetchOutcome::Found(Fetched::body(response.text()?))),
//!             404 => Ok(FetchOutcome::NotFound),
//!             status => Err(PluginError::UpstreamStatus { status, message: "unexpected status".into() }),
//!         }
//!     }
//! }
//!
//! droid_sdk::export_adapter!(Profiles);
//!
//! let host = droid_sdk::testing::TestHost::new()
//!     .base_url("http://profiles.test/v1")
//!     .respond("http://profiles.test/v1/u-1", 200, r#"{"name":"Ada"}"#);
//! assert!(matches!(host.fetch::<Profiles>("profile", "u-1", "acme"), Ok(FetchOutcome::Found(_))));
//! assert_eq!(host.fetch::<Profiles>("profile", "u-2", "acme").unwrap_err(),
//!            PluginError::UpstreamUnavailable("connection failed: TestHost has no answer for http://profiles.test/v1/u-2".into()));
//! ```

#![deny(missing_docs)]
#![cfg_attr(target_arch = "wasm32", allow(dead_code))]

pub mod clock;
pub mod config;
mod export;
mod host;
pub mod http;
pub mod log;
pub mod seal;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod types;

pub use types::{
    Entity, EntityOp, EntityRef, FetchOutcome, FetchRequest, Fetched, PluginError, SourceEvent,
};

/// Implementation details of the export macros. Not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{AdapterShim, TransformerShim, adapter, transformer, version_bytes};
}

/// A backing-store adapter: fetches one record on a cache miss.
///
/// droid calls [`fetch`](Adapter::fetch) in a fresh instance for every miss, so
/// keep no state between calls. Follow the read-through contract: a found record
/// is [`FetchOutcome::Found`] with a JSON body, a missing one
/// [`FetchOutcome::NotFound`], and anything else an error whose case says whose
/// problem it is.
pub trait Adapter {
    /// Fetches the record named by `request`.
    fn fetch(request: FetchRequest) -> Result<FetchOutcome, PluginError>;
}

/// A transformer: turns one provider event into entity changes.
///
/// droid hands the component events in batches; the SDK calls
/// [`transform`](Transformer::transform) once per event and returns one result per
/// event, so one bad event fails alone.
pub trait Transformer {
    /// The changes `event` asks for (possibly none), or why it cannot be transformed.
    fn transform(event: SourceEvent) -> Result<Vec<EntityOp>, PluginError>;
}

/// The batching loop shared by the component export and the test host.
pub(crate) fn transform_batch<T: Transformer>(
    events: impl IntoIterator<Item = SourceEvent>,
) -> Vec<Result<Vec<EntityOp>, PluginError>> {
    events.into_iter().map(T::transform).collect()
}
