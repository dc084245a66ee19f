//! A room's fan-out queue: one bounded ring of encoded events shared by every subscriber,
//! each of which reads it through its own cursor (`Reader`).
//!
//! Why a ring and cursors rather than a channel per subscriber: an event is encoded once
//! and stored once, whatever the number of subscribers; publishing costs one short lock
//! plus a wake-up for each subscriber that was idle (busy ones find the new events on
//! their next poll), and a subscriber that falls behind costs no memory of its own. Its
//! queue is "the ring past its cursor", bounded by the ring's bounds in events and bytes
//! (`ring_budget`): when the ring drops entries a cursor has not read, that subscriber is
//! cut off and resumes from its last id. A ring with no reader keeps nothing.
//!
//! A subscriber that stopped reading is not polled, so it cannot notice by itself that it
//! was cut off; `cut_off_stalled` runs periodically, finds cursors that stayed behind the
//! ring across two sweeps, and ends their streams (see `client_stream`).
//!
//! A reader takes what is pending (up to a batch) in one lock and hands it out from a
//! local buffer, so a subscriber that fell behind catches up in few batches, which tonic
//! then writes as few chunks: coalescing falls out of it.
use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll, Waker},
};

use chat_proto::{ChatEvent, Encoded, MessageResponse};
use futures::Stream;
use slab::Slab;

use crate::{
    client_stream::{ClientStream, Cut},
    metrics_endpoint::DELIVERIES,
    ring_budget::{RingBudget, ENTRY_OVERHEAD},
};

/// One event as every subscriber receives it.
pub struct Entry {
    /// The message id for chat messages, 0 for ephemeral events (presence, typing).
    pub id: u64,
    pub event: Encoded<ChatEvent>,
    /// The bare `MessageResponse` view of a chat message, for Broadcast streams: a slice
    /// of `event`'s buffer (see `chat_proto::encode_message`), so it costs no bytes.
    pub response: Option<Encoded<MessageResponse>>,
}

impl Entry {
    /// What holding this entry in a ring costs, in bytes.
    pub fn size(&self) -> usize {
        self.event.bytes().len() + ENTRY_OVERHEAD
    }
}

pub struct Fanout {
    ring: Mutex<Ring>,
    budget: Arc<RingBudget>,
    /// `chat_deliveries_total`, taken once so a refill pays one atomic add.
    delivered: metrics::Counter,
}

struct Ring {
    /// Sequence number of `entries[0]`; sequence numbers never repeat.
    base: u64,
    entries: VecDeque<Arc<Entry>>,
    /// What `entries` cost (see `Entry::size`).
    bytes: usize,
    /// Readers parked until the next publish, each at most once (see `Reader::refill`).
    waiters: Slab<Waker>,
    /// Bumped whenever `waiters` is emptied, so a reader knows its slot there is gone.
    waiters_generation: u64,
    /// Every live reader's position, for `cut_off_stalled`; a reader removes its own when
    /// it drops, so readers that come and go leave nothing here.
    cursors: Slab<Arc<Cursor>>,
    closed: bool,
}

/// A reader's position as the sweeper sees it.
struct Cursor {
    next: AtomicU64,
    /// Consecutive sweeps that found this cursor behind the ring.
    strikes: AtomicU8,
    /// Set while the reader's stream waits for a store read (see `Reader::store_progress`).
    store_waiting: AtomicBool,
    /// Events the reader's stream sent from the store, and that count at the last sweep.
    store_sent: AtomicU64,
    store_sent_swept: AtomicU64,
    /// The reader's stream, cut if it stalls.
    client: Option<ClientStream>,
}

impl Cursor {
    /// True when the reader's stream is busy with a store catch-up: it waits for a read,
    /// or sent something from the store since the previous sweep. Its ring cursor is
    /// behind because it is reading elsewhere, not because it stopped.
    fn busy_with_store(&self) -> bool {
        let sent = self.store_sent.load(Ordering::Relaxed);
        let swept = self.store_sent_swept.swap(sent, Ordering::Relaxed);
        self.store_waiting.load(Ordering::Relaxed) || sent != swept
    }
}

