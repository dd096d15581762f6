//! Metric names, their descriptions, and the Prometheus exporter behind `/metrics`.
//!
//! Metrics go through the `metrics` facade, so modules record with one macro call
//! and never see the exporter. The recorder is process-wide: the first
//! [`install`] wins and later calls share it, which lets several servers run in one
//! test process.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Subscribers following the change feed.
pub const FEED_SUBSCRIBERS: &str = "droid_feed_subscribers";
/// Change-feed subscribers dropped for not keeping up.
pub const FEED_DROPPED: &str = "droid_feed_dropped_total";
/// Requests refused for their credentials, by reason (the error code).
pub const AUTH_FAILURES: &str = "droid_auth_failures_total";
/// API requests, by record type and outcome.
pub const HTTP_REQUESTS: &str = "droid_http_requests_total";
/// API request latency in seconds, by record type and outcome.
pub const HTTP_REQUEST_DURATION: &str = "droid_http_request_duration_seconds";
/// Plugin calls, by plugin file, version, record type and outcome.
pub const PLUGIN_CALLS: &str = "droid_plugin_calls_total";
/// Plugin call duration in seconds, including instantiation, by the same labels.
pub const PLUGIN_CALL_DURATION: &str = "droid_plugin_call_duration_seconds";
/// Backing-store request attempts, by record type and outcome (status class or error).
pub const BACKING_STORE_REQUESTS: &str = "droid_backing_store_requests_total";
/// Backing-store request latency in seconds, per attempt, by record type.
pub const BACKING_STORE_DURATION: &str = "droid_backing_store_duration_seconds";
/// Reads by record type and cache result: hit, miss, stale, coalesced.
pub const CACHE_REQUESTS: &str = "droid_cache_requests_total";
/// Share of reads answered from the cache (hits, stale and coalesced) since start, by record type.
pub const CACHE_HIT_RATIO: &str = "droid_cache_hit_ratio";
/// Entries per record type and cache (found, not_found, error).
pub const CACHE_ENTRIES: &str = "droid_cache_entries";
/// Weighed bytes per record type and cache.
pub const CACHE_BYTES: &str = "droid_cache_bytes";
/// Configured byte capacity per record type and cache.
pub const CACHE_CAPACITY_BYTES: &str = "droid_cache_capacity_bytes";
/// Entries removed for room or age, by record type, cache and cause (size, expired).
pub const CACHE_EVICTIONS: &str = "droid_cache_evictions_total";
/// Entries removed by invalidation, by record type.
pub const CACHE_INVALIDATIONS: &str = "droid_cache_invalidations_total";
/// Fetches from the backing store in flight, by record type.
pub const FETCHES_IN_FLIGHT: &str = "droid_fetches_in_flight";
/// Misses refused because the record type's in-flight limit was reached.
pub const FETCHES_REJECTED: &str = "droid_fetches_rejected_total";
/// Outbound requests refused by the egress rule, by record type.
pub const EGRESS_DENIED: &str = "droid_egress_denied_total";
/// Loaded plugin versions, by plugin, version and world; the value is the share
/// of tenants the version serves (0 for versions held but not serving).
pub const PLUGINS_LOADED: &str = "droid_plugins_loaded";
/// Plugin versions rolled back, by plugin and how (automatic, manual).
pub const PLUGIN_ROLLBACKS: &str = "droid_plugin_rollbacks_total";
/// Configuration reloads, by result (applied, refused).
pub const CONFIG_RELOADS: &str = "droid_config_reloads_total";
/// Ingested events, by source and outcome (applied, duplicate, invalid, rejected, failed).
pub const INGEST_EVENTS: &str = "droid_ingest_events_total";
/// Each source's state: 0 ok, 1 warning (failures above `warn_above`), 2 incident.
pub const INGEST_SOURCE_STATE: &str = "droid_ingest_source_state";
/// Plugin files that failed to load, by file.
pub const PLUGIN_LOAD_FAILURES: &str = "droid_plugin_load_failures_total";

