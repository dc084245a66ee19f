//! One room's committed messages put back in id order, for servers that share a database.
//!
//! Messages reach a server from its own commits and from the bus, in any order, some twice
//! (its own echoes), some never (a publish lost while NATS restarted, a server killed
//! between commit and publish). The ring must get each id once, in order. So this holds
//! what came early, and when the room stays behind what is known to be committed for a
//! grace period without progress, it asks for a store read; a read is a snapshot of
//! committed ids in order (the database assigns them in commit order), so whatever it
//! returns is delivered even across ids that never committed.
//!
//! A room this server learns of while others already use it (created elsewhere, first
//! opened here) starts unanchored: its history is the store's business, and the ring
//! starts at the first message it sees, whatever its id.
use std::{borrow::Cow, collections::BTreeMap, time::Duration};

use tokio::time::Instant;

use crate::store::Committed;

/// Most messages held ahead of a gap; past it newer ones are dropped here and come back
/// with the store read the gap leads to.
pub const MAX_PENDING: usize = 10_000;

#[derive(Debug)]
pub struct RoomOrder {
    /// The last id handed to the ring.
    delivered: u64,
    /// Arrived past a gap, waiting for it.
    pending: BTreeMap<u64, Committed>,
    /// The newest id known to be committed (received, or reported by another server).
    known: u64,
    /// While behind `known`: when the room last made progress (or fell behind).
    stalled_since: Option<Instant>,
    /// A store read for this room is under way.
    filling: bool,
    /// False until the first message or report fixes where this room's ring starts.
    anchored: bool,
}

impl RoomOrder {
    pub fn new(last_id: u64) -> Self {
        RoomOrder {
            delivered: last_id,
            pending: BTreeMap::new(),
            known: last_id,
            stalled_since: None,
            filling: false,
            anchored: true,
        }
    }

    /// A room whose newest id is not known here yet (see the module doc).
    pub fn unanchored() -> Self {
        RoomOrder {
            anchored: false,
            ..RoomOrder::new(0)
        }
    }

    /// Whether where the ring starts is known (see `unanchored`).
    pub fn is_anchored(&self) -> bool {
        self.anchored
    }

    /// Starts an unanchored room's ring right after `last_id`.
    fn anchor(&mut self, last_id: u64) {
        if !self.anchored {
            self.anchored = true;
            self.delivered = last_id;
            self.known = self.known.max(last_id);
        }
    }

