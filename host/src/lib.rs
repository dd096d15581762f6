//! droid's host: the service that serves entity records and runs provider plugins.
//!
//! The binary (`src/main.rs`) is a thin shell over this library: tests and
//! benchmarks drive the same [`app::App`] and [`server::run`] it does. See
//! `ARCHITECTURE.md` at the repository root for the map of modules and the
//! invariants between them.

pub mod access;
pub mod api;
pub mod app;
pub mod auth;
pub mod backup;
pub mod body;
pub mod cache;
pub mod config;
pub mod entity;
pub mod failure;
pub mod feed;
pub mod ingest;
pub use droid_rules::key;
mod locks;
pub mod metrics;
pub mod plugins;
pub mod readthrough;
pub mod recovery;
pub mod runtime;
pub mod sensitive;
pub mod server;
pub mod sidecar;
pub mod store;
pub mod tenancy;
pub mod tls;
pub mod web;
