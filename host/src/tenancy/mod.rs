//! Tenants and where their data lives: realms, each with a store of its
//! own ([`Realms`]); the tenant directory pinning tenants to realms
//! ([`Directory`]); and realm migration, the seed's lifecycle of schedule,
//! start (copy), status, commit and rollback ([`migration`], carried out by
//! [`worker`]).
//!
//! A tenant's records, change log entries, dead letters and staged
//! snapshots live only in its realm's store. A node serves the realms
//! `tenancy.serve` names; asked about a tenant of another realm it answers
//! `421 tenant_elsewhere` with that realm's `public_url`, never from
//! elsewhere. The directory lives in the store every node shares
//! (`[store]`), apart from every realm's data.

mod directory;
pub mod lifecycle;
pub mod migration;
mod realm;
pub mod worker;

pub use directory::{Directory, Held, Placement};
pub use migration::{Migration, MigrationError, MigrationState};
pub use realm::{Realm, Realms};
