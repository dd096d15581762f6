//! Recovery: point-in-time restore of chosen tenants into the live system
//! ([`restore`], planned by [`plan`], recorded as [`operation`]s where every
//! node reads them), and the audit log of destructive and recovery
//! operations ([`audit`]). The past comes from `backup`.

pub mod audit;
mod engine;
pub mod erase;
mod error;
pub mod operation;
mod plan;
pub mod restore;

pub use engine::Engine;
pub use erase::{Admin, Cleaned, Erasure, ErasureState};
pub use error::RecoveryError;
pub use operation::{Count, Restore, RestoreState};
pub use restore::RestoreRequest;
