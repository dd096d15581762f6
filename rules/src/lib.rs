//! The rules droid, its sidecar and the plugin SDK's [`TestHost`] must agree
//! on, kept in one place so a plugin that passes its native tests is not
//! refused inside droid, and a sidecar accepts exactly the names droid does.
//!
//! - [`record_type`]: what a record type may be called.
//! - [`key`]: record keys and tenant ids as they arrive from consumers and as
//!   plugins produce them.
//! - [`change`]: what a transformer's change must be for droid to keep it.
//! - [`egress`]: where an adapter's outbound requests may go, and which
//!   headers it may not set.
//!
//! [`TestHost`]: https://docs.rs/droid-sdk/latest/droid_sdk/testing/struct.TestHost.html

pub mod change;
pub mod egress;
pub mod key;
pub mod record_type;
