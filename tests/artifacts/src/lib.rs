//! Paths to every plugin component, freshly built from source by this crate's
//! build script. Tests and benchmarks take their `.wasm` files from here.

/// The generic read-through adapter (`plugins/http-json-adapter`).
pub const HTTP_JSON_ADAPTER: &str = env!("DROID_PLUGIN_HTTP_JSON_ADAPTER");
/// The ticket transformer (`plugins/ticket-transformer`).
pub const TICKET_TRANSFORMER: &str = env!("DROID_PLUGIN_TICKET_TRANSFORMER");
/// An adapter that loops forever on key `spin` (CPU) or `http` (host calls).
pub const LOOPING: &str = env!("DROID_PLUGIN_LOOPING");
/// An adapter that allocates without bound on key `bomb`.
pub const MEMORY_BOMB: &str = env!("DROID_PLUGIN_MEMORY_BOMB");
/// An adapter that panics on key `panic`.
pub const PANICKING: &str = env!("DROID_PLUGIN_PANICKING");
/// An adapter that requests whatever URL its config names for the key.
pub const EGRESS_PROBE: &str = env!("DROID_PLUGIN_EGRESS_PROBE");
/// A component exporting an unrelated world (`acme:widgets/greeter`).
pub const WRONG_WORLD: &str = env!("DROID_PLUGIN_WRONG_WORLD");
/// An adapter built against `droid:plugin@1.0.0`.
pub const WRONG_VERSION: &str = env!("DROID_PLUGIN_WRONG_VERSION");
/// A transformer that returns no changes, for measuring the runtime's own cost.
pub const NOOP_TRANSFORMER: &str = env!("DROID_PLUGIN_NOOP_TRANSFORMER");
/// An adapter whose initial memory exceeds every cap: refused at load.
pub const OVERSIZED_MEMORY: &str = env!("DROID_PLUGIN_OVERSIZED_MEMORY");
/// An adapter answering every key with `{"version":"1.0.0"}` (plugin version 1.0.0).
pub const VERSION_ECHO_V1: &str = env!("DROID_PLUGIN_VERSION_ECHO_V1");
/// The same adapter at version 2.0.0, answering `{"version":"2.0.0"}`.
pub const VERSION_ECHO_V2: &str = env!("DROID_PLUGIN_VERSION_ECHO_V2");
/// The same adapter at version 3.0.0, which traps on about half of its calls.
pub const VERSION_ECHO_FLAKY: &str = env!("DROID_PLUGIN_VERSION_ECHO_FLAKY");
/// The folder all of them are in.
pub const DIR: &str = env!("DROID_PLUGIN_DIR");
/// An adapter that misbehaves as its key says (huge, deep or foreign records,
/// request floods, log floods, long errors, CPU burns).
pub const HOSTILE_ADAPTER: &str = env!("DROID_PLUGIN_HOSTILE_ADAPTER");
/// The same adapter built to wait two seconds in a host call while it starts.
pub const HOSTILE_ADAPTER_SLEEPY: &str = env!("DROID_PLUGIN_HOSTILE_ADAPTER_SLEEPY");
/// A transformer that misbehaves as each event's kind says (spying across
/// events, op floods, huge, deep or frozen records, log floods, waits).
pub const HOSTILE_TRANSFORMER: &str = env!("DROID_PLUGIN_HOSTILE_TRANSFORMER");
