//! A room's fan-out queue: one bounded ring of encoded events shared by every subscriber,
//! each of which reads it through its own cursor (`Reader`).
//!
//! Why a ring and cursors rather than a channel per subscriber: an event is encoded once
//! and stored once, whatever the number of subscribers; publishing costs one short lock
//! plus a wake-up for each subscriber that was idle (busy ones find the new events on
//! their next poll), and a subscriber that falls behind costs no memory at all. Its queue
//! is "the ring past its cursor", bounded by the ring's capacity: when the ring wraps past
//! a cursor that subscriber is cut off and resumes from its last id.
//!
//! A subscriber that stopped reading is not polled, so it cannot notice by itself that it
//! was cut off; `cut_off_stalled` runs periodically, finds cursors that stayed behind the
//! ring across two sweeps, and closes their connections (see `connection`).
//!
//! A reader takes everything pending in one lock and hands it out from a local buffer, so
//! a subscriber that fell behind catches up in one batch, which tonic then writes as one
//! chunk: coalescing falls out of it.
use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicU8, Ordering},
        Arc, Mutex, Weak,
    },
    task::{Context, Poll, Waker},
};

use chat_proto::{ChatEvent, Encoded, MessageResponse};
use futures::Stream;

use crate::connection::Connection;

/// One event as every subscriber receives it.
pub struct Entry {
    /// The message id for chat messages, 0 for ephemeral events (presence, typing).
    pub id: u64,
    pub event: Encoded<ChatEvent>,
    /// The bare `MessageResponse` view of a chat message, for Broadcast streams.
    pub response: Option<Encoded<MessageResponse>>,
}

pub struct Fanout {
    ring: Mutex<Ring>,
    capacity: usize,
}

struct Ring {
    /// Sequence number of `entries[0]`; sequence numbers never repeat.
    base: u64,
    entries: VecDeque<Arc<Entry>>,
    /// Readers parked until the next publish, each at most once (see `Reader::refill`).
    waiters: Vec<Waker>,
    /// Bumped whenever `waiters` is emptied, so a reader knows its slot there is gone.
    waiters_generation: u64,
    /// Every live reader's position, for `cut_off_stalled`.
    cursors: Vec<Weak<Cursor>>,
    closed: bool,
}

/// A reader's position as the sweeper sees it.
struct Cursor {
    next: AtomicU64,
    /// Consecutive sweeps that found this cursor behind the ring.
    strikes: AtomicU8,
    connection: Option<Connection>,
}

impl Ring {
    fn head(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    fn take_waiters(&mut self) -> Vec<Waker> {
        self.waiters_generation += 1;
        std::mem::take(&mut self.waiters)
    }
}

/// Why a reader stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The ring wrapped past this reader's cursor: it was more than `capacity` behind.
    Lagged,
}