    /// The last id handed to the ring.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Takes messages of this room (ascending ids) from a commit or the bus; returns what
    /// may go to the ring now, in id order. Already delivered ids are dropped. In order and
    /// with nothing held, the batch passes through as it is.
    pub fn offer<'a>(&mut self, messages: &'a [Committed], now: Instant) -> Cow<'a, [Committed]> {
        if let Some(first) = messages.first() {
            self.anchor(first.id.saturating_sub(1));
        }
        let before = self.delivered;
        let fresh = messages.partition_point(|m| m.id <= self.delivered);
        let messages = &messages[fresh..];
        let Some(last) = messages.last() else {
            return Cow::Borrowed(&[]);
        };
        self.known = self.known.max(last.id);
        let consecutive = messages
            .iter()
            .enumerate()
            .all(|(i, m)| m.id == self.delivered + 1 + i as u64);
        if self.pending.is_empty() && consecutive {
            self.delivered = last.id;
            self.progressed_from(before, now);
            return Cow::Borrowed(messages);
        }
        for message in messages {
            if self.pending.len() >= MAX_PENDING {
                break;
            }
            self.pending.insert(message.id, message.clone());
        }
        let mut ready = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.delivered + 1 {
                break;
            }
            ready.push(entry.remove());
            self.delivered += 1;
        }
        self.progressed_from(before, now);
        Cow::Owned(ready)
    }

    /// Another server reports `last_id` as the room's newest committed id: a tail this
    /// server may have missed (the last message of a quiet room).
    pub fn heard_of(&mut self, last_id: u64, now: Instant) {
        self.anchor(last_id);
        if last_id > self.known {
            self.known = last_id;
            self.progressed_from(self.delivered, now);
        }
    }

    /// Whether to read the store now: it returns the id to read after when the room has
    /// been behind for `grace` without progress and no read is under way, and counts the
    /// read as under way.
    pub fn fill_due(&mut self, now: Instant, grace: Duration) -> Option<u64> {
        let since = self.stalled_since?;
        if self.filling || now.duration_since(since) < grace {
            return None;
        }
        self.filling = true;
        Some(self.delivered)
    }

    /// Starts a read now whatever the grace (the bus reconnected, a server died), unless
    /// one is under way or the room is unanchored (nothing of it was missed here).
    pub fn fill_now(&mut self) -> Option<u64> {
        if self.filling || !self.anchored {
            return None;
        }
        self.filling = true;
        Some(self.delivered)
    }

    /// A store read of messages after `after_id` came back (`None`: it failed). Its
    /// messages are every id committed after `after_id` up to its last one, so they are
    /// delivered as they are, gaps and all, followed by whatever was held past them.
    pub fn filled(&mut self, read: Option<&[Committed]>, now: Instant) -> Vec<Committed> {
        self.filling = false;
        let read = read.unwrap_or_default();
        if let Some(first) = read.first() {
            self.anchor(first.id.saturating_sub(1));
        }
        let mut ready: Vec<Committed> = read
            .iter()
            .filter(|m| m.id > self.delivered)
            .cloned()
            .collect();
        if let Some(last) = ready.last() {
            self.delivered = last.id;
            self.known = self.known.max(last.id);
            self.pending = self.pending.split_off(&(self.delivered + 1));
        }
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.delivered + 1 {
                break;
            }
            ready.push(entry.remove());
            self.delivered += 1;
        }
        // Whatever is still missing waits a whole grace again, so a store that answers
        // with less than the bus promised is not read in a loop.
        self.stalled_since = (self.delivered < self.known).then_some(now);
        ready
    }

    /// After `delivered` moved on from `before` (or not): the stall clock restarts on
    /// progress, and stops once nothing is known past what was delivered.
    fn progressed_from(&mut self, before: u64, now: Instant) {
        if self.delivered >= self.known {
            self.stalled_since = None;
        } else if self.delivered > before || self.stalled_since.is_none() {
            self.stalled_since = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chat_proto::MessageResponse;

    use super::*;

    const GRACE: Duration = Duration::from_millis(300);

    fn msgs(ids: &[u64]) -> Vec<Committed> {
        ids.iter()
            .map(|&id| {
                Arc::new(MessageResponse {
                    id,
                    room: "general".into(),
                    ..Default::default()
                })
            })
            .collect()
    }

    fn ids(ready: &[Committed]) -> Vec<u64> {
        ready.iter().map(|m| m.id).collect()
    }

    #[test]
    fn in_order_batches_pass_through_without_copying() {
        let now = Instant::now();
        let mut order = RoomOrder::new(4);
        let batch = msgs(&[5, 6, 7]);
        let ready = order.offer(&batch, now);
        assert!(matches!(ready, Cow::Borrowed(_)));
        assert_eq!(ids(&ready), [5, 6, 7]);
        assert_eq!(order.delivered(), 7);
        assert_eq!(order.fill_due(now + GRACE * 10, GRACE), None);
    }

    #[test]
    fn duplicates_and_echoes_are_dropped() {
        let now = Instant::now();
        let mut order = RoomOrder::new(0);
        assert_eq!(ids(&order.offer(&msgs(&[1, 2]), now)), [1, 2]);
        assert!(order.offer(&msgs(&[1, 2]), now).is_empty());
        assert_eq!(ids(&order.offer(&msgs(&[2, 3]), now)), [3]);
    }

    #[test]
    fn early_messages_wait_for_the_gap_then_go_in_order() {
        let now = Instant::now();
        let mut order = RoomOrder::new(0);
        assert_eq!(ids(&order.offer(&msgs(&[1]), now)), [1]);
        assert!(order.offer(&msgs(&[3, 4]), now).is_empty());
        assert!(order.offer(&msgs(&[6]), now).is_empty());
        assert_eq!(ids(&order.offer(&msgs(&[2]), now)), [2, 3, 4]);
        assert_eq!(ids(&order.offer(&msgs(&[5]), now)), [5, 6]);
        assert_eq!(order.fill_due(now + GRACE, GRACE), None, "caught up");
    }

    #[test]
    fn a_gap_without_progress_for_the_grace_asks_for_a_store_read() {
        let t0 = Instant::now();
        let mut order = RoomOrder::new(0);
        assert!(order.offer(&msgs(&[2, 3]), t0).is_empty());
        assert_eq!(
            order.fill_due(t0 + GRACE / 2, GRACE),
            None,
            "may still come"
        );
        assert_eq!(order.fill_due(t0 + GRACE, GRACE), Some(0));
        assert_eq!(
            order.fill_due(t0 + GRACE * 2, GRACE),
            None,
            "one read at a time"
        );
        // The store has 1..=3; 4 arrived on the bus meanwhile.
        assert!(order.offer(&msgs(&[4]), t0).is_empty());
        let ready = order.filled(Some(&msgs(&[1, 2, 3])), t0 + GRACE);
        assert_eq!(ids(&ready), [1, 2, 3, 4]);
        assert_eq!(order.fill_due(t0 + GRACE * 10, GRACE), None);
    }

    #[test]
    fn progress_restarts_the_grace() {
        let t0 = Instant::now();
        let mut order = RoomOrder::new(0);
        assert!(order.offer(&msgs(&[2]), t0).is_empty());
        // 1 arrives just before the grace ends, 3 is missing behind 4.
        assert_eq!(ids(&order.offer(&msgs(&[1, 4]), t0 + GRACE / 2)), [1, 2]);
        assert_eq!(order.fill_due(t0 + GRACE, GRACE), None);
        assert_eq!(order.fill_due(t0 + GRACE / 2 + GRACE, GRACE), Some(2));
    }

    #[test]
    fn a_quiet_rooms_lost_tail_is_read_once_another_server_reports_it() {
        let t0 = Instant::now();
        let mut order = RoomOrder::new(7);
        order.heard_of(7, t0);
        assert_eq!(order.fill_due(t0 + GRACE, GRACE), None, "nothing missing");
        order.heard_of(9, t0);
        assert_eq!(order.fill_due(t0 + GRACE, GRACE), Some(7));
        let ready = order.filled(Some(&msgs(&[8, 9])), t0 + GRACE);
        assert_eq!(ids(&ready), [8, 9]);
    }

    #[test]
    fn a_store_read_is_the_truth_about_ids_that_never_committed() {
        let t0 = Instant::now();
        let mut order = RoomOrder::new(0);
        assert!(order.offer(&msgs(&[3, 5]), t0).is_empty());
        assert_eq!(order.fill_due(t0 + GRACE, GRACE), Some(0));
        // 2 and 4 were never committed (their transactions rolled back).
        let ready = order.filled(Some(&msgs(&[1, 3])), t0 + GRACE);
        assert_eq!(ids(&ready), [1, 3]);
        // 5 is held: the read did not reach it, so 4 may still come.
        assert_eq!(order.delivered(), 3);
        assert_eq!(ids(&order.offer(&msgs(&[4]), t0 + GRACE)), [4, 5]);
    }

    #[test]
    fn a_failed_read_is_retried_after_another_grace() {
        let t0 = Instant::now();
        let mut order = RoomOrder::new(0);
        order.heard_of(2, t0);
        assert_eq!(order.fill_due(t0 + GRACE, GRACE), Some(0));
        assert!(order.filled(None, t0 + GRACE).is_empty());
        assert_eq!(order.fill_due(t0 + GRACE, GRACE), None);
        assert_eq!(order.fill_due(t0 + GRACE * 2, GRACE), Some(0));
    }

    #[test]
    fn an_immediate_read_skips_the_grace_but_not_one_under_way() {
        let t0 = Instant::now();
        let mut order = RoomOrder::new(3);
        assert_eq!(order.fill_now(), Some(3));
        assert_eq!(order.fill_now(), None);
        assert!(order.filled(Some(&[]), t0).is_empty());
        assert_eq!(order.fill_now(), Some(3));
    }

    #[test]
    fn an_unanchored_room_starts_at_the_first_message_it_sees() {
        let t0 = Instant::now();
        let mut order = RoomOrder::unanchored();
        assert!(!order.is_anchored());
        assert_eq!(ids(&order.offer(&msgs(&[41, 42]), t0)), [41, 42]);
        assert!(order.is_anchored());
        assert_eq!(
            order.fill_due(t0 + GRACE * 10, GRACE),
            None,
            "40 and before are history"
        );

        let mut idle = RoomOrder::unanchored();
        assert_eq!(idle.fill_now(), None, "nothing to catch up on");

        let mut reported = RoomOrder::unanchored();
        reported.heard_of(40, t0);
        assert_eq!(
            (reported.delivered(), reported.fill_due(t0 + GRACE, GRACE)),
            (40, None)
        );

        let mut read = RoomOrder::unanchored();
        assert_eq!(ids(&read.filled(Some(&msgs(&[7, 8])), t0)), [7, 8]);
        assert!(
            read.offer(&msgs(&[10]), t0).is_empty(),
            "anchored now: 9 is missing"
        );
    }

    #[test]
    fn what_is_held_ahead_of_a_gap_is_bounded() {
        let t0 = Instant::now();
        let mut order = RoomOrder::new(0);
        let flood: Vec<u64> = (2..MAX_PENDING as u64 + 100).collect();
        assert!(order.offer(&msgs(&flood), t0).is_empty());
        assert_eq!(order.pending.len(), MAX_PENDING);
        // The store read brings back all of it.
        let all: Vec<u64> = (1..MAX_PENDING as u64 + 100).collect();
        let ready = order.filled(Some(&msgs(&all)), t0);
        assert_eq!(ready.len(), all.len());
        assert!(order.pending.is_empty());
    }
}
