//! Real servers the tests and benchmarks start for themselves (PostgreSQL,
//! NATS with JetStream, an S3-compatible object store): each in a
//! temporary folder of its own, on a free loopback port, stopped by its PID
//! when the guard is dropped. Nothing is shared with the machine's own
//! services.

mod nats_server;
mod postgres_server;
mod process;
mod s3_server;

pub use nats_server::NatsServer;
pub use postgres_server::PostgresServer;
pub use process::free_port;
pub use s3_server::S3Server;
