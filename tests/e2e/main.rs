//! End-to-end tests: the real router over loopback HTTP, real wasm plugins built
//! from source, and a real (test-controlled) backing store.

mod auth;
mod batch;
mod caching;
mod cluster;
mod config_reload;
mod egress;
mod faults;
mod feed;
mod hostile_clients;
mod hostile_plugins;
mod ingest;
mod loading;
mod read_through;
mod realms;
mod recovery;
mod reload;
mod rollout;
mod sidecar;
mod transform;
mod trust;
