//! How loading a plugin can fail: load errors name the file and say why it
//! was refused, in words an operator can act on. How a call fails is
//! `crate::failure`'s vocabulary, shared with the read path.

use std::path::PathBuf;

use super::world::WorldKind;

/// Why a plugin file was not loaded. The running version, if any, stays in place.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{}: cannot read the plugin file: {reason}", path.display())]
    Read {
        /// The plugin file.
        path: PathBuf,
        /// What the operating system said.
        reason: String,
    },
    /// Trust is required and nothing vouches for the file.
    #[error("{}: {reason}", path.display())]
    Untrusted {
        /// The plugin file.
        path: PathBuf,
        /// Why it is not trusted.
        reason: String,
    },
    /// The file is not a WebAssembly component.
    #[error("{}: not a WebAssembly component: {reason}", path.display())]
    NotAComponent {
        /// The plugin file.
        path: PathBuf,
        /// What the file looks like instead.
        reason: String,
    },
    /// wasmtime could not compile the component.
    #[error("{}: the component does not compile: {reason}", path.display())]
    Compile {
        /// The plugin file.
        path: PathBuf,
        /// wasmtime's explanation.
        reason: String,
    },
    /// The component exports none of the droid plugin worlds.
    #[error(
        "{}: not a droid plugin: it exports neither droid:plugin/read-through (adapter world) nor droid:plugin/transform (transformer world); its exports are: {}",
        path.display(),
        if exports.is_empty() { "none".to_owned() } else { exports.join(", ") }
    )]
    NotADroidPlugin {
        /// The plugin file.
        path: PathBuf,
        /// What the component exports instead.
        exports: Vec<String>,
    },
    /// The component was built against a droid:plugin version this host does not speak.
    #[error(
        "{}: built against droid:plugin@{found}, but this host accepts droid:plugin@{accepted} (a different major version); rebuild the plugin with a droid-sdk for {accepted}",
        path.display()
    )]
    IncompatibleVersion {
        /// The plugin file.
        path: PathBuf,
        /// The package version the component was built against.
        found: String,
        /// The versions this host accepts, as a semver requirement.
        accepted: String,
    },
    /// The component implements the other world than the record type needs.
    #[error(
        "{}: is {} component, but record type {record_type:?} needs {}",
        path.display(),
        found.with_article(),
        expected.with_article()
    )]
    WrongWorld {
        /// The plugin file.
        path: PathBuf,
        /// The record type that asked for it.
        record_type: String,
        /// The world the record type needs.
        expected: WorldKind,
        /// The world the component implements.
        found: WorldKind,
    },
    /// The component imports something droid does not give plugins.
    #[error("{}: imports {import}, {reason}", path.display())]
    UnsupportedImport {
        /// The plugin file.
        path: PathBuf,
        /// The import's full name.
        import: String,
        /// Why droid does not provide it.
        reason: String,
    },
    /// The component's imports or exports do not have the types this host expects.
    #[error("{}: does not match the droid:plugin interfaces this host implements: {reason}", path.display())]
    Link {
        /// The plugin file.
        path: PathBuf,
        /// wasmtime's explanation.
        reason: String,
    },
    /// The component links but cannot be instantiated (its start-up traps, or
    /// its initial memory exceeds the largest cap).
    #[error("{}: fails to instantiate: {reason}", path.display())]
    Instantiate {
        /// The plugin file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}
