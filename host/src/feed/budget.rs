//! What all subscribers of the change feed may hold together, in bytes
//! (`server.feed_buffer_bytes`).
//!
//! A subscriber reserves the bytes of a page before it reads one, keeps what
//! the page weighs, and hands each chunk it sends its share of the
//! reservation, released when the chunk leaves for the socket. So memory held
//! for subscribers that read slowly, or not at all, stays under the budget
//! however many there are; when it is spent, a subscriber that needs more
//! waits (its stream pauses) and is dropped if that takes longer than
//! `server.feed_send_timeout_ms`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget's unit: a reservation is rounded up to whole kibibytes.
const UNIT: usize = 1024;

/// The bytes all subscribers may hold.
#[derive(Debug)]
pub struct Budget {
    units: Arc<Semaphore>,
    total: usize,
}

/// Bytes reserved from the budget, given back when dropped.
#[derive(Debug)]
pub struct Held(Option<OwnedSemaphorePermit>);

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

impl Budget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        let total = units(bytes).max(1);
        Self {
            units: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// Reserves `bytes` (at most the whole budget), waiting up to `wait`;
    /// `None` when the budget stayed spent that long.
    pub async fn reserve(&self, bytes: usize, wait: Duration) -> Option<Held> {
        let wanted = units(bytes).clamp(1, self.total) as u32;
        if let Ok(permit) = self.units.clone().try_acquire_many_owned(wanted) {
            return Some(Held(Some(permit)));
        }
        metrics::counter!(crate::metrics::FEED_BUFFER_FULL).increment(1);
        match tokio::time::timeout(wait, self.units.clone().acquire_many_owned(wanted)).await {
            Ok(Ok(permit)) => Some(Held(Some(permit))),
            _ => None,
        }
    }

    /// The bytes reserved now, over every subscriber.
    pub fn held_bytes(&self) -> usize {
        (self.total - self.units.available_permits()) * UNIT
    }
}

impl Held {
    /// Nothing reserved.
    pub fn none() -> Held {
        Held(None)
    }

    /// Gives back what is reserved beyond `bytes`.
    pub fn keep(&mut self, bytes: usize) {
        if let Some(permit) = &mut self.0 {
            let surplus = permit.num_permits().saturating_sub(units(bytes).max(1));
            drop(permit.split(surplus));
        }
    }

    /// Splits off the reservation of `bytes` (or all that is left) for a
    /// chunk that leaves on its own.
    pub fn take(&mut self, bytes: usize) -> Held {
        let Some(permit) = &mut self.0 else {
            return Held(None);
        };
        let n = units(bytes).min(permit.num_permits());
        if n == permit.num_permits() {
            return Held(self.0.take());
        }
        Held(permit.split(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_are_bounded_and_given_back_in_parts() {
        let budget = Budget::new(10 * UNIT);
        let mut page = budget.reserve(8 * UNIT, Duration::ZERO).await.unwrap();
        assert!(
            budget
                .reserve(4 * UNIT, Duration::from_millis(10))
                .await
                .is_none()
        );
        page.keep(3 * UNIT);
        assert_eq!(budget.held_bytes(), 3 * UNIT);
        let chunk = page.take(2 * UNIT);
        let rest = page.take(100 * UNIT);
        drop(page);
        assert_eq!(budget.held_bytes(), 3 * UNIT, "the chunks still hold it");
        drop((chunk, rest));
        assert_eq!(budget.held_bytes(), 0);
        // More than the whole budget asks for the whole budget.
        assert!(budget.reserve(1 << 30, Duration::ZERO).await.is_some());
    }
}
