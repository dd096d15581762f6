//! Bad configurations, each with the message it must produce: the file, the field
//! and what was expected.

use std::path::Path;

use droid_host::config::Config;

const GOOD_SITE: &str = r#"
[record_types.site]
mode = "read-through"
adapter = "http_json_adapter.wasm"
base_url = "http://127.0.0.1:9090/sites"
"#;

fn error_of(text: &str) -> String {
    match Config::parse(Path::new("/etc/droid/droid.toml"), text) {
        Ok(_) => panic!("accepted a bad config:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Each bad config and (part of) the message it must produce. `{site}` stands for
/// a valid record type, for configs whose problem lies elsewhere.
const TABLE: &[(&str, &str, &str)] = &[
    (
        "a syntax error",
        "[record_types.site\nmode = 1",
        "/etc/droid/droid.toml: line 1: invalid TOML: ",
    ),
    (
        "a misspelt field",
        "[record_types.site]\nmode = \"read-through\"\nadpter = \"a.wasm\"\n",
        "/etc/droid/droid.toml: line 3: record_types.site.adpter: unknown field `adpter`, expected one of `mode`, `adapter`, `base_url`, `realm_base_urls`, `transformer`, `limits`, `http`, `cache`, `max_in_flight`, `config`",
    ),
    (
        "a misspelt table",
        "[sever]\nlisten = \"127.0.0.1:1\"\n{site}",
        "/etc/droid/droid.toml: line 1: sever: unknown field `sever`, expected one of `server`, `plugins`, `runtime`, `defaults`, `record_types`",
    ),
    (
        "a number given as text",
        "[record_types.site]\nmode = \"read-through\"\nlimits = { deadline_ms = \"fast\" }\n",
        "/etc/droid/droid.toml: line 3: record_types.site.limits.deadline_ms: invalid type: string \"fast\", expected u64",
    ),
    (
        "a config value that is not text",
        "[record_types.site]\nmode = \"ingested\"\ntransformer = \"t.wasm\"\n[record_types.site.config]\nretries = 3\n",
        "/etc/droid/droid.toml: line 5: record_types.site.config.retries: invalid type: integer `3`, expected a string",
    ),
    (
        "no record types",
        "[server]\nlisten = \"127.0.0.1:8080\"\n",
        "/etc/droid/droid.toml: record_types: no record types declared; add a [record_types.NAME] table",
    ),
    (
        "a missing mode",
        "[record_types.site]\nadapter = \"a.wasm\"\n",
        "/etc/droid/droid.toml: record_types.site.mode: missing: expected \"read-through\" or \"ingested\"",
    ),
    (
        "an unknown mode",
        "[record_types.site]\nmode = \"push\"\n",
        "/etc/droid/droid.toml: record_types.site.mode: expected \"read-through\" or \"ingested\", found \"push\"",
    ),
    (
        "a read-through type without an adapter",
        "[record_types.site]\nmode = \"read-through\"\nbase_url = \"http://x.test\"\n",
        "/etc/droid/droid.toml: record_types.site.adapter: missing: a read-through record type needs its adapter plugin file",
    ),
    (
        "a read-through type without a base URL",
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"a.wasm\"\n",
        "/etc/droid/droid.toml: record_types.site.base_url: missing: a read-through record type needs the backing store's base URL",
    ),
    (
        "a base URL of another scheme",
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"a.wasm\"\nbase_url = \"ftp://files.test/x\"\n",
        "/etc/droid/droid.toml: record_types.site.base_url: expected an absolute http or https URL without credentials, query or fragment, found scheme \"ftp\"",
    ),
    (
        "a base URL with credentials",
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"a.wasm\"\nbase_url = \"http://u:p@store.test/x\"\n",
        "found credentials in \"http://u:p@store.test/x\"",
    ),
    (
        "a base URL with a query",
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"a.wasm\"\nbase_url = \"http://store.test/x?debug=1\"\n",
        "found a query or fragment in \"http://store.test/x?debug=1\"",
    ),
    (
        "a relative base URL",
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"a.wasm\"\nbase_url = \"/sites\"\n",
        "record_types.site.base_url: expected an absolute http or https URL without credentials, query or fragment, found \"/sites\" (relative URL without a base)",
    ),
    (
        "a plugin path leaving the plugin folder",
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"../evil.wasm\"\nbase_url = \"http://x.test\"\n",
        "/etc/droid/droid.toml: record_types.site.adapter: expected a file name in the plugin folder ending in .wasm, such as \"my-adapter.wasm\", found \"../evil.wasm\"",
    ),
    (
        "a plugin file that is not .wasm",
        "[record_types.site]\nmode = \"ingested\"\ntransformer = \"tickets.so\"\n",
        "record_types.site.transformer: expected a file name in the plugin folder ending in .wasm",
    ),
    (
        "read-through fields on an ingested type",
        "[record_types.site]\nmode = \"ingested\"\ntransformer = \"t.wasm\"\nbase_url = \"http://x.test\"\n",
        "/etc/droid/droid.toml: record_types.site.base_url: not allowed for an ingested record type",
    ),
    (
        "an ingested type without a transformer",
        "[record_types.site]\nmode = \"ingested\"\n",
        "/etc/droid/droid.toml: record_types.site.transformer: missing: an ingested record type needs its transformer plugin file",
    ),
    (
        "a zero deadline",
        "[record_types.site]\nmode = \"ingested\"\ntransformer = \"t.wasm\"\nlimits = { deadline_ms = 0 }\n",
        "/etc/droid/droid.toml: record_types.site.limits.deadline_ms: expected a number from 1 to 600000, found 0",
    ),
    (
        "a memory cap above the runtime's",
        "[runtime]\nmax_memory_mib = 128\n[record_types.site]\nmode = \"ingested\"\ntransformer = \"t.wasm\"\nlimits = { memory_mib = 512 }\n",
        "/etc/droid/droid.toml: record_types.site.limits.memory_mib: expected at most runtime.max_memory_mib (128), found 512",
    ),
    (
        "a request timeout longer than the call deadline",
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"a.wasm\"\nbase_url = \"http://x.test\"\nlimits = { deadline_ms = 500 }\nhttp = { request_timeout_ms = 2000 }\n",
        "/etc/droid/droid.toml: record_types.site.http.request_timeout_ms: expected at most the call deadline (500 ms), found 2000 ms",
    ),
    (
        "a bad listen address",
        "[server]\nlisten = \"localhost\"\n{site}",
        "/etc/droid/droid.toml: server.listen: expected an address and port such as \"127.0.0.1:8080\", found \"localhost\"",
    ),
    (
        "a record type name with spaces",
        "[record_types.\"my site\"]\nmode = \"ingested\"\ntransformer = \"t.wasm\"\n",
        "/etc/droid/droid.toml: record_types.my site: expected a record type name of 1 to 64 letters, digits, '-' or '_' starting with a letter or digit, found \"my site\"",
    ),
    (
        "a found cache switched off",
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"a.wasm\"\nbase_url = \"http://x.test\"\ncache = { found = { enabled = false } }\n",
        "/etc/droid/droid.toml: record_types.site.cache.found.enabled: the found cache cannot be switched off; set a short ttl_ms instead",
    ),
    (
        "a zero TTL",
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"a.wasm\"\nbase_url = \"http://x.test\"\ncache = { not_found = { ttl_ms = 0 } }\n",
        "/etc/droid/droid.toml: record_types.site.cache.not_found.ttl_ms: expected a number from 1 to 604800000, found 0",
    ),
    (
        "a cache too small for one entry",
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"a.wasm\"\nbase_url = \"http://x.test\"\ncache = { error = { capacity_bytes = 10 } }\n",
        "record_types.site.cache.error.capacity_bytes: expected a number from 1024 to 68719476736, found 10",
    ),
    (
        "a misspelt cache field",
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"a.wasm\"\nbase_url = \"http://x.test\"\ncache = { found = { ttl = 5 } }\n",
        "record_types.site.cache.found.ttl: unknown field `ttl`, expected one of `enabled`, `capacity_bytes`, `ttl_ms`",
    ),
    (
        "an in-flight limit of zero",
        "[record_types.site]\nmode = \"read-through\"\nadapter = \"a.wasm\"\nbase_url = \"http://x.test\"\nmax_in_flight = 0\n",
        "/etc/droid/droid.toml: record_types.site.max_in_flight: expected a number from 1 to 10000, found 0",
    ),
    (
        "too many retries",
        "[defaults.http]\nretries = 50\n{site}",
        "/etc/droid/droid.toml: defaults.http.retries: expected a number from 0 to 10, found 50",
    ),
    (
        "a cache on an ingested type",
        "[record_types.site]\nmode = \"ingested\"\ntransformer = \"t.wasm\"\ncache = { found = { ttl_ms = 5 } }\n",
        "/etc/droid/droid.toml: record_types.site.cache: not allowed for an ingested record type",
    ),
    (
        "an empty batch limit",
        "[server]\nmax_batch_keys = 0\n{site}",
        "/etc/droid/droid.toml: server.max_batch_keys: expected a number from 1 to 10000, found 0",
    ),
    (
        "an instance pool of zero",
        "[runtime]\nmax_instances = 0\n{site}",
        "runtime.max_instances: expected a number from 1 to 10000, found 0",
    ),
    (
        "a rollout share over 100%",
        "[plugins]\ninitial_share = \"150%\"\n{site}",
        "plugins.initial_share: expected a percentage from 0% to 100% such as \"5%\" or \"0.5%\", found \"150%\"",
    ),
    (
        "a rollback margin without a percent sign",
        "[plugins]\nrollback_margin = \"0.05\"\n{site}",
        "plugins.rollback_margin: expected a percentage",
    ),
    (
        "a header timeout too short to send a head",
        "[server]\nheader_timeout_ms = 5\n{site}",
        "/etc/droid/droid.toml: server.header_timeout_ms: expected a number from 100 to 600000, found 5",
    ),
    (
        "no connections at all",
        "[server]\nmax_connections = 0\n{site}",
        "server.max_connections: expected a number from 1 to 1000000, found 0",
    ),
    (
        "a body limit under a kilobyte",
        "[server]\nmax_body_bytes = 10\n{site}",
        "server.max_body_bytes: expected a number from 1024 to 1073741824, found 10",
    ),
    (
        "an error journal over a gigabyte",
        "[server]\nerror_journal_bytes = 2147483648\n{site}",
        "server.error_journal_bytes: expected a number from 0 to 1073741824, found 2147483648",
    ),
    (
        "a feed budget smaller than one subscriber's share",
        "[server]\nfeed_subscriber_bytes = 4194304\nfeed_buffer_bytes = 1048576\n{site}",
        "server.feed_buffer_bytes: expected at least server.feed_subscriber_bytes (4194304), found 1048576",
    ),
    (
        "a plugin priority out of the nice range",
        "[runtime]\nplugin_nice = 40\n{site}",
        "runtime.plugin_nice: expected a number from 0 to 19, found 40",
    ),
    (
        "no plugin threads",
        "[runtime]\nplugin_threads = 0\n{site}",
        "runtime.plugin_threads: expected a number from 1 to 1024, found 0",
    ),
    (
        "a JSON depth beyond what parsers take",
        "[defaults.limits]\nmax_json_depth = 500\n{site}",
        "defaults.limits.max_json_depth: expected a number from 1 to 128, found 500",
    ),
    (
        "fewer changes per call than per event",
        "[record_types.site]\nmode = \"ingested\"\ntransformer = \"t.wasm\"\nlimits = { max_ops_per_event = 100, max_ops_per_call = 10 }\n",
        "record_types.site.limits.max_ops_per_call: expected at least max_ops_per_event (100), found 10",
    ),
    (
        "a record limit too small for any record",
        "[record_types.site]\nmode = \"ingested\"\ntransformer = \"t.wasm\"\nlimits = { max_record_bytes = 1 }\n",
        "record_types.site.limits.max_record_bytes: expected a number from 64 to 268435456, found 1",
    ),
    (
        "a source with no room for a request",
        "[record_types.t]\nmode = \"ingested\"\ntransformer = \"t.wasm\"\n[sources.s]\nrecord_type = \"t\"\nmax_in_flight = 0\n",
        "sources.s.max_in_flight: expected a number from 1 to 10000, found 0",
    ),
    (
        "key lookups that can never run",
        "[auth]\naudience = \"droid\"\nkey_repositories = [\"keys\"]\nkey_fetch_concurrency = 0\n{site}",
        "auth.key_fetch_concurrency: expected a number from 1 to 1000, found 0",
    ),
    (
        "record types whose shares overflow the pool",
        "[runtime]\nmax_instances = 20\n{site}max_in_flight = 20\n",
        "runtime.max_instances: the record types' max_in_flight add up to 20, but the instance pool holds 20 (one is kept for loading plugins): raise runtime.max_instances to at least 21 or lower max_in_flight",
    ),
    (
        "a pinned hash that is not one",
        "[plugins]\npinned_sha256 = [\"abc\"]\n{site}",
        "plugins.pinned_sha256[0]: expected a SHA-256 hash as 64 lowercase hex digits",
    ),
    (
        "trust required with nothing trusted",
        "[plugins]\nrequire_trust = true\n{site}",
        "plugins.require_trust: trust is required but nothing is trusted",
    ),
    (
        "a source feeding a read-through record type",
        "[sources.jira]\nrecord_type = \"site\"\n{site}",
        "sources.jira.record_type: record type \"site\" is read-through; a source feeds an ingested record type",
    ),
    (
        "a source feeding an undeclared record type",
        "[sources.jira]\nrecord_type = \"tickets\"\n{site}",
        "sources.jira.record_type: no record type named \"tickets\" is declared",
    ),
    (
        "a source burst without a rate",
        "[record_types.t]\nmode = \"ingested\"\ntransformer = \"t.wasm\"\n[sources.jira]\nrecord_type = \"t\"\nburst = 5\n",
        "sources.jira.burst: a burst needs a rate_limit to go with it",
    ),
    (
        "a source without a record type",
        "[sources.jira]\n{site}",
        "sources.jira.record_type: required: the ingested record type this source feeds",
    ),
    (
        "allow-all for invalidation",
        "{site}invalidators = [\"*\"]\n",
        "record_types.site.invalidators: allow-all (\"*\") is not accepted here: list the issuers that may do this",
    ),
    (
        "an issuer name with a slash",
        "{site}readers = [\"a/b\"]\n",
        "record_types.site.readers: expected issuer names of [A-Za-z0-9_.+-] (1 to 128 bytes), found \"a/b\"",
    ),
    (
        "invalidators of an ingested record type",
        "[record_types.t]\nmode = \"ingested\"\ntransformer = \"t.wasm\"\ninvalidators = [\"x\"]\n",
        "record_types.t.invalidators: not allowed for an ingested record type",
    ),
    (
        "auth without an audience",
        "[auth]\nkey_repositories = [\"https://keys.example\"]\n{site}",
        "auth.audience: required",
    ),
    (
        "auth without key repositories",
        "[auth]\naudience = \"droid\"\n{site}",
        "auth.key_repositories: required: at least one folder or http(s) base URL",
    ),
    (
        "a sensitive field that is not a JSON pointer",
        "{site}sensitive_fields = [\"owner.email\"]\n",
        "record_types.site.sensitive_fields: expected JSON pointers such as \"/reporter/email\", found \"owner.email\"",
    ),
    (
        "a seal key file that is not there",
        "{site}seal_key_file = \"/nonexistent/site.seal\"\n",
        "record_types.site.seal_key_file: cannot read /nonexistent/site.seal",
    ),
    (
        "a PostgreSQL store without a URL",
        "[store]\nbackend = \"postgres\"\n{site}",
        "store.url: backend = \"postgres\" needs the database's URL",
    ),
    (
        "a store backend droid does not have",
        "[store]\nbackend = \"mysql\"\n{site}",
        "store.backend: expected \"embedded\" or \"postgres\", found \"mysql\"",
    ),
    (
        "PostgreSQL settings on the embedded store",
        "[store]\npool_size = 4\n{site}",
        "store.pool_size: applies to backend = \"postgres\" only",
    ),
    (
        "a schema name droid will not put in SQL",
        "[store]\nbackend = \"postgres\"\nurl = \"postgresql://droid@db/droid\"\nschema = \"Droid; DROP\"\n{site}",
        "store.schema: expected a plain schema name",
    ),
    (
        "a URL that is not PostgreSQL's",
        "[store]\nbackend = \"postgres\"\nurl = \"postgresql://db:notaport/x\"\n{site}",
        "store.url: not a PostgreSQL connection string or URL",
    ),
    (
        "a stream without its subject",
        "[record_types.t]\nmode = \"ingested\"\ntransformer = \"t.wasm\"\n[sources.s]\nrecord_type = \"t\"\nstream = { url = \"nats://n:4222\", stream = \"EVENTS\", durable = \"droid\" }\n",
        "sources.s.stream.subject: required: the subject events are published on",
    ),
    (
        "a stream name JetStream refuses",
        "[invalidations]\nstream = { url = \"nats://n:4222\", stream = \"my.stream\", subject = \"i\", durable = \"droid\" }\n{site}",
        "invalidations.stream.stream: \"my.stream\": JetStream names may not hold",
    ),
    (
        "an empty node name",
        "[server]\nnode_name = \"\"\n{site}",
        "server.node_name: expected 1 to 128 characters without control characters",
    ),
    (
        "a realm name that cannot name a file or a schema",
        "[realms.EU-West]\n{site}",
        "realms.EU-West: expected a realm name of a-z, 0-9 and _",
    ),
    (
        "several realms and no default",
        "[realms.us]\n[realms.eu]\n{site}",
        "tenancy.default_realm: several realms are declared",
    ),
    (
        "a default realm no one declared",
        "[realms.us]\n[tenancy]\ndefault_realm = \"mars\"\n{site}",
        "tenancy.default_realm: no realm named \"mars\" is declared (declared: us)",
    ),
    (
        "serving a realm no one declared",
        "[realms.us]\n[tenancy]\nserve = [\"eu\"]\n{site}",
        "tenancy.serve: no realm named \"eu\" is declared",
    ),
    (
        "a rule without a prefix",
        "[realms.us]\n[tenancy]\nrules = [{ realm = \"us\" }]\n{site}",
        "tenancy.rules[0]: expected {tenant_prefix = \"...\", realm = \"...\"}",
    ),
    (
        "two realms in one file",
        "[realms.us]\npath = \"data/one.redb\"\n[realms.eu]\npath = \"data/one.redb\"\n[tenancy]\ndefault_realm = \"us\"\n{site}",
        "realms.us.path: /etc/droid/data/one.redb is already the store of realms.eu",
    ),
    (
        "a realm in the directory's own store",
        "[store]\npath = \"s.redb\"\n[realms.us]\npath = \"s.redb\"\n{site}",
        "realms.us.path: /etc/droid/s.redb is already the store of store (the tenant directory)",
    ),
    (
        "a PostgreSQL schema for an embedded realm",
        "[realms.us]\nschema = \"us\"\n{site}",
        "realms.us.schema: applies to store.backend = \"postgres\" only",
    ),
    (
        "a realm URL that is not one",
        "[realms.us]\npublic_url = \"us.example\"\n{site}",
        "realms.us.public_url: expected an absolute http or https URL",
    ),
    (
        "a realm base URL for a realm no one declared",
        "[realms.us]\n[record_types.s]\nmode = \"read-through\"\nadapter = \"a.wasm\"\nbase_url = \"http://s\"\nrealm_base_urls = { eu = \"http://s-eu\" }\n",
        "record_types.s.realm_base_urls.eu: no realm named \"eu\" is declared",
    ),
    (
        "a realm base URL that is not one",
        "[realms.eu]\n[record_types.s]\nmode = \"read-through\"\nadapter = \"a.wasm\"\nbase_url = \"http://s\"\nrealm_base_urls = { eu = \"s-eu\" }\n",
        "record_types.s.realm_base_urls.eu: expected an absolute http or https URL",
    ),
    (
        "a zero copy page",
        "[tenancy]\ncopy_page_records = 0\n{site}",
        "tenancy.copy_page_records: expected a number from 1 to 100000, found 0",
    ),
    (
        "backups without a master key",
        "[backup]\npath = \"/backups\"\n{site}",
        "backup.master_key_file: backups are encrypted: name the file holding the master key",
    ),
    (
        "an empty backup folder",
        "[backup]\npath = \"\"\nmaster_key_file = \"k\"\n{site}",
        "backup.path: expected a folder path, found an empty string",
    ),
    (
        "segments shipped too often",
        "[backup]\nmaster_key_file = \"k\"\nsegment_interval_ms = 1\n{site}",
        "backup.segment_interval_ms: expected a number from 10 to 3600000, found 1",
    ),
    (
        "an unknown backup setting",
        "[backup]\nmaster_key_file = \"k\"\nbucket = \"b\"\n{site}",
        "unknown field `bucket`",
    ),
    (
        "a retention shorter than a minute",
        "[backup]\nmaster_key_file = \"k\"\nretention_s = 5\n{site}",
        "backup.retention_s: expected a number from 60 to",
    ),
    (
        "an S3 target that is not an s3:// URL",
        "[backup]\nmaster_key_file = \"k\"\nurl = \"https://bucket.example\"\n{site}",
        "backup.url: expected s3://BUCKET[/PREFIX], found \"https://bucket.example\"",
    ),
    (
        "an S3 target without its bucket",
        "[backup]\nmaster_key_file = \"k\"\nurl = \"s3:///droid\"\n{site}",
        "backup.url: expected s3://BUCKET[/PREFIX]: the bucket is missing",
    ),
    (
        "both a backup folder and an S3 target",
        "[backup]\nmaster_key_file = \"k\"\npath = \"b\"\nurl = \"s3://b\"\n{site}",
        "backup.path: give backup.path (a folder) or backup.url (S3), not both",
    ),
    (
        "an S3 endpoint that is not a URL",
        "[backup]\nmaster_key_file = \"k\"\nurl = \"s3://b\"\nendpoint = \"minio:9000\"\n{site}",
        "backup.endpoint: expected an http or https URL, found \"minio:9000\"",
    ),
    (
        "S3 settings for a folder",
        "[backup]\nmaster_key_file = \"k\"\nregion = \"eu-west-1\"\n{site}",
        "backup.region: applies to an S3 target (backup.url) only",
    ),
    (
        "an S3 access key without its secret",
        "[backup]\nmaster_key_file = \"k\"\nurl = \"s3://b\"\naccess_key_id = \"AKIA\"\n{site}",
        "backup.secret_access_key_file: backup.access_key_id needs the file holding its secret",
    ),
    (
        "no time to approve an erasure",
        "[tenancy]\nerase_approval_window_s = 0\n{site}",
        "tenancy.erase_approval_window_s: expected a number from 1 to 2592000, found 0",
    ),
    (
        "a zero restore batch",
        "[tenancy]\nrestore_batch_records = 0\n{site}",
        "tenancy.restore_batch_records: expected a number from 1 to 100000, found 0",
    ),
    (
        "a zero rollback call minimum",
        "[plugins]\nrollback_min_calls = 0\n{site}",
        "plugins.rollback_min_calls: expected a number from 1 to 10000000, found 0",
    ),
];

#[test]
fn every_bad_config_produces_its_message() {
    for (what, text, expected) in TABLE {
        let message = error_of(&text.replace("{site}", GOOD_SITE));
        assert!(
            message.contains(expected),
            "{what}:\n  expected: {expected}\n  got:      {message}"
        );
    }
}

/// All problems are reported together, one per line, so they are fixed in one pass.
#[test]
fn every_problem_is_reported_at_once() {
    let message = error_of(
        "[server]\nlisten = \"nowhere\"\n[record_types.a]\nmode = \"push\"\n[record_types.b]\nmode = \"ingested\"\n",
    );
    assert!(
        message.starts_with("/etc/droid/droid.toml: 3 problems\n"),
        "{message}"
    );
    assert!(message.contains("\n  server.listen: "), "{message}");
    assert!(message.contains("\n  record_types.a.mode: "), "{message}");
    assert!(
        message.contains("\n  record_types.b.transformer: "),
        "{message}"
    );
}

/// A good config resolves defaults and paths relative to the file.
#[test]
fn a_good_config_gets_defaults_and_relative_paths() {
    let config = Config::parse(Path::new("/etc/droid/droid.toml"), GOOD_SITE).expect("valid");
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.plugin_dir, Path::new("/etc/droid/plugins"));
    let site = config.record_type("site").expect("declared");
    assert_eq!(site.limits.deadline.as_millis(), 2000);
    assert_eq!(site.limits.memory_bytes, 64 << 20);
    let droid_host::config::Mode::ReadThrough(rt) = &site.mode else {
        panic!("read-through")
    };
    assert_eq!(rt.base_url.as_str(), "http://127.0.0.1:9090/sites");
    assert_eq!(rt.http.request_timeout.as_millis(), 1000);
    assert_eq!(
        (rt.http.retries, rt.http.retry_backoff.as_millis()),
        (1, 50)
    );
    assert_eq!(site.max_in_flight, 16);
    assert_eq!(rt.cache.found.ttl.as_secs(), 300);
    assert_eq!(rt.cache.found.capacity_bytes, 256 << 20);
    assert!(rt.cache.not_found.enabled && rt.cache.error.enabled);
    assert!(rt.cache.stale_while_revalidate.is_zero() && rt.cache.stale_if_error.is_zero());
    assert_eq!(config.max_batch_keys, 100);
}

/// `[defaults]` applies to every record type that does not override it.
#[test]
fn defaults_apply_unless_overridden() {
    let text = format!(
        "[defaults]\nlimits = {{ deadline_ms = 900, memory_mib = 32 }}\nhttp = {{ request_timeout_ms = 300 }}\nmax_in_flight = 4\ncache = {{ found = {{ ttl_ms = 1000 }}, stale_if_error_ms = 60000 }}\n{GOOD_SITE}limits = {{ memory_mib = 8 }}\ncache = {{ found = {{ capacity_bytes = 4096 }} }}\n"
    );
    let config = Config::parse(Path::new("droid.toml"), &text).expect("valid");
    let site = config.record_type("site").expect("declared");
    assert_eq!(
        (site.limits.deadline.as_millis(), site.limits.memory_bytes),
        (900, 8 << 20)
    );
    let droid_host::config::Mode::ReadThrough(rt) = &site.mode else {
        panic!("read-through")
    };
    assert_eq!(rt.http.request_timeout.as_millis(), 300);
    assert_eq!(site.max_in_flight, 4);
    assert_eq!(
        (
            rt.cache.found.ttl.as_millis(),
            rt.cache.found.capacity_bytes
        ),
        (1000, 4096)
    );
    assert_eq!(rt.cache.stale_if_error.as_secs(), 60);
}

#[test]
fn a_missing_file_is_named() {
    let e = Config::load(Path::new("/nonexistent/droid.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/nonexistent/droid.toml: cannot read the configuration file: "),
        "{e}"
    );
}

/// The configuration shown in the README is valid, so the documentation cannot
/// drift from the schema unnoticed.
#[test]
fn the_readme_example_config_is_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let full = readme
        .find("```toml\n[server]")
        .expect("the README shows a whole config");
    let start = full + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let config = Config::parse(Path::new("README.md"), &readme[start..end])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.record_types.len(), 2);
}

/// So is the sidecar's file shown there.
#[test]
fn the_readme_example_sidecar_config_is_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find("# sidecar.toml\n")
        .expect("the README shows a sidecar config");
    let end = start + readme[start..].find("```").unwrap();
    let config = droid_host::sidecar::config::SidecarConfig::parse(
        Path::new("sidecar.toml"),
        &readme[start..end],
        &Default::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.connections.reserve_connections, 32);
}

/// So is the quickstart's.
#[test]
fn the_quickstart_config_is_valid() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/quickstart/droid.toml"
    ));
    Config::load(path).unwrap_or_else(|e| panic!("{e}"));
}
