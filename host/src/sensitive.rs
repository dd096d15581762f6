//! Keeping PII and user-generated content out of droid in plain text.
//!
//! A record type may declare sensitive fields (JSON pointers into its records)
//! and a seal key. Every record a transformer writes or an adapter returns is
//! checked before droid keeps it: each sensitive field must be absent, `null`,
//! or a value sealed with the record type's key ([`droid_seal`]: a keyed hash
//! or an encryption the provider's plugin made with `droid_sdk::seal`). A
//! record with a field in plain text is refused, naming the field (never its
//! value). The plugin reads the key through its configuration, under
//! [`SEAL_KEY_VALUE`].

use droid_seal::SealKey;
use serde_json::Value;

/// The configuration value through which a plugin gets its record type's seal key (hex).
pub const SEAL_KEY_VALUE: &str = "droid.seal_key";

/// A seal key, kept out of `Debug` output.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretKey(pub SealKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// The key as 64 hex digits, for the plugin's configuration.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Checks the sensitive fields of a JSON record body. `Err` names the first
/// field in plain text and why, never its value.
pub fn check(body: &str, fields: &[String], key: Option<&SecretKey>) -> Result<(), String> {
    if fields.is_empty() {
        return Ok(());
    }
    let record: Value =
        serde_json::from_str(body).map_err(|_| "the record is not JSON".to_owned())?;
    for field in fields {
        match record.pointer(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => {
                let Some(key) = key else {
                    return Err(format!(
                        "sensitive field {field} is set, and the record type has no seal key to seal it with: leave it out"
                    ));
                };
                droid_seal::verify(&key.0, text).map_err(|e| match e {
                    droid_seal::SealError::NotSealed => format!(
                        "sensitive field {field} is in plain text: seal it (droid_sdk::seal::hash or encrypt) or leave it out"
                    ),
                    other => format!("sensitive field {field}: {other}"),
                })?;
            }
            Some(_) => {
                return Err(format!(
                    "sensitive field {field} is not a sealed string: seal it (droid_sdk::seal) or leave it out"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_fields_must_be_sealed_absent_or_null() {
        let key = SecretKey([3; 32]);
        let fields = vec!["/reporter/email".to_owned(), "/notes".to_owned()];
        let sealed = droid_seal::hash(&key.0, "grace@example.com");
        let ok = serde_json::json!({"reporter": {"email": sealed}, "notes": null}).to_string();
        assert_eq!(check(&ok, &fields, Some(&key)), Ok(()));
        assert_eq!(check("{}", &fields, Some(&key)), Ok(()));
        let plain = r#"{"reporter":{"email":"grace@example.com"}}"#;
        let e = check(plain, &fields, Some(&key)).unwrap_err();
        assert!(
            e.contains("/reporter/email is in plain text") && !e.contains("grace"),
            "{e}"
        );
        let other = SecretKey([4; 32]);
        let e = check(&ok, &fields, Some(&other)).unwrap_err();
        assert!(e.contains("does not verify"), "{e}");
        let e = check(r#"{"notes":{"text":"hi"}}"#, &fields, Some(&key)).unwrap_err();
        assert!(e.contains("/notes is not a sealed string"), "{e}");
        let e = check(plain, &fields, None).unwrap_err();
        assert!(e.contains("no seal key"), "{e}");
        assert_eq!(format!("{key:?}"), "SecretKey(..)");
    }
}
