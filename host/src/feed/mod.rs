//! What every follower of the change log shares, apart from how it is
//! served: the newest changes of a realm, read and encoded once ([`tail`]),
//! and the memory all subscribers may hold ([`budget`]). `api::feed` streams them
//! over HTTP.

pub mod budget;
mod tail;

pub use budget::Budget;
pub use tail::{Encoded, Tail};

/// What every subscriber shares, whatever realm it follows: the memory
/// budget. (Each realm's newest changes are its own [`Tail`], in
/// `tenancy::Realm`.)
#[derive(Debug)]
pub struct Shared {
    /// What all subscribers may hold.
    pub budget: Budget,
}

impl Shared {
    /// The budget `settings` size.
    pub fn new(settings: &crate::config::FeedSettings) -> Self {
        Self {
            budget: Budget::new(settings.buffer_bytes),
        }
    }

    /// Publishes what the feed holds, for `/metrics`: the subscribers'
    /// buffers, and `tail_bytes`, what the realms' tails hold together.
    pub fn publish_gauges(&self, tail_bytes: usize) {
        metrics::gauge!(crate::metrics::FEED_BUFFERED_BYTES, "part" => "subscribers")
            .set(self.budget.held_bytes() as f64);
        metrics::gauge!(crate::metrics::FEED_BUFFERED_BYTES, "part" => "tail")
            .set(tail_bytes as f64);
    }
}