impl Ring {
    fn head(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    fn take_waiters(&mut self) -> Slab<Waker> {
        self.waiters_generation += 1;
        std::mem::take(&mut self.waiters)
    }

    fn pop_front(&mut self, budget: &RingBudget) {
        if let Some(entry) = self.entries.pop_front() {
            self.base += 1;
            let before = self.bytes;
            self.bytes -= entry.size();
            budget.resized(before, self.bytes);
        }
    }

    /// Empties the ring and gives its memory back, when its last reader went.
    fn release(&mut self, budget: &RingBudget) {
        self.base = self.head();
        budget.resized(self.bytes, 0);
        self.bytes = 0;
        self.entries = VecDeque::new();
        self.waiters = Slab::new();
        self.cursors = Slab::new();
    }
}

/// Why a reader stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The ring dropped entries this reader had not read: it fell a whole ring behind.
    Lagged,
}

/// What a room's ring holds now, for tests and the memory bound (see `RoomHub::memory_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    pub entries: usize,
    pub bytes: usize,
    pub readers: usize,
    pub waiters: usize,
}

impl Fanout {
    pub fn new(budget: Arc<RingBudget>) -> Arc<Self> {
        Arc::new(Fanout {
            ring: Mutex::new(Ring {
                base: 0,
                entries: VecDeque::new(),
                bytes: 0,
                waiters: Slab::new(),
                waiters_generation: 0,
                cursors: Slab::new(),
                closed: false,
            }),
            budget,
            delivered: metrics::counter!(DELIVERIES),
        })
    }

    /// Events a reader may fall behind before it is cut off, at most.
    pub fn capacity(&self) -> usize {
        self.budget.events()
    }

