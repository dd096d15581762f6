//! `[backup]`: continuous backups of every realm served, their folder, the
//! master key file and their rhythm. A file without the table takes none.

use std::path::Path;
use std::time::Duration;

use super::super::BackupSettings;
use super::super::raw::RawBackup;
use super::Checker;

const DAY_S: u64 = 86_400;

pub(super) fn backup(
    c: &mut Checker,
    base_dir: &Path,
    store_path: &Path,
    raw: RawBackup,
) -> BackupSettings {
    let path = match raw.path {
        Some(path) if path.trim().is_empty() => {
            c.problem(
                "backup.path",
                "expected a folder path, found an empty string",
            );
            base_dir.join("backups")
        }
        Some(path) => base_dir.join(path),
        // Next to the store: an operator who loses that disk loses these
        // too, which the guide says (a default must work out of the box).
        None => store_path.parent().unwrap_or(base_dir).join("backups"),
    };
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
        Duration::from_secs(1),
        10,
        3_600_000,
    );
    BackupSettings {
        path,
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