/// Whether a sidecar is in sync with its droid (1) or not (0).
pub const SIDECAR_IN_SYNC: &str = "droid_sidecar_in_sync";
/// How many changes a sidecar is behind its droid's log.
pub const SIDECAR_LAG_SEQ: &str = "droid_sidecar_lag_changes";
/// How old a sidecar's view may be, in seconds.
pub const SIDECAR_LAG_SECONDS: &str = "droid_sidecar_lag_seconds";
/// Time from a source event to its visibility in a sidecar.
pub const SIDECAR_PROPAGATION: &str = "droid_sidecar_propagation_seconds";
/// Changes a sidecar applied from the feed, by kind.
pub const SIDECAR_CHANGES_APPLIED: &str = "droid_sidecar_changes_applied_total";
/// Times a sidecar reconnected to the change feed.
pub const SIDECAR_RECONNECTS: &str = "droid_sidecar_feed_reconnects_total";
/// Times a sidecar started over because its droid no longer held its position.
pub const SIDECAR_RESYNCS: &str = "droid_sidecar_resyncs_total";
/// Plugin calls that went past a limit of their record type, by limit.
pub const PLUGIN_LIMITED: &str = "droid_plugin_limits_exceeded_total";
/// Plugin log lines dropped, by record type and reason (call budget, rate).
pub const PLUGIN_LOG_DROPPED: &str = "droid_plugin_log_lines_dropped_total";
/// Plugin calls waiting for one of their record type's call slots.
pub const PLUGIN_SLOT_WAITS: &str = "droid_plugin_slot_waits_total";
/// Connections open now.
pub const CONNECTIONS_OPEN: &str = "droid_connections_open";
/// Connections closed by droid, by reason (header timeout, idle, evicted for a new one, refused at the cap).
pub const CONNECTIONS_CLOSED: &str = "droid_connections_closed_total";
/// Failed accepts (out of file descriptors, ...), by kind.
pub const ACCEPT_ERRORS: &str = "droid_accept_errors_total";
/// Request bodies refused for their size: declared (`Content-Length`) or found while reading.
pub const BODIES_REFUSED: &str = "droid_request_bodies_refused_total";
/// Bytes the change feed holds for its subscribers now.
pub const FEED_BUFFERED_BYTES: &str = "droid_feed_buffered_bytes";
/// Times a subscriber's stream paused because all subscribers together hold `server.feed_buffer_bytes`.
pub const FEED_BUFFER_FULL: &str = "droid_feed_buffer_full_total";
/// Key repository fetches, by outcome.
pub const KEY_FETCHES: &str = "droid_auth_key_fetches_total";
/// Key lookups refused without a fetch, by reason (issuer not granted, too many fetches, negative cache).
pub const KEY_LOOKUPS_REFUSED: &str = "droid_auth_key_lookups_refused_total";
/// Events handed back to JetStream for another delivery (the store failed, or
/// more arrived at once than the source's burst), by source.
pub const INGEST_STREAM_NAKS: &str = "droid_ingest_stream_naks_total";
/// Invalidations from the invalidation stream that did not apply (not an
/// invalidation, an unknown record type, a bad key) and were dropped.
pub const INVALIDATION_STREAM_REFUSED: &str = "droid_invalidation_stream_refused_total";
/// Times pulling a source's events from JetStream failed and started again.
pub const INGEST_STREAM_RECONNECTS: &str = "droid_ingest_stream_reconnects_total";
/// Ingestion requests refused because their source has `max_in_flight` requests running.
pub const INGEST_BUSY: &str = "droid_ingest_busy_total";
/// Realm migrations recorded, by state.
pub const MIGRATIONS: &str = "droid_realm_migrations";
/// Records a realm migration copied to its target, or removed (from the
/// source at the commit, from the target at a rollback), by `step`.
pub const MIGRATION_RECORDS: &str = "droid_realm_migration_records_total";
/// Events refused because their tenant migrates or lives in a realm this
/// node does not serve, by `code`.
pub const INGEST_REFUSED: &str = "droid_ingest_refused_total";
/// Backup files written, by `kind` (snapshot, segment).
pub const BACKUP_FILES: &str = "droid_backup_files_total";
/// Bytes of backup files written.
pub const BACKUP_BYTES: &str = "droid_backup_bytes_total";
/// The last sequence number backed up, by `realm`.
pub const BACKUP_SHIPPED_SEQ: &str = "droid_backup_shipped_seq";
/// Changes not yet backed up, by `realm`: the recovery point, in changes.
pub const BACKUP_LAG: &str = "droid_backup_lag_changes";
/// Backup steps that failed (they are retried at the next interval).
pub const BACKUP_ERRORS: &str = "droid_backup_errors_total";
/// Chains cut short because changes left the log before they were backed up.
pub const BACKUP_GAPS: &str = "droid_backup_gaps_total";
/// What the last verification found wrong, by `realm`.
pub const BACKUP_PROBLEMS: &str = "droid_backup_problems";
/// When the last verification ran (seconds since the epoch), by `realm`.
pub const BACKUP_VERIFIED_AT: &str = "droid_backup_verified_at_seconds";
/// Restores run, by `outcome` (restored, undone, dry_run, failed).
pub const RESTORES: &str = "droid_restores_total";
/// Records restores wrote, by `op` (upsert, delete).
pub const RESTORED_RECORDS: &str = "droid_restored_records_total";

