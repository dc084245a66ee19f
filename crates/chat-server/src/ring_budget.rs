//! The bounds of the fan-out rings: events and bytes per room, and bytes for all rooms
//! together (`--fanout-memory-mb`), so neither one busy room nor many rooms can make the
//! rings hold more than that.
//!
//! Each room may always keep a small floor of its own; only what it holds above the floor
//! draws on a pool shared by every room. When the pool is used up, the room that publishes
//! gives up its own oldest entries, at most down to its floor: one room's traffic never
//! empties another's ring, no lock spans two rooms, and `rooms x floor + pool` is a hard
//! bound on what all rings hold.
use std::sync::atomic::{AtomicUsize, Ordering};

use chat_proto::names::MAX_CHARS as MAX_NAME_CHARS;

use crate::{direct::MAX_KEY_BYTES, validate::MAX_TEXT_BYTES};

/// What an entry costs beside its encoded bytes: the `Arc<Entry>` allocation (counts and
/// the entry itself), its slot in the ring and the shared header of its buffer. An upper
/// bound, checked by a test against the real sizes.
pub const ENTRY_OVERHEAD: usize = 160;

/// The largest entry a chat message makes: the text twice (the protocol's display form
/// `[name]: text` and the text itself), the name twice, the room (a conversation's key is
/// the longest), ids, tags and lengths.
pub const MAX_ENTRY_BYTES: usize =
    2 * MAX_TEXT_BYTES + 3 * 4 * MAX_NAME_CHARS + MAX_KEY_BYTES + 64 + ENTRY_OVERHEAD;

pub struct RingBudget {
    /// Events one ring keeps (`--subscriber-queue`).
    events: usize,
    /// Bytes one ring may hold.
    room_bytes: usize,
    /// Bytes every ring may keep whatever the others hold.
    floor: usize,
    /// Bytes all rings may hold above their floors, together.
    pool: usize,
    /// Bytes all rings hold above their floors now.
    pool_used: AtomicUsize,
}

impl RingBudget {
    /// `total` bytes for all rings of at most `max_rooms` rooms: half of it is the rooms'
    /// floors (never below one largest entry), half the shared pool; one room may hold an
    /// eighth of the total.
    pub fn new(events: usize, total: usize, max_rooms: usize) -> Self {
        let floor = (total / (2 * max_rooms.max(1))).max(MAX_ENTRY_BYTES);
        RingBudget {
            events: events.max(1),
            room_bytes: (total / 8).max(floor),
            floor,
            pool: total / 2,
            pool_used: AtomicUsize::new(0),
        }
    }

    pub fn events(&self) -> usize {
        self.events
    }

    /// The most all rings of `rooms` rooms can hold together, in bytes.
    pub fn bound(&self, rooms: usize) -> usize {
        rooms * self.floor + self.pool
    }

    /// Whether a ring holding `bytes` must give up its oldest entry. Called under the
    /// ring's lock after each append (see `Fanout::publish`).
    pub fn over(&self, events: usize, bytes: usize) -> bool {
        events > self.events
            || bytes > self.room_bytes
            || (bytes > self.floor && self.pool_used.load(Ordering::Relaxed) > self.pool)
    }

    /// Accounts for a ring that went from `before` to `after` bytes.
    pub fn resized(&self, before: usize, after: usize) {
        let (was, is) = (self.above_floor(before), self.above_floor(after));
        if is > was {
            self.pool_used.fetch_add(is - was, Ordering::Relaxed);
        } else {
            self.pool_used.fetch_sub(was - is, Ordering::Relaxed);
        }
    }

    fn above_floor(&self, bytes: usize) -> usize {
        bytes.saturating_sub(self.floor)
    }

    /// Bytes every ring holds above its floor, together.
    pub fn pool_used(&self) -> usize {
        self.pool_used.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_split_the_total_into_floors_and_a_pool() {
        let mib = 1 << 20;
        let budget = RingBudget::new(4096, 256 * mib, 1000);
        assert!(budget.bound(1000) <= 256 * mib);
        assert!(budget.floor >= MAX_ENTRY_BYTES);
        assert_eq!(budget.room_bytes, 32 * mib);
    }

    #[test]
    fn a_ring_gives_up_entries_above_its_floor_once_the_pool_is_used_up() {
        let budget = RingBudget::new(1000, 64 * MAX_ENTRY_BYTES, 10);
        let floor = budget.floor;
        assert!(!budget.over(10, floor + 1), "pool not used yet");
        budget.resized(0, floor + budget.pool + 1);
        assert!(budget.over(10, floor + 1), "pool used up");
        assert!(!budget.over(10, floor), "the floor is always kept");
        budget.resized(floor + budget.pool + 1, floor);
        assert_eq!(budget.pool_used(), 0);
        assert!(budget.over(1001, 0), "the event bound holds too");
    }
}
