//! `[backup]`: continuous backups of every realm served, their folder, the
//! master key file and their rhythm. A file without the table takes none.

use std::path::Path;
use std::time::Duration;

use super::super::raw::RawBackup;
use super::super::{BackupSettings, BackupTarget};
use super::Checker;

const DAY_S: u64 = 86_400;

pub(super) fn backup(
    c: &mut Checker,
    base_dir: &Path,
    store_path: &Path,
    raw: RawBackup,
) -> BackupSettings {
    let target = target(c, base_dir, store_path, &raw);
    let master_key_file = match raw.master_key_file {
        Some(file) if !file.trim().is_empty() => base_dir.join(file),
        _ => {
            c.problem(
                "backup.master_key_file",
                "backups are encrypted: name the file holding the master key (64 hex digits; `droid backups keygen FILE` writes one)",
            );
            base_dir.join("backup.key")
        }
    };
    let segment_interval = c.millis(
        "backup",
        "segment_interval_ms",
        raw.segment_interval_ms,
        Duration::from_millis(500),
        10,
        3_600_000,
    );
    BackupSettings {
        target,
        master_key_file,
        segment_interval,
        segment_max_changes: c.number(
            "backup",
            "segment_max_changes",
            raw.segment_max_changes,
            10_000,
            1,
            1_000_000,
        ) as usize,
        snapshot_interval: Duration::from_secs(c.number(
            "backup",
            "snapshot_interval_s",
            raw.snapshot_interval_s,
            3_600,
            1,
            30 * DAY_S,
        )),
        snapshot_max_changes: c.number(
            "backup",
            "snapshot_max_changes",
            raw.snapshot_max_changes,
            1_000_000,
            1,
            u64::MAX,
        ),
        retention: Duration::from_secs(c.number(
            "backup",
            "retention_s",
            raw.retention_s,
            7 * DAY_S,
            60,
            3_650 * DAY_S,
        )),
        verify_interval: Duration::from_secs(c.number(
            "backup",
            "verify_interval_s",
            raw.verify_interval_s,
            3_600,
            1,
            30 * DAY_S,
        )),
    }
}

/// `backup.path` or `backup.url` (with `endpoint`, `region`, `allow_http`).
fn target(c: &mut Checker, base_dir: &Path, store_path: &Path, raw: &RawBackup) -> BackupTarget {
    let s3_only = [
        ("endpoint", raw.endpoint.is_some()),
        ("region", raw.region.is_some()),
        ("allow_http", raw.allow_http.is_some()),
        ("access_key_id", raw.access_key_id.is_some()),
        (
            "secret_access_key_file",
            raw.secret_access_key_file.is_some(),
        ),
    ];
    let Some(url) = &raw.url else {
        for (field, set) in s3_only {
            if set {
                c.problem(
                    format!("backup.{field}"),
                    "applies to an S3 target (backup.url) only",
                );
            }
        }
        return BackupTarget::Folder(match &raw.path {
            Some(path) if path.trim().is_empty() => {
                c.problem(
                    "backup.path",
                    "expected a folder path, found an empty string",
                );
                base_dir.join("backups")
            }
            Some(path) => base_dir.join(path),
            // Next to the store by default, so it works out of the box; the
            // README says to put it on another disk.
            None => store_path.parent().unwrap_or(base_dir).join("backups"),
        });
    };
    if raw.path.is_some() {
        c.problem(
            "backup.path",
            "give backup.path (a folder) or backup.url (S3), not both",
        );
    }
    let (bucket, prefix) = match url.strip_prefix("s3://") {
        Some(rest) => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            (bucket.to_owned(), prefix.trim_matches('/').to_owned())
        }
        None => {
            c.problem(
                "backup.url",
                format!("expected s3://BUCKET[/PREFIX], found {url:?}"),
            );
            (String::new(), String::new())
        }
    };
    if url.starts_with("s3://") && bucket.is_empty() {
        c.problem(
            "backup.url",
            "expected s3://BUCKET[/PREFIX]: the bucket is missing",
        );
    }
    let endpoint = raw.endpoint.clone();
    if let Some(endpoint) = &endpoint
        && url::Url::parse(endpoint).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
    {
        c.problem(
            "backup.endpoint",
            format!("expected an http or https URL, found {endpoint:?}"),
        );
    }
    let credentials = match (&raw.access_key_id, &raw.secret_access_key_file) {
        (Some(id), Some(file)) => Some((id.clone(), base_dir.join(file))),
        (None, None) => None,
        (Some(_), None) => {
            c.problem(
                "backup.secret_access_key_file",
                "backup.access_key_id needs the file holding its secret",
            );
            None
        }
        (None, Some(_)) => {
            c.problem(
                "backup.access_key_id",
                "backup.secret_access_key_file needs the access key id it belongs to",
            );
            None
        }
    };
    BackupTarget::S3 {
        bucket,
        prefix,
        endpoint,
        region: raw.region.clone().unwrap_or_else(|| "us-east-1".to_owned()),
        allow_http: raw.allow_http.unwrap_or(false),
        credentials,
    }
}
