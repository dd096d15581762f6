//! The host's integration tests: configuration checking, and the `droid` binary's
//! commands run as a user would run them.

mod backfill;
mod cli;
mod config;
mod hardening;
mod layers;
mod nats_ingest;
mod recovery_crash;
mod sensitive;
mod shared_log;
mod store_conformance;
mod support;
