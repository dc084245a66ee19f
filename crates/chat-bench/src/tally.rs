//! Counters every task bumps while the run goes, read by the progress line and by the
//! drain wait. Subscribers add once per socket read, not once per message, so the shared
//! cache line is touched rarely even at millions of deliveries a second.
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Tally {
    /// Messages the server accepted.
    pub sent: AtomicU64,
    pub send_errors: AtomicU64,
    /// First deliveries, over all subscribers.
    pub delivered: AtomicU64,
    /// Subscribers that got their Welcome.
    pub connected: AtomicUsize,
    /// Subscribers whose stream has ended, for whatever reason.
    pub ended: AtomicUsize,
}

impl Tally {
    pub fn sent(&self) -> u64 {
        self.sent.load(Relaxed)
    }

    pub fn send_errors(&self) -> u64 {
        self.send_errors.load(Relaxed)
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Relaxed)
    }

    pub fn connected(&self) -> usize {
        self.connected.load(Relaxed)
    }

    pub fn ended(&self) -> usize {
        self.ended.load(Relaxed)
    }

    pub fn add_delivered(&self, n: u64) {
        if n > 0 {
            self.delivered.fetch_add(n, Relaxed);
        }
    }
}
