//! Real servers the tests and benchmarks start for themselves (PostgreSQL,
//! NATS with JetStream): each in a
//! temporary folder of its own, on a free loopback port, stopped by its PID
//! when the guard is dropped. Nothing is shared with the machine's own
//! services.

mod nats_server;
mod postgres_server;
mod process;

pub use nats_server::NatsServer;
pub use postgres_server::PostgresServer;
pub use process::free_port;