impl Fanout {
    pub fn new(capacity: usize) -> Arc<Self> {
        let capacity = capacity.max(1);
        Arc::new(Fanout {
            ring: Mutex::new(Ring {
                base: 0,
                entries: VecDeque::with_capacity(capacity.min(1024)),
                waiters: Vec::new(),
                waiters_generation: 0,
                cursors: Vec::new(),
                closed: false,
            }),
            capacity,
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends events in order and wakes the idle readers once for all of them.
    pub fn publish(&self, events: impl IntoIterator<Item = Entry>) {
        let waiters = {
            let mut ring = self.ring.lock().unwrap();
            for entry in events {
                if ring.entries.len() == self.capacity {
                    ring.entries.pop_front();
                    ring.base += 1;
                }
                ring.entries.push_back(Arc::new(entry));
            }
            ring.take_waiters()
        };
        // Woken outside the lock, so a woken reader never contends with us for it.
        for waker in waiters {
            waker.wake();
        }
    }

    /// Ends every reader once it has drained what is queued (the room went away).
    pub fn close(&self) {
        let waiters = {
            let mut ring = self.ring.lock().unwrap();
            ring.closed = true;
            ring.take_waiters()
        };
        waiters.into_iter().for_each(Waker::wake);
    }

    /// A reader that sees only what is published from now on.
    pub fn reader(self: &Arc<Self>, connection: Option<Connection>) -> Reader {
        let mut ring = self.ring.lock().unwrap();
        let head = ring.head();
        self.reader_at(&mut ring, head, connection)
    }

    /// A reader starting at the oldest queued chat message with id > `after_id` (or at the
    /// head when there is none), plus the id of that message: everything before it has
    /// left the ring, and a resuming client gets it from the store instead.
    pub fn reader_after(
        self: &Arc<Self>,
        after_id: u64,
        connection: Option<Connection>,
    ) -> (Reader, Option<u64>) {
        let mut ring = self.ring.lock().unwrap();
        let found = ring
            .entries
            .iter()
            .enumerate()
            .find(|(_, e)| e.id > after_id);
        let (start, first_id) = match found {
            Some((i, e)) => (ring.base + i as u64, Some(e.id)),
            None => (ring.head(), None),
        };
        let mut reader = self.reader_at(&mut ring, start, connection);
        reader.live_from = ring.head();
        (reader, first_id)
    }

    fn reader_at(
        self: &Arc<Self>,
        ring: &mut Ring,
        next: u64,
        connection: Option<Connection>,
    ) -> Reader {
        let cursor = Arc::new(Cursor {
            next: AtomicU64::new(next),
            strikes: AtomicU8::new(0),
            connection,
        });
        ring.cursors.push(Arc::downgrade(&cursor));
        Reader {
            fanout: self.clone(),
            next,
            live_from: next,
            local: VecDeque::new(),
            parked: None,
            cursor,
        }
    }

    /// Closes the connection of every reader that was behind the ring at this sweep and
    /// the previous one: it was cut off and has not been polled since, so it will never
    /// hear why. Called every stall timeout; returns how many were closed.
    pub fn cut_off_stalled(&self) -> usize {
        let stalled: Vec<Arc<Cursor>> = {
            let mut ring = self.ring.lock().unwrap();
            ring.cursors.retain(|c| c.strong_count() > 0);
            let base = ring.base;
            ring.cursors
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|c| {
                    if c.next.load(Ordering::Relaxed) >= base {
                        c.strikes.store(0, Ordering::Relaxed);
                        return false;
                    }
                    c.strikes.fetch_add(1, Ordering::Relaxed) >= 1
                })
                .collect()
        };
        let mut closed = 0;
        for cursor in stalled {
            if let Some(connection) = &cursor.connection {
                if !connection.is_killed() {
                    connection.kill();
                    closed += 1;
                }
            }
        }
        closed
    }
}

/// One subscriber's cursor into the ring. A `Stream` of entries; cancel-safe.
pub struct Reader {
    fanout: Arc<Fanout>,
    /// Sequence number of the next entry to take from the ring.
    next: u64,
    /// Entries before this sequence number were published before the reader existed;
    /// only chat messages among them are replayed (old presence or typing would be stale).
    live_from: u64,
    /// Taken from the ring, not yet handed out.
    local: VecDeque<(u64, Arc<Entry>)>,
    /// Where this reader's waker sits in `waiters` (generation, index), if parked.
    parked: Option<(u64, usize)>,
    cursor: Arc<Cursor>,
}

/// Most entries a reader copies out per lock, so a reader far behind does not hold the
/// ring lock long (it comes back for more straight away).
const BATCH: usize = 256;

impl Reader {
    fn refill(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<(), ReadError>>> {
        let mut ring = self.fanout.ring.lock().unwrap();
        if self.next < ring.base {
            return Poll::Ready(Some(Err(ReadError::Lagged)));
        }
        let head = ring.head();
        if self.next == head {
            if ring.closed {
                return Poll::Ready(None);
            }
            // Register once until the next wake-up: a reader polled again without
            // anything new (a heartbeat tick, say) must not pile up copies of its waker,
            // but must swap in the new one if the polling task changed.
            match self.parked {
                Some((generation, index)) if generation == ring.waiters_generation => {
                    if !ring.waiters[index].will_wake(cx.waker()) {
                        ring.waiters[index] = cx.waker().clone();
                    }
                }
                _ => {
                    ring.waiters.push(cx.waker().clone());
                    self.parked = Some((ring.waiters_generation, ring.waiters.len() - 1));
                }
            }
            return Poll::Pending;
        }
        let from = (self.next - ring.base) as usize;
        let until = (from + BATCH).min(ring.entries.len());
        for (offset, entry) in ring.entries.range(from..until).enumerate() {
            self.local
                .push_back((self.next + offset as u64, entry.clone()));
        }
        self.next += (until - from) as u64;
        self.cursor.next.store(self.next, Ordering::Relaxed);
        Poll::Ready(Some(Ok(())))
    }
}

impl Stream for Reader {
    type Item = Result<Arc<Entry>, ReadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            while let Some((seq, entry)) = this.local.pop_front() {
                if seq >= this.live_from || entry.id != 0 {
                    return Poll::Ready(Some(Ok(entry)));
                }
            }
            match this.refill(cx) {
                Poll::Ready(Some(Ok(()))) => continue,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::{chat_event::Event, encode_message, Heartbeat};
    use futures::{FutureExt, StreamExt};

    fn message(id: u64) -> Entry {
        let (event, response) = encode_message(&MessageResponse {
            id,
            ..Default::default()
        });
        Entry {
            id,
            event,
            response: Some(response),
        }
    }

    fn ephemeral() -> Entry {
        Entry {
            id: 0,
            event: Encoded::event(Event::Heartbeat(Heartbeat {})),
            response: None,
        }
    }

    fn ready_ids(reader: &mut Reader) -> Vec<u64> {
        let mut ids = Vec::new();
        while let Some(Some(item)) = reader.next().now_or_never() {
            ids.push(item.unwrap().id);
        }
        ids
    }

    #[test]
    fn readers_see_what_is_published_after_they_start() {
        let fanout = Fanout::new(8);
        fanout.publish([message(1)]);
        let mut reader = fanout.reader(None);
        fanout.publish([message(2), ephemeral(), message(3)]);
        assert_eq!(ready_ids(&mut reader), [2, 0, 3]);
    }

    #[test]
    fn resuming_replays_queued_messages_but_not_old_ephemeral_events() {
        let fanout = Fanout::new(8);
        fanout.publish([message(1), ephemeral(), message(2), message(3)]);
        let (mut reader, first) = fanout.reader_after(1, None);
        assert_eq!(first, Some(2));
        fanout.publish([ephemeral()]);
        assert_eq!(ready_ids(&mut reader), [2, 3, 0]);
        let (mut caught_up, first) = fanout.reader_after(3, None);
        assert_eq!(first, None);
        assert!(ready_ids(&mut caught_up).is_empty());
    }

    #[test]
    fn a_reader_past_its_bound_is_cut_off_and_others_are_not() {
        let fanout = Fanout::new(4);
        let mut slow = fanout.reader(None);
        let mut fast = fanout.reader(None);
        for id in 1..=10 {
            fanout.publish([message(id)]);
            assert_eq!(ready_ids(&mut fast), [id]);
        }
        assert!(matches!(
            slow.next().now_or_never(),
            Some(Some(Err(ReadError::Lagged)))
        ));
        // What is still queued is exactly the newest `capacity` messages.
        let (mut resumed, first) = fanout.reader_after(0, None);
        assert_eq!(first, Some(7));
        assert_eq!(ready_ids(&mut resumed), [7, 8, 9, 10]);
    }

    #[test]
    fn a_reader_left_behind_and_never_polled_has_its_connection_closed() {
        let fanout = Fanout::new(4);
        let (stalled, reading) = (Connection::default(), Connection::default());
        let _stalled = fanout.reader(Some(stalled.clone()));
        let mut active = fanout.reader(Some(reading.clone()));
        let mut publish_and_read = |ids: std::ops::RangeInclusive<u64>| {
            for id in ids {
                fanout.publish([message(id)]);
                assert_eq!(ready_ids(&mut active), [id]);
            }
        };
        publish_and_read(1..=3);
        assert_eq!(fanout.cut_off_stalled(), 0, "within its bound");
        publish_and_read(4..=8);
        assert_eq!(
            fanout.cut_off_stalled(),
            0,
            "behind once: it may still read"
        );
        assert_eq!(fanout.cut_off_stalled(), 1, "behind twice, never polled");
        assert!(stalled.is_killed());
        assert!(!reading.is_killed());
        assert_eq!(fanout.cut_off_stalled(), 0, "closed once");
    }

    #[tokio::test]
    async fn a_parked_reader_wakes_on_publish_and_registers_once() {
        let fanout = Fanout::new(4);
        let mut reader = fanout.reader(None);
        for _ in 0..3 {
            assert!(reader.next().now_or_never().is_none());
        }
        assert_eq!(fanout.ring.lock().unwrap().waiters.len(), 1);
        let publisher = {
            let fanout = fanout.clone();
            tokio::spawn(async move { fanout.publish([message(1)]) })
        };
        assert_eq!(reader.next().await.unwrap().unwrap().id, 1);
        publisher.await.unwrap();
        fanout.close();
        assert!(reader.next().await.is_none());
    }
}
