//! What every follower of the change log shares, apart from how it is
//! served: the newest changes, read and encoded once ([`tail`]), and the
//! memory all subscribers may hold ([`budget`]). `api::feed` streams them
//! over HTTP.

pub mod budget;
mod tail;

pub use budget::Budget;
pub use tail::{Encoded, Tail};

/// What every subscriber shares: the newest changes, and the memory budget.
#[derive(Debug)]
pub struct Shared {
    /// The newest changes, encoded once.
    pub tail: Tail,
    /// What all subscribers may hold.
    pub budget: Budget,
}

impl Shared {
    /// The tail and the budget `settings` size.
    pub fn new(settings: &crate::config::FeedSettings) -> Self {
        Self {
            tail: Tail::new(settings),
            budget: Budget::new(settings.buffer_bytes),
        }
    }

    /// Publishes what the feed holds, for `/metrics`.
    pub fn publish_gauges(&self) {
        metrics::gauge!(crate::metrics::FEED_BUFFERED_BYTES, "part" => "subscribers")
            .set(self.budget.held_bytes() as f64);
        metrics::gauge!(crate::metrics::FEED_BUFFERED_BYTES, "part" => "tail")
            .set(self.tail.bytes() as f64);
    }
}
