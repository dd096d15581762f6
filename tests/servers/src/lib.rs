//! Real servers the tests and benchmarks start for themselves: each in a
//! temporary folder of its own, on a free loopback port, stopped by its PID
//! when the guard is dropped. Nothing is shared with the machine's own
//! services.

mod postgres_server;
mod process;

pub use postgres_server::PostgresServer;
pub use process::free_port;
