//! The embedded store's byte layouts. Keys sort the way they are looked up:
//! record type, tenant, key, separated by NUL, which none of them may contain.

use super::{RecordId, StoreError, StoredRecord};

/// The table key of a record.
pub(super) fn record_key(id: &RecordId) -> Vec<u8> {
    join(&[&id.record_type, &id.tenant, &id.key])
}

/// The record a table key names.
pub(super) fn decode_record_key(bytes: &[u8]) -> Result<RecordId, StoreError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| StoreError::Corrupt(format!("a record key is not UTF-8: {e}")))?;
    let mut parts = text.split('\0');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(record_type), Some(tenant), Some(key), None) => Ok(RecordId {
            record_type: record_type.to_owned(),
            tenant: tenant.to_owned(),
            key: key.to_owned(),
        }),
        _ => Err(StoreError::Corrupt(format!(
            "a record key of {} parts (3 expected)",
            text.split('\0').count()
        ))),
    }
}

/// The table key of a source's event id.
pub(super) fn event_key(source: &str, event_id: &str) -> Vec<u8> {
    join(&[source, event_id])
}

fn join(parts: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Layout: version (8 bytes), seq (8), committed_at_ms (8), deleted (1), body.
pub(super) fn encode_record(record: &StoredRecord) -> Vec<u8> {
    let body = record.body.as_deref().unwrap_or("");
    let mut out = Vec::with_capacity(25 + body.len());
    out.extend_from_slice(&record.version.to_be_bytes());
    out.extend_from_slice(&record.seq.to_be_bytes());
    out.extend_from_slice(&record.committed_at_ms.to_be_bytes());
    out.push(u8::from(record.body.is_none()));
    out.extend_from_slice(body.as_bytes());
    out
}

pub(super) fn decode_record(bytes: &[u8]) -> Result<StoredRecord, StoreError> {
    if bytes.len() < 25 {
        return Err(StoreError::Corrupt(format!(
            "a record of {} bytes (at least 25 expected)",
            bytes.len()
        )));
    }
    let u64_at = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let body = match bytes[24] {
        1 => None,
        0 => Some(
            std::str::from_utf8(&bytes[25..])
                .map_err(|e| StoreError::Corrupt(format!("a record body is not UTF-8: {e}")))?
                .to_owned(),
        ),
        other => return Err(StoreError::Corrupt(format!("a record flag of {other}"))),
    };
    Ok(StoredRecord {
        version: u64_at(0),
        seq: u64_at(8),
        committed_at_ms: u64_at(16),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        for body in [Some("{\"a\":1}".to_owned()), Some(String::new()), None] {
            let record = StoredRecord {
                body,
                version: 7,
                seq: 42,
                committed_at_ms: 1_700_000_000_000,
            };
            assert_eq!(decode_record(&encode_record(&record)).unwrap(), record);
        }
        assert!(decode_record(b"short").is_err());
    }
}
