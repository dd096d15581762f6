//! Record-type names appear in URLs, metric labels, file names and the change
//! log, so they are kept plain: 1 to [`MAX_NAME_BYTES`] ASCII letters, digits,
//! `-` or `_`, starting with a letter or digit.

/// The longest record-type name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Checks `name` against the rule above; the error says what a name may be.
pub fn check_name(name: &str) -> Result<(), String> {
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let starts_plain = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric());
    if name.len() > MAX_NAME_BYTES || !plain || !starts_plain {
        return Err(format!(
            "expected a record type name of 1 to {MAX_NAME_BYTES} letters, digits, '-' or '_' starting with a letter or digit, found {name:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_others_are_refused() {
        for ok in ["tickets", "site-v2", "a_b", "9lives", &"n".repeat(64)] {
            assert!(check_name(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", "-x", "_x", "a.b", "a b", "a/b", "ünï", &"n".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
