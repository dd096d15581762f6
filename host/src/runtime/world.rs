//! Which droid world a component implements, against which package version, and
//! whether its imports are ones droid provides: the checks made before a component
//! is linked, so a refusal says why in droid's terms rather than wasmtime's.

use std::fmt;
use std::path::Path;
use std::sync::LazyLock;

use semver::{Version, VersionReq};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::LoadError;

/// The WIT package text this host was built from: the single source of truth for
/// the package version.
const WIT: &str = include_str!("../../../wit/plugin.wit");

/// The package version declared in `wit/plugin.wit`.
pub static PACKAGE_VERSION: LazyLock<Version> = LazyLock::new(|| {
    let line = WIT
        .lines()
        .find_map(|l| l.trim().strip_prefix("package droid:plugin@"))
        .expect("wit/plugin.wit declares `package droid:plugin@VERSION;`");
    Version::parse(line.trim_end_matches(';')).expect("the WIT package version is semver")
});

/// The package versions this host accepts: those semver-compatible with its own.
pub static ACCEPTED: LazyLock<VersionReq> = LazyLock::new(|| {
    VersionReq::parse(&format!("^{}", *PACKAGE_VERSION)).expect("caret requirement")
});

/// The two kinds of droid plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorldKind {
    /// Exports `droid:plugin/read-through`: fetches records on a cache miss.
    Adapter,
    /// Exports `droid:plugin/transform`: turns events into entity changes.
    Transformer,
}

impl WorldKind {
    /// The interface this world exports.
    pub fn export_interface(self) -> &'static str {
        match self {
            WorldKind::Adapter => "read-through",
            WorldKind::Transformer => "transform",
        }
    }

    /// "an adapter" or "a transformer", for messages.
    pub fn with_article(self) -> &'static str {
        match self {
            WorldKind::Adapter => "an adapter",
            WorldKind::Transformer => "a transformer",
        }
    }

    /// The droid:plugin interfaces this world may import.
    fn allowed_imports(self) -> &'static [&'static str] {
        match self {
            WorldKind::Adapter => &["types", "log", "clock", "config", "outbound-http"],
            WorldKind::Transformer => &["types", "log", "clock", "config"],
        }
    }
}

impl fmt::Display for WorldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorldKind::Adapter => "adapter",
            WorldKind::Transformer => "transformer",
        })
    }
}

/// A component's world and package version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The world it implements.
    pub world: WorldKind,
    /// The droid:plugin version it was built against.
    pub version: Version,
}

/// An interface name split into its parts: `ns:pkg/iface@version`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct InterfaceName<'a> {
    pub package: &'a str,
    pub interface: &'a str,
    pub version: Option<&'a str>,
}

pub(crate) fn split_name(name: &str) -> Option<InterfaceName<'_>> {
    let (path, version) = match name.split_once('@') {
        Some((path, version)) => (path, Some(version)),
        None => (name, None),
    };
    let (package, interface) = path.split_once('/')?;
    Some(InterfaceName {
        package,
        interface,
        version,
    })
}

/// Finds which droid world `component` implements and checks its version and imports.
pub(crate) fn identify(
    engine: &Engine,
    component: &Component,
    path: &Path,
) -> Result<Identity, LoadError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();

    let mut found = None;
    for name in &exports {
        let Some(parts) = split_name(name) else {
            continue;
        };
        if parts.package != "droid:plugin" {
            continue;
        }
        let world = match parts.interface {
            "read-through" => WorldKind::Adapter,
            "transform" => WorldKind::Transformer,
            _ => continue,
        };
        let version = check_version(parts.version, path)?;
        found = Some(Identity { world, version });
    }
    let Some(identity) = found else {
        return Err(LoadError::NotADroidPlugin {
            path: path.to_path_buf(),
            exports,
        });
    };

    for (name, _) in ty.imports(engine) {
        check_import(identity.world, name).map_err(|reason| LoadError::UnsupportedImport {
            path: path.to_path_buf(),
            import: name.to_owned(),
            reason,
        })?;
        if let Some(parts) = split_name(name).filter(|p| p.package == "droid:plugin") {
            check_version(parts.version, path)?;
        }
    }
    Ok(identity)
}

