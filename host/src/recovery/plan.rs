//! What a restore writes: the chosen tenants' records as of the instant
//! (rebuilt by `backup::read`), compared with their live records, as the
//! upserts and deletes that make the live ones what they were, counted by
//! tenant and record type. A dry run stops here, so its counts are what
//! the restore then does.

use std::collections::{BTreeMap, BTreeSet};

use super::operation::Count;
use crate::backup::read::Version;
use crate::store::{Op, RecordId, Records, StoreError, StoredRecord};

/// Records read from the live store at a time.
const PAGE: usize = 1_000;

/// The writes of one realm's restore, and their counts.
#[derive(Debug, Default)]
pub struct Plan {
    /// The changes to write (their versions are the instant's).
    pub ops: Vec<Op>,
    /// What they do, by tenant and record type.
    pub counts: Vec<Count>,
}

/// The plan making `tenants`' records of `record_types` in `records` what
/// `past` says they were.
pub fn plan(
    records: &dyn Records,
    tenants: &BTreeSet<String>,
    record_types: &BTreeSet<String>,
    past: &BTreeMap<RecordId, Version>,
) -> Result<Plan, StoreError> {
    let mut out = Plan::default();
    for tenant in tenants {
        for record_type in record_types {
            let live = live_records(records, record_type, tenant)?;
            let mut count = Count {
                tenant: tenant.clone(),
                record_type: record_type.clone(),
                ..Count::default()
            };
            let id = |key: &str| RecordId {
                record_type: record_type.clone(),
                tenant: tenant.clone(),
                key: key.to_owned(),
            };
            let first = id("");
            let then: BTreeMap<&str, &Version> = past
                .range(first.clone()..)
                .take_while(|(k, _)| k.record_type == *record_type && k.tenant == *tenant)
                .map(|(k, v)| (k.key.as_str(), v))
                .collect();
            let keys: BTreeSet<&str> = then
                .keys()
                .copied()
                .chain(live.keys().map(String::as_str))
                .collect();
            for key in keys {
                let was = then.get(key).copied();
                let is = live.get(key);
                match (was, is) {
                    (Some((Some(body), version)), Some(now))
                        if now.body.as_ref() == Some(body) && now.version == *version =>
                    {
                        count.unchanged += 1;
                    }
                    (Some((Some(body), version)), _) => {
                        count.upserts += 1;
                        out.ops.push(Op::Upsert {
                            id: id(key),
                            body: body.clone(),
                            version: *version,
                        });
                    }
                    // Gone at the instant (deleted, or not yet there), here now.
                    (was, Some(now)) if now.body.is_some() => {
                        count.deletes += 1;
                        out.ops.push(Op::Delete {
                            id: id(key),
                            version: was.map_or(0, |(_, v)| *v),
                        });
                    }
                    _ => count.unchanged += 1,
                }
            }
            if count.upserts + count.deletes + count.unchanged > 0 {
                out.counts.push(count);
            }
        }
    }
    Ok(out)
}

/// Every record of `tenant` in `record_type`, tombstones included.
fn live_records(
    records: &dyn Records,
    record_type: &str,
    tenant: &str,
) -> Result<BTreeMap<String, StoredRecord>, StoreError> {
    let mut out = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = records.tenant_records(record_type, tenant, after.as_deref(), PAGE)?;
        let full = page.len() == PAGE;
        after = page.last().map(|(k, _)| k.clone());
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}
