//! The paths of droid's API, named once: the router is built from these, the
//! sidecar serves some of them, and tests walk them all (every route must
//! refuse malformed input in JSON), so a route added here cannot be missed.

/// One record.
pub const ENTITY: &str = "/v1/entity/{record_type}/{key}";
/// Many keys at once (`POST`), or the key named `batch` (`GET`).
pub const BATCH: &str = "/v1/entity/{record_type}/batch";
/// A key with a `/` in it: refused with `invalid_key` rather than "no route".
pub const KEY_WITH_SLASH: &str = "/v1/entity/{record_type}/{key}/{*rest}";
/// Invalidations of read-through keys.
pub const INVALIDATE: &str = "/v1/invalidate";
/// The change log as a stream.
pub const CHANGES: &str = "/v1/changes";
/// An ingested record type's export.
pub const RECORDS: &str = "/v1/records/{record_type}";
/// A provider's events.
pub const INGEST: &str = "/v1/ingest/{source}";
/// Opening a snapshot batch.
pub const SNAPSHOTS: &str = "/v1/ingest/{source}/snapshots";
/// One snapshot batch: its state, a part, its abort.
pub const SNAPSHOT: &str = "/v1/ingest/{source}/snapshots/{id}";
/// Committing a snapshot batch.
pub const SNAPSHOT_COMMIT: &str = "/v1/ingest/{source}/snapshots/{id}/commit";
/// Plugins and their versions.
pub const PLUGINS: &str = "/v1/admin/plugins";
/// Rolling a version out.
pub const ROLLOUT: &str = "/v1/admin/plugins/{name}/rollout";
/// Promoting a candidate.
pub const PROMOTE: &str = "/v1/admin/plugins/{name}/promote";
/// Rolling back.
pub const ROLLBACK: &str = "/v1/admin/plugins/{name}/rollback";
/// The configuration's status.
pub const CONFIG: &str = "/v1/admin/config";
/// `POST`: push a plugin file (the body; its signature in `Droid-Plugin-Signature`, base64) to every node.
pub const PLUGIN_FILE: &str = "/v1/admin/plugins/files/{file}";
/// `GET`: the fleet's nodes (what each holds and serves) and the pushed files.
pub const FLEET: &str = "/v1/admin/fleet";
/// Loading files again.
pub const RELOAD: &str = "/v1/admin/reload";
/// Ingestion sources and their states.
pub const SOURCES: &str = "/v1/admin/sources";
/// Dead letters.
pub const DEAD_LETTERS: &str = "/v1/admin/dead-letters";
/// Replaying dead letters.
pub const REPLAY: &str = "/v1/admin/dead-letters/{source}/replay";
/// A failed fetch's detail, by the error id its answer named.
pub const ERROR: &str = "/v1/admin/errors/{id}";
/// The realms and the tenant directory.
pub const TENANTS: &str = "/v1/admin/tenants";
/// One tenant: where it lives (`GET`), pinning it (`PUT`).
pub const TENANT: &str = "/v1/admin/tenants/{tenant}";
/// Every realm migration.
pub const MIGRATIONS: &str = "/v1/admin/migrations";
/// A migration step (`POST` schedule, start, commit, rollback; `GET` status).
pub const MIGRATION_STEP: &str = "/v1/admin/migrations/{step}";
/// Point-in-time restores: every one (`GET`), a new one or a dry run (`POST`).
pub const RESTORES: &str = "/v1/admin/restores";
/// One restore.
pub const RESTORE: &str = "/v1/admin/restores/{id}";
/// Undoing a restore.
pub const RESTORE_UNDO: &str = "/v1/admin/restores/{id}/undo";
/// Erasures: every one (`GET`), a proposal (`POST`).
pub const ERASURES: &str = "/v1/admin/erasures";
/// One erasure.
pub const ERASURE: &str = "/v1/admin/erasures/{id}";
/// Approving an erasure (another admin than its proposer).
pub const ERASURE_APPROVE: &str = "/v1/admin/erasures/{id}/approve";
/// The backups: how far each realm is shipped, the last verification.
pub const BACKUPS: &str = "/v1/admin/backups";
/// Verifying every backup now.
pub const BACKUPS_VERIFY: &str = "/v1/admin/backups/verify";
/// The audit log of destructive and recovery operations.
pub const AUDIT: &str = "/v1/admin/audit";
/// Liveness.
pub const HEALTHZ: &str = "/healthz";
/// Prometheus metrics.
pub const METRICS: &str = "/metrics";

/// Every route of droid's API with its methods.
pub const ALL: &[(&str, &[&str])] = &[
    (ENTITY, &["GET", "HEAD"]),
    (BATCH, &["GET", "POST"]),
    (KEY_WITH_SLASH, &["GET"]),
    (INVALIDATE, &["POST"]),
    (CHANGES, &["GET"]),
    (RECORDS, &["GET"]),
    (INGEST, &["POST"]),
    (SNAPSHOTS, &["POST"]),
    (SNAPSHOT, &["GET", "POST", "DELETE"]),
    (SNAPSHOT_COMMIT, &["POST"]),
    (PLUGINS, &["GET"]),
    (ROLLOUT, &["POST"]),
    (PROMOTE, &["POST"]),
    (ROLLBACK, &["POST"]),
    (CONFIG, &["GET"]),
    (RELOAD, &["POST"]),
    (SOURCES, &["GET"]),
    (DEAD_LETTERS, &["GET"]),
    (REPLAY, &["POST"]),
    (ERROR, &["GET"]),
    (TENANTS, &["GET"]),
    (TENANT, &["GET", "PUT"]),
    (MIGRATIONS, &["GET"]),
    (MIGRATION_STEP, &["GET", "POST"]),
    (RESTORES, &["GET", "POST"]),
    (RESTORE, &["GET"]),
    (RESTORE_UNDO, &["POST"]),
    (ERASURES, &["GET", "POST"]),
    (ERASURE, &["GET"]),
    (ERASURE_APPROVE, &["POST"]),
    (BACKUPS, &["GET"]),
    (BACKUPS_VERIFY, &["POST"]),
    (AUDIT, &["GET"]),
    (HEALTHZ, &["GET"]),
    (METRICS, &["GET"]),
];

/// The routes a sidecar serves, with their methods.
pub const SIDECAR: &[(&str, &[&str])] = &[
    (ENTITY, &["GET", "HEAD"]),
    (BATCH, &["GET", "POST"]),
    (KEY_WITH_SLASH, &["GET"]),
    (HEALTHZ, &["GET"]),
    (METRICS, &["GET"]),
];
