//! What a plugin file says about itself before it runs: the plugin's name and
//! version from the file name (`NAME.wasm` or `NAME@VERSION.wasm`), and the version
//! the SDK embeds in the component (a custom section in its core module).
//!
//! The file name wins over the embedded version, so an operator can always tell two
//! builds apart by naming them. Labels add the first hex digits of the content hash
//! as semver build metadata (`1.2.0+3fa1b2c4`): two builds that claim the same
//! version (a developer's rebuild without a version bump) stay distinct.

/// The custom section the SDK writes the plugin crate's version into.
pub const VERSION_SECTION: &str = "droid:plugin-version";

/// A plugin file name split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName {
    /// The plugin's name: what record types refer to.
    pub plugin: String,
    /// The version the name declares, if any.
    pub version: Option<String>,
}

/// Splits `NAME.wasm` or `NAME@VERSION.wasm`; `None` for anything else.
pub fn parse_file_name(file: &str) -> Option<FileName> {
    let stem = file.strip_suffix(".wasm")?;
    if stem.is_empty() || stem.starts_with('.') {
        return None;
    }
    Some(match stem.split_once('@') {
        Some((plugin, version)) if !plugin.is_empty() && !version.is_empty() => FileName {
            plugin: plugin.to_owned(),
            version: Some(version.to_owned()),
        },
        Some(_) => return None,
        None => FileName {
            plugin: stem.to_owned(),
            version: None,
        },
    })
}

/// The version the SDK embedded in `bytes`, found in any core module the
/// component contains. `None` when there is none or it is not printable text.
pub fn embedded_version(bytes: &[u8]) -> Option<String> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(wasmparser::Payload::CustomSection(section)) = payload else {
            continue;
        };
        if section.name() != VERSION_SECTION {
            continue;
        }
        let text = std::str::from_utf8(section.data()).ok()?.trim();
        let printable = !text.is_empty()
            && text.len() <= 64
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'));
        return printable.then(|| text.to_owned());
    }
    None
}

/// The label a version goes by in listings, metrics and commands.
pub fn label(version: Option<&str>, sha256: &str) -> String {
    let short = &sha256[..8.min(sha256.len())];
    match version {
        // A declared version that already carries build metadata keeps it.
        Some(v) if v.contains('+') => v.to_owned(),
        Some(v) => format!("{v}+{short}"),
        None => format!("unversioned+{short}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(
            parse_file_name("echo.wasm"),
            Some(FileName {
                plugin: "echo".into(),
                version: None
            })
        );
        assert_eq!(
            parse_file_name("echo@2.0.0.wasm"),
            Some(FileName {
                plugin: "echo".into(),
                version: Some("2.0.0".into())
            })
        );
        for bad in [
            "echo.wasm.tmp",
            ".echo.wasm",
            "@1.wasm",
            "echo@.wasm",
            ".wasm",
            "echo",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn labels_carry_the_hash() {
        assert_eq!(label(Some("1.2.0"), "3fa1b2c4d5"), "1.2.0+3fa1b2c4");
        assert_eq!(label(None, "3fa1b2c4d5"), "unversioned+3fa1b2c4");
        assert_eq!(label(Some("1.2.0+build7"), "3fa1b2c4d5"), "1.2.0+build7");
    }
}