fn check_version(version: Option<&str>, path: &Path) -> Result<Version, LoadError> {
    let incompatible = |found: &str| LoadError::IncompatibleVersion {
        path: path.to_path_buf(),
        found: found.to_owned(),
        accepted: ACCEPTED.to_string(),
    };
    let text = version.ok_or_else(|| incompatible("(unversioned)"))?;
    let version = Version::parse(text).map_err(|_| incompatible(text))?;
    if !ACCEPTED.matches(&version) {
        return Err(incompatible(text));
    }
    Ok(version)
}

/// WASI packages a component may import. Rust's standard library imports several of
/// them even when a plugin never uses them; droid links them with an empty context
/// (no files, environment, arguments or network), so they grant nothing.
const WASI_PACKAGES: &[&str] = &[
    "wasi:cli",
    "wasi:io",
    "wasi:clocks",
    "wasi:random",
    "wasi:filesystem",
    "wasi:sockets",
];

fn check_import(world: WorldKind, name: &str) -> Result<(), String> {
    let Some(parts) = split_name(name) else {
        return Err("a bare function import; droid plugins import only interfaces".to_owned());
    };
    if parts.package == "droid:plugin" {
        if world.allowed_imports().contains(&parts.interface) {
            return Ok(());
        }
        return Err(match parts.interface {
            "outbound-http" => {
                "which only adapters get; transformers make no network calls".to_owned()
            }
            other => format!(
                "which is not an interface of the {world} world (unknown droid:plugin/{other})"
            ),
        });
    }
    if parts.package == "wasi:http" {
        return Err(
            "which droid does not provide: adapters reach their backing store through droid:plugin/outbound-http (use droid_sdk::http)"
                .to_owned(),
        );
    }
    if WASI_PACKAGES.contains(&parts.package) {
        return match parts.version.map(Version::parse) {
            Some(Ok(v)) if v.major == 0 && v.minor == 2 => Ok(()),
            _ => {
                Err("at a WASI version droid does not provide (droid provides WASI 0.2)".to_owned())
            }
        };
    }
    Err("which droid does not provide to plugins".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_version_comes_from_the_wit() {
        assert!(WIT.contains(&format!("package droid:plugin@{};", *PACKAGE_VERSION)));
    }

    /// Before 1.0 the minor version is the major one: components built
    /// against 0.1 (whose `found` echoed key and tenant) are refused by name.
    #[test]
    fn only_semver_compatible_packages_are_accepted() {
        let path = Path::new("p.wasm");
        let accepted = |v: &str| check_version(Some(v), path).is_ok();
        assert!(accepted(&PACKAGE_VERSION.to_string()));
        let next_patch = Version {
            patch: PACKAGE_VERSION.patch + 1,
            ..PACKAGE_VERSION.clone()
        };
        assert!(accepted(&next_patch.to_string()));
        assert!(!accepted("0.1.0"), "the 0.1 contract is gone");
        assert!(!accepted("1.0.0"));
        let refused = check_version(Some("0.1.0"), path).unwrap_err().to_string();
        assert!(
            refused.contains("0.1.0") && refused.contains(&ACCEPTED.to_string()),
            "{refused}"
        );
    }

    #[test]
    fn imports_are_judged_by_world() {
        assert!(check_import(WorldKind::Adapter, "droid:plugin/outbound-http@0.2.0").is_ok());
        assert!(check_import(WorldKind::Transformer, "droid:plugin/outbound-http@0.2.0").is_err());
        assert!(check_import(WorldKind::Transformer, "wasi:cli/environment@0.2.0").is_ok());
        assert!(check_import(WorldKind::Adapter, "wasi:http/outgoing-handler@0.2.0").is_err());
        assert!(check_import(WorldKind::Adapter, "wasi:cli/environment@0.3.0").is_err());
        assert!(check_import(WorldKind::Adapter, "acme:evil/backdoor").is_err());
    }
}