    /// Appends events in order and wakes the idle readers once for all of them. With no
    /// reader nothing is kept: whoever subscribes later reads these from the store.
    pub fn publish<I>(&self, events: I)
    where
        I: IntoIterator<Item = Entry>,
        I::IntoIter: ExactSizeIterator,
    {
        let events = events.into_iter();
        let waiters = {
            let mut ring = self.ring.lock().unwrap();
            let ring = &mut *ring;
            if ring.cursors.is_empty() {
                // Counted, not iterated: nothing is encoded for nobody.
                ring.base += events.len() as u64;
                return;
            }
            for entry in events {
                let before = ring.bytes;
                ring.bytes += entry.size();
                self.budget.resized(before, ring.bytes);
                ring.entries.push_back(Arc::new(entry));
                // The newest entry always stays: nobody has read it yet.
                while ring.entries.len() > 1 && self.budget.over(ring.entries.len(), ring.bytes) {
                    ring.pop_front(&self.budget);
                }
            }
            ring.take_waiters()
        };
        // Woken outside the lock, so a woken reader never contends with us for it.
        for (_, waker) in waiters {
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
        waiters.into_iter().for_each(|(_, waker)| waker.wake());
    }

    /// A reader that sees only what is published from now on.
    pub fn reader(self: &Arc<Self>, client: Option<ClientStream>) -> Reader {
        let mut ring = self.ring.lock().unwrap();
        let head = ring.head();
        self.reader_at(&mut ring, head, client)
    }

    /// A reader starting at the oldest queued chat message with id > `after_id` (or at the
    /// head when there is none), plus the id of that message: everything before it has
    /// left the ring, and a resuming client gets it from the store instead.
    pub fn reader_after(
        self: &Arc<Self>,
        after_id: u64,
        client: Option<ClientStream>,
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
        let mut reader = self.reader_at(&mut ring, start, client);
        reader.live_from = ring.head();
        (reader, first_id)
    }

    fn reader_at(
        self: &Arc<Self>,
        ring: &mut Ring,
        next: u64,
        client: Option<ClientStream>,
    ) -> Reader {
        let cursor = Arc::new(Cursor {
            next: AtomicU64::new(next),
            strikes: AtomicU8::new(0),
            store_waiting: AtomicBool::new(false),
            store_sent: AtomicU64::new(0),
            store_sent_swept: AtomicU64::new(0),
            client,
        });
        let key = ring.cursors.insert(cursor.clone());
        Reader {
            fanout: self.clone(),
            next,
            live_from: next,
            local: VecDeque::new(),
            parked: None,
            cursor,
            key,
        }
    }

    /// Ends the stream of every reader that was behind the ring at this sweep and the
    /// previous one: it was cut off and has not been polled since, so it will never hear
    /// why. Its stream is reset, or its connection closed when nothing else lives on it
    /// (see `ClientStream::cut`). A reader busy with a store catch-up is not behind (see
    /// `Cursor`). Called every stall timeout; returns how many streams were ended.
    pub fn cut_off_stalled(&self) -> usize {
        let stalled: Vec<Arc<Cursor>> = {
            let ring = self.ring.lock().unwrap();
            let base = ring.base;
            ring.cursors
                .iter()
                .map(|(_, c)| c)
                .filter(|c| {
                    if c.next.load(Ordering::Relaxed) >= base || c.busy_with_store() {
                        c.strikes.store(0, Ordering::Relaxed);
                        return false;
                    }
                    c.strikes.fetch_add(1, Ordering::Relaxed) >= 1
                })
                .cloned()
                .collect()
        };
        stalled
            .iter()
            .filter_map(|cursor| cursor.client.as_ref())
            .filter(|client| client.cut() != Cut::Nothing)
            .count()
    }

    pub fn stats(&self) -> RingStats {
        let ring = self.ring.lock().unwrap();
        RingStats {
            entries: ring.entries.len(),
            bytes: ring.bytes,
            readers: ring.cursors.len(),
            waiters: ring.waiters.len(),
        }
    }
}

/// One subscriber's cursor into the ring. A `Stream` of entries; cancel-safe. Dropping it
/// takes its cursor and any parked waker out of the ring; the last one to go empties it.
pub struct Reader {
    fanout: Arc<Fanout>,
    /// Sequence number of the next entry to take from the ring.
    next: u64,
    /// Entries before this sequence number were published before the reader existed;
    /// only chat messages among them are replayed (old presence or typing would be stale).
    live_from: u64,
    /// Taken from the ring, not yet handed out.
    local: VecDeque<(u64, Arc<Entry>)>,
    /// Where this reader's waker sits in `waiters` (generation, key), if parked.
    parked: Option<(u64, usize)>,
    cursor: Arc<Cursor>,
    /// This reader's key in `cursors`.
    key: usize,
}

/// Most entries, and most bytes (past the first entry), a reader copies out per lock: a
/// reader far behind does not hold the ring lock long (it comes back for more straight
/// away), and a reader that stops being polled holds at most this much that the ring may
/// have dropped meanwhile.
const BATCH: usize = 256;
const BATCH_BYTES: usize = 64 * 1024;

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
                Some((generation, key)) if generation == ring.waiters_generation => {
                    let waker = &mut ring.waiters[key];
                    if !waker.will_wake(cx.waker()) {
                        *waker = cx.waker().clone();
                    }
                }
                _ => {
                    let key = ring.waiters.insert(cx.waker().clone());
                    self.parked = Some((ring.waiters_generation, key));
                }
            }
            return Poll::Pending;
        }
        let from = (self.next - ring.base) as usize;
        let (mut bytes, mut messages) = (0, 0);
        for entry in ring.entries.range(from..).take(BATCH) {
            if bytes >= BATCH_BYTES {
                break;
            }
            bytes += entry.size();
            messages += u64::from(entry.id != 0);
            self.local.push_back((self.next, entry.clone()));
            self.next += 1;
        }
        self.cursor.next.store(self.next, Ordering::Relaxed);
        if messages > 0 {
            self.fanout.delivered.increment(messages);
        }
        Poll::Ready(Some(Ok(())))
    }

    /// Tells the stall sweeper what this reader's stream does while it reads the store
    /// instead of the ring: `waiting` for a read, or (false) just sent an event from it.
    pub fn store_progress(&self, waiting: bool) {
        if !waiting {
            self.cursor.store_sent.fetch_add(1, Ordering::Relaxed);
        }
        self.cursor.store_waiting.store(waiting, Ordering::Relaxed);
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let mut ring = self.fanout.ring.lock().unwrap();
        if let Some((generation, key)) = self.parked {
            if generation == ring.waiters_generation {
                ring.waiters.remove(key);
            }
        }
        ring.cursors.remove(self.key);
        if ring.cursors.is_empty() {
            ring.release(&self.fanout.budget);
        }
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
    use crate::connection::Connection;
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

    fn messages(ids: std::ops::Range<u64>) -> Vec<Entry> {
        ids.map(message).collect()
    }

    fn ephemeral() -> Entry {
        Entry {
            id: 0,
            event: Encoded::event(Event::Heartbeat(Heartbeat {})),
            response: None,
        }
    }

    /// Bounds of `events` events and plenty of bytes.
    fn events(events: usize) -> Arc<RingBudget> {
        Arc::new(RingBudget::new(events, 1 << 30, 1))
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
        let fanout = Fanout::new(events(8));
        fanout.publish([message(1)]);
        let mut reader = fanout.reader(None);
        fanout.publish([message(2), ephemeral(), message(3)]);
        assert_eq!(ready_ids(&mut reader), [2, 0, 3]);
    }

    #[test]
    fn resuming_replays_queued_messages_but_not_old_ephemeral_events() {
        let fanout = Fanout::new(events(8));
        let _listening = fanout.reader(None);
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
        let fanout = Fanout::new(events(4));
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
        let fanout = Fanout::new(events(4));
        let (stalled, reading) = (Connection::default(), Connection::default());
        let _stalled = fanout.reader(Some(ClientStream::of(stalled.clone())));
        let mut active = fanout.reader(Some(ClientStream::of(reading.clone())));
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
        let fanout = Fanout::new(events(4));
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

    #[test]
    fn a_ring_is_bounded_in_bytes_too() {
        let size = message(1000).size();
        let budget = Arc::new(RingBudget::new(1000, 0, 1));
        let fanout = Fanout::new(budget);
        let _reader = fanout.reader(None);
        // The floor is one largest entry: as many small ones as fit in it stay.
        fanout.publish(messages(1..1001));
        let stats = fanout.stats();
        assert!(stats.bytes <= crate::ring_budget::MAX_ENTRY_BYTES);
        assert_eq!(stats.entries, crate::ring_budget::MAX_ENTRY_BYTES / size);
        let (_, first) = fanout.reader_after(0, None);
        assert_eq!(first, Some(1001 - stats.entries as u64), "the newest stay");
    }

    #[test]
    fn a_ring_without_readers_holds_nothing() {
        let budget = events(64);
        let fanout = Fanout::new(budget.clone());
        fanout.publish(messages(1..11));
        assert_eq!(fanout.stats(), RingStats::default());
        let mut reader = fanout.reader(None);
        let other = fanout.reader(None);
        fanout.publish(messages(11..21));
        assert_eq!(ready_ids(&mut reader), (11..21).collect::<Vec<_>>());
        drop(other);
        assert_eq!(fanout.stats().entries, 10, "one reader still here");
        drop(reader);
        assert_eq!(fanout.stats(), RingStats::default());
        let (_, first) = fanout.reader_after(0, None);
        assert_eq!(first, None, "a resumer reads it all from the store");
    }

    #[test]
    fn a_dropped_parked_reader_leaves_nothing_behind() {
        let fanout = Fanout::new(events(4));
        let _listening = fanout.reader(None);
        for _ in 0..1000 {
            let mut reader = fanout.reader(None);
            assert!(reader.next().now_or_never().is_none(), "parked");
        }
        let stats = fanout.stats();
        assert_eq!((stats.readers, stats.waiters), (1, 0));
    }

    #[test]
    fn a_reader_busy_reading_the_store_is_not_cut_off() {
        let fanout = Fanout::new(events(4));
        let connection = Connection::default();
        let catching_up = fanout.reader(Some(ClientStream::of(connection.clone())));
        let _listening = fanout.reader(None);
        fanout.publish(messages(1..9));
        for _ in 0..3 {
            catching_up.store_progress(false);
            assert_eq!(fanout.cut_off_stalled(), 0, "it sends from the store");
        }
        catching_up.store_progress(true);
        for _ in 0..3 {
            assert_eq!(fanout.cut_off_stalled(), 0, "it waits for a store read");
        }
        catching_up.store_progress(false);
        assert_eq!(fanout.cut_off_stalled(), 0);
        assert_eq!(fanout.cut_off_stalled(), 0, "behind once, no progress");
        assert_eq!(fanout.cut_off_stalled(), 1, "behind twice, no progress");
        assert!(connection.is_killed());
    }

    #[test]
    fn entry_overhead_covers_the_real_sizes() {
        use std::mem::size_of;
        // The Arc's counts and entry, its ring slot, and the buffer's shared header.
        let fixed = 2 * size_of::<usize>() + size_of::<Entry>() + size_of::<Arc<Entry>>() + 32;
        assert!(fixed <= ENTRY_OVERHEAD, "{fixed}");
    }
}
