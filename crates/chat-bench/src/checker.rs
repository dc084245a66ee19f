//! Checks one subscriber's stream: every message once, in the server's order.
//!
//! Order is judged by the server's id, which must strictly increase within a room. The
//! senders' own sequence numbers cannot judge order: a sender keeps many requests in
//! flight over one HTTP/2 connection and the server may accept them in any order. They
//! do tell duplicates apart from reordering, through a sliding window of seen sequence
//! numbers per sender (bounded memory, however long the run). Loss is what is left:
//! the messages the server accepted for the room minus the distinct ones that arrived.
use crate::stamp::Stamp;

/// Far more than any sender keeps in flight (`config::MAX_WINDOW`), so an accepted
/// message can only leave the window unseen if it is lost or wildly late.
const SEQ_WINDOW: u64 = 4096;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamCheck {
    last_id: u64,
    senders: Vec<SeqWindow>,
    /// Distinct messages received.
    pub received: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Messages whose text carries no stamp (someone else posting in the bench rooms).
    pub foreign: u64,
}

impl StreamCheck {
    /// Records one delivered message; returns its stamp when it is a first delivery, so
    /// the caller can take its latency.
    pub fn record(&mut self, id: u64, text: &[u8]) -> Option<Stamp> {
        let Some(stamp) = Stamp::parse(text) else {
            self.foreign += 1;
            return None;
        };
        let sender = stamp.sender as usize;
        if self.senders.len() <= sender {
            self.senders.resize_with(sender + 1, SeqWindow::default);
        }
        if !self.senders[sender].insert(stamp.seq) {
            self.duplicated += 1;
            return None;
        }
        self.received += 1;
        if id <= self.last_id {
            self.out_of_order += 1;
        } else {
            self.last_id = id;
        }
        Some(stamp)
    }
}

/// Which sequence numbers of one sender have arrived: everything below `base` counts as
/// seen, `bits` holds the next `SEQ_WINDOW`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct SeqWindow {
    base: u64,
    bits: Vec<u64>,
}

impl SeqWindow {
    /// False when `seq` was seen before.
    fn insert(&mut self, seq: u64) -> bool {
        if seq < self.base {
            return false;
        }
        if self.bits.is_empty() {
            self.bits = vec![0; (SEQ_WINDOW / 64) as usize];
        }
        if seq >= self.base + SEQ_WINDOW {
            let new_base = seq + 1 - SEQ_WINDOW;
            if new_base - self.base >= SEQ_WINDOW {
                self.bits.fill(0);
            } else {
                for old in self.base..new_base {
                    self.set(old, false);
                }
            }
            self.base = new_base;
        }
        if self.get(seq) {
            return false;
        }
        self.set(seq, true);
        true
    }

    fn get(&self, seq: u64) -> bool {
        let bit = seq % SEQ_WINDOW;
        self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }

    fn set(&mut self, seq: u64, on: bool) {
        let bit = seq % SEQ_WINDOW;
        let word = &mut self.bits[(bit / 64) as usize];
        if on {
            *word |= 1 << (bit % 64);
        } else {
            *word &= !(1 << (bit % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(sender: u32, seq: u64) -> String {
        Stamp {
            sender,
            seq,
            sent_ns: 1,
        }
        .text(0)
    }

    /// Feeds (id, sender, seq) triples.
    fn check(events: &[(u64, u32, u64)]) -> StreamCheck {
        let mut check = StreamCheck::default();
        for &(id, sender, seq) in events {
            check.record(id, text(sender, seq).as_bytes());
        }
        check
    }

    fn counts(c: &StreamCheck) -> (u64, u64, u64) {
        (c.received, c.duplicated, c.out_of_order)
    }

    #[test]
    fn a_clean_stream_counts_everything_once() {
        let c = check(&[(1, 0, 0), (2, 1, 0), (3, 0, 1), (4, 1, 1)]);
        assert_eq!(counts(&c), (4, 0, 0));
    }

    #[test]
    fn senders_pipelining_is_not_reordering() {
        // Sender 0's seq 1 was accepted before its seq 0: ids still increase.
        let c = check(&[(1, 0, 1), (2, 0, 0)]);
        assert_eq!(counts(&c), (2, 0, 0));
    }

    #[test]
    fn a_gap_shows_as_fewer_received() {
        let c = check(&[(1, 0, 0), (3, 0, 2)]);
        assert_eq!(counts(&c), (2, 0, 0));
    }

    #[test]
    fn a_duplicate_is_counted_and_not_received_twice() {
        let c = check(&[(1, 0, 0), (2, 0, 1), (2, 0, 1), (1, 0, 0)]);
        assert_eq!(counts(&c), (2, 2, 0));
    }

    #[test]
    fn a_reordering_is_counted() {
        let c = check(&[(1, 0, 0), (3, 0, 2), (2, 0, 1), (4, 0, 3)]);
        assert_eq!(counts(&c), (4, 0, 1));
    }

    #[test]
    fn duplicates_are_caught_long_after_the_window_moved() {
        let n = 3 * SEQ_WINDOW;
        let mut events: Vec<_> = (0..n).map(|seq| (seq + 1, 0, seq)).collect();
        events.push((n + 1, 0, 5));
        events.push((n + 2, 0, n - 5));
        let c = check(&events);
        assert_eq!(counts(&c), (n, 2, 0));
    }

    #[test]
    fn unstamped_text_is_foreign() {
        let mut c = StreamCheck::default();
        assert_eq!(c.record(1, b"hello"), None);
        assert_eq!((c.received, c.foreign), (0, 1));
    }
}