/// Latency buckets from 50 µs to 10 s: cache hits live at the bottom, backing-store
/// timeouts at the top.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .expect("latency buckets are non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness); ours then
            // only renders what it records itself, which is still well-formed.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_REQUESTS, "API requests by record type and outcome");
    describe_gauge!(FEED_SUBSCRIBERS, "Subscribers following the change feed");
    describe_gauge!(
        SIDECAR_IN_SYNC,
        "1 while the sidecar follows its droid's change feed"
    );
    describe_gauge!(
        SIDECAR_LAG_SEQ,
        "changes the sidecar is behind its droid's log"
    );
    describe_gauge!(SIDECAR_LAG_SECONDS, "how old the sidecar's view may be");
    describe_histogram!(
        SIDECAR_PROPAGATION,
        "time from a source event to its visibility in the sidecar"
    );
    describe_counter!(
        SIDECAR_CHANGES_APPLIED,
        "changes the sidecar applied, by kind"
    );
    describe_counter!(SIDECAR_RECONNECTS, "reconnections to the change feed");
    describe_counter!(
        SIDECAR_RESYNCS,
        "full resynchronisations after the droid trimmed past the sidecar"
    );
    describe_counter!(
        FEED_DROPPED,
        "Change-feed subscribers dropped for not keeping up"
    );
    describe_counter!(
        AUTH_FAILURES,
        "Requests refused for their credentials, by reason"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "API request latency"
    );
    describe_counter!(
        PLUGIN_CALLS,
        "plugin calls by plugin, version, record type and outcome"
    );
    describe_histogram!(
        PLUGIN_CALL_DURATION,
        metrics::Unit::Seconds,
        "plugin call duration, including instantiation"
    );
    describe_counter!(
        EGRESS_DENIED,
        "outbound requests refused by the egress rule"
    );
    describe_gauge!(PLUGINS_LOADED, "loaded plugin versions");
    describe_counter!(PLUGIN_LOAD_FAILURES, "plugin files that failed to load");
    describe_counter!(
        PLUGIN_LIMITED,
        "plugin calls that went past a limit of their record type, by limit"
    );
    describe_counter!(
        PLUGIN_LOG_DROPPED,
        "plugin log lines dropped, by record type and reason"
    );
    describe_counter!(
        PLUGIN_SLOT_WAITS,
        "plugin calls that waited for a call slot of their record type, by outcome"
    );
    describe_gauge!(CONNECTIONS_OPEN, "connections open now, by listener");
    describe_counter!(CONNECTIONS_CLOSED, "connections droid closed, by reason");
    describe_counter!(ACCEPT_ERRORS, "failed accepts, by kind");
    describe_counter!(
        BODIES_REFUSED,
        "request bodies refused for their size, by reason (declared, read)"
    );
    describe_gauge!(
        FEED_BUFFERED_BYTES,
        "bytes the change feed holds for its subscribers"
    );
    describe_counter!(
        FEED_BUFFER_FULL,
        "times a subscriber waited because the feed's buffer budget was spent"
    );
    describe_counter!(KEY_FETCHES, "key repository fetches, by outcome");
    describe_counter!(
        KEY_LOOKUPS_REFUSED,
        "key lookups answered without a fetch, by reason"
    );
    describe_counter!(
        INGEST_BUSY,
        "ingestion requests refused because their source's max_in_flight requests were running"
    );
    describe_gauge!(MIGRATIONS, "realm migrations recorded, by state");
    describe_counter!(
        MIGRATION_RECORDS,
        "records realm migrations copied or removed, by step"
    );
    describe_counter!(
        INGEST_REFUSED,
        "events refused because their tenant migrates or lives in another realm, by code"
    );
    describe_counter!(BACKUP_FILES, "backup files written, by kind");
    describe_counter!(BACKUP_BYTES, "bytes of backup files written");
    describe_gauge!(
        BACKUP_SHIPPED_SEQ,
        "the last sequence number backed up, by realm"
    );
    describe_gauge!(
        BACKUP_LAG,
        "changes committed but not yet backed up, by realm"
    );
    describe_counter!(BACKUP_ERRORS, "backup steps that failed (retried)");
    describe_counter!(
        BACKUP_GAPS,
        "backup chains cut short: changes left the log before they were backed up"
    );
    describe_gauge!(
        BACKUP_PROBLEMS,
        "what the last backup verification found wrong, by realm"
    );
    describe_gauge!(
        BACKUP_VERIFIED_AT,
        "when backups were last verified (Unix seconds), by realm"
    );
    describe_counter!(RESTORES, "point-in-time restores, by outcome");
    describe_counter!(RESTORED_RECORDS, "records restores wrote, by op");
}
