//! Test harness: a controllable backing store and a droid server running the real
//! router on a loopback port, with plugins built from source.

pub mod backend;
pub mod bench;
pub mod droid;
pub mod files;
pub mod load;
pub mod proxy;
pub mod setup;
pub mod sidecar;
pub mod tokens;

pub use backend::TestBackend;
pub use droid::{TestDroid, TestResponse};
pub use droid_test_artifacts as plugins;
pub use files::{Landing, eventually, land};
pub use setup::Setup;
pub use sidecar::TestSidecar;
