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
/// The folder all of them are in.
pub const DIR: &str = env!("DROID_PLUGIN_DIR");
