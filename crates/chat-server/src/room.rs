//! One chat room: assigns message ids, hands messages to the store, fans out what the
//! store committed, and knows who is here.
//!
//! A message's path: `post` takes the room's id lock, assigns the next id and queues the
//! message for the store's writer while still holding it, so queue order is id order
//! (with PostgreSQL the writer assigns the ids, in that queue order, from the room's
//! counter row, so servers sharing the database agree on them).
//! Once committed, the writer calls `publish_committed`, which encodes each message once
//! and appends it to the room's fan-out ring: nothing reaches a subscriber, and nothing
//! is acknowledged, before it is on disk. The locks are per room and never held across
//! an await.
use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use tokio::time::Instant;

use chat_proto::{chat_event::Event, encode_message, Change, Encoded, MessageResponse, Presence};

use crate::{
    bus::order::RoomOrder,
    client_stream::ClientStream,
    fanout::{Entry, Fanout, Reader, RingStats},
    ring_budget::RingBudget,
    room_members::Members,
    sessions::Sender,
    store::{display_form, Committed, MessageStore, SentId, StoreError, StoredRoom},
    wall_clock::unix_ms,
};

pub struct Room {
    name: Arc<str>,
    /// The last id handed out (committed or still in the writer's queue) when this
    /// server assigns ids; the lock orders this room's posts either way.
    assigned: Mutex<u64>,
    /// The last id committed and published.
    published: AtomicU64,
    /// With servers sharing a database: this room's messages from every server, put back
    /// in id order before they reach the ring (see `bus::order`). Unused on one server,
    /// whose store commits in id order already.
    order: Mutex<RoomOrder>,
    fanout: Arc<Fanout>,
    /// Who is here, through this server and (sharing a database) the others.
    members: Mutex<Members>,
    /// When this server run created or loaded the room: an empty room's age counts from
    /// here (see `RoomHub::drop_unused_rooms`).
    created: Instant,
    /// The newest message's time, or the creation time (ms since the Unix epoch): what
    /// ListRooms orders by.
    last_active_ms: AtomicU64,
}

impl Room {
    pub fn new(name: &str, last_id: u64, rings: Arc<RingBudget>) -> Self {
        Room {
            name: name.into(),
            assigned: Mutex::new(last_id),
            published: AtomicU64::new(last_id),
            order: Mutex::new(RoomOrder::new(last_id)),
            fanout: Fanout::new(rings),
            members: Mutex::default(),
            created: Instant::now(),
            last_active_ms: AtomicU64::new(unix_ms().max(0) as u64),
        }
    }

    /// A room that servers sharing the database may have used already, its newest id not
    /// known here yet: its ring starts at the first message this server sees of it.
    pub fn unanchored(name: &str, rings: Arc<RingBudget>) -> Self {
        Room {
            order: Mutex::new(RoomOrder::unanchored()),
            ..Room::new(name, 0, rings)
        }
    }

    /// A room as the store kept it, its ids and activity continuing from there.
    pub fn restored(stored: &StoredRoom, rings: Arc<RingBudget>) -> Self {
        let room = Room::new(&stored.name, stored.last_id, rings);
        room.last_active_ms
            .store(stored.last_active_ms, Ordering::Relaxed);
        room
    }

    /// Whether a message was ever posted here (committed, or queued with an id this
    /// server assigned; a post still waiting for the database's id holds the room).
    pub fn has_messages(&self) -> bool {
        *self.assigned.lock().unwrap() > 0 || self.last_id() > 0
    }

    /// How long since this server run created or loaded the room.
    pub fn age(&self) -> std::time::Duration {
        self.created.elapsed()
    }

    /// See `last_active_ms`.
    pub fn last_active_ms(&self) -> u64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Assigns the next id (unless the store does, see `MessageStore::assigns_ids`) and
    /// queues the message for commit; the future resolves once it is committed and fanned
    /// out. A message the store refuses to queue (busy, closed) takes no id, so ids stay
    /// gapless. Name and text must already be validated, and `reply` checked (see
    /// `message_changes::reply`).
    /// `sent` is the sender's own id for it, stored with it (see `idempotency`).
    pub fn post(
        &self,
        store: &MessageStore,
        sender: Sender<'_>,
        text: &str,
        reply: Option<Reply>,
        sent: Option<SentId>,
    ) -> Result<impl Future<Output = Result<Committed, StoreError>> + Send + 'static, StoreError>
    {
        let (reply_to, quote) = reply.map_or((0, None), |r| (r.to, Some(r.quote)));
        let msg = MessageResponse {
            username: sender.name.into_owned(),
            text: text.to_owned(),
            guest: sender.guest,
            reply_to,
            quote,
            ..MessageResponse::default()
        };
        self.queue(store, msg, sent)
    }

    /// Queues a change event (`change` set: an edit, delete or reaction) like a message:
    /// it takes the next id, so it reaches subscribers, resumes and other servers in the
    /// room's order. The store applies it to its target in the same transaction.
    pub fn post_change(
        &self,
        store: &MessageStore,
        by: Sender<'_>,
        text: &str,
        change: Change,
    ) -> Result<impl Future<Output = Result<Committed, StoreError>> + Send + 'static, StoreError>
    {
        let msg = MessageResponse {
            username: by.name.into_owned(),
            text: text.to_owned(),
            guest: by.guest,
            change: Some(change),
            ..MessageResponse::default()
        };
        self.queue(store, msg, None)
    }

    fn queue(
        &self,
        store: &MessageStore,
        mut msg: MessageResponse,
        sent: Option<SentId>,
    ) -> Result<impl Future<Output = Result<Committed, StoreError>> + Send + 'static, StoreError>
    {
        let mut assigned = self.assigned.lock().unwrap();
        // A database shared by several servers assigns ids itself, in queue order; the
        // lock still makes queue order this server's order of posts.
        let id = match store.assigns_ids() {
            true => 0,
            false => *assigned + 1,
        };
        msg.id = id;
        msg.room = self.name.to_string();
        msg.message = display_form(&msg.username, &msg.text);
        // Read under the lock, so posts racing into this room get times in id order (as
        // far as the wall clock itself does not step back).
        msg.sent_at_ms = unix_ms();
        let queued = store.try_append_sent(msg, sent);
        if queued.is_ok() && id != 0 {
            *assigned = id;
        }
        queued
    }

    /// Called by the store's writer after a commit, with this room's messages in id order.
    pub fn publish_committed(&self, messages: &[Committed]) {
        let Some(last) = messages.last() else { return };
        self.last_active_ms.fetch_max(
            u64::try_from(last.sent_at_ms).unwrap_or(0),
            Ordering::Relaxed,
        );
        // Raised before the ring gets them: a stream opened in between reports them in
        // Welcome.last_id and also reads them live, a duplicate clients drop by id;
        // the other order could leave a gap.
        self.published.fetch_max(last.id, Ordering::AcqRel);
        self.fanout.publish(messages.iter().map(|msg| {
            let (event, response) = encode_message(msg);
            Entry {
                id: msg.id,
                event,
                // Change events keep their id in the sequence (resume, gap fill) but never
                // reach a MessageResponse stream: the original clients cannot read them.
                response: msg.change.is_none().then_some(response),
            }
        }));
    }

    /// `publish_committed` for servers sharing a database: `messages` (this room's, in id
    /// order) come from this server's commits or from the bus, and go to the ring once,
    /// in id order, when nothing before them is missing.
    pub fn offer_committed(&self, messages: &[Committed]) {
        let mut order = self.order.lock().unwrap();
        let ready = order.offer(messages, Instant::now());
        // Under the order lock, so two sources cannot interleave their publishes.
        self.publish_committed(&ready);
    }

    /// Where a client resuming after `after_id` needs this server's ring to continue
    /// from: what it delivered, or, for a room it has not anchored yet, `after_id` itself.
    pub fn catch_up_from(&self, after_id: u64) -> u64 {
        let order = self.order.lock().unwrap();
        if order.is_anchored() {
            order.delivered()
        } else {
            after_id
        }
    }

    /// Another server reports `last_id` as this room's newest (see `RoomOrder::heard_of`).
    pub fn heard_of(&self, last_id: u64) {
        self.order.lock().unwrap().heard_of(last_id, Instant::now());
    }

    /// The id to read the store after, if this room has waited `grace` for a missing
    /// message (or `now` says not to wait); the read is then under way until `filled`.
    pub fn fill_due(&self, grace: std::time::Duration, now: bool) -> Option<u64> {
        let mut order = self.order.lock().unwrap();
        if now {
            order.fill_now()
        } else {
            order.fill_due(Instant::now(), grace)
        }
    }

    /// A store read of this room's messages after the id `fill_due` gave came back
    /// (`None`: it failed); what it completes goes to the ring.
    pub fn filled(&self, read: Option<&[Committed]>) {
        let mut order = self.order.lock().unwrap();
        let ready = order.filled(read, Instant::now());
        self.publish_committed(&ready);
    }

    /// The newest id subscribers can have seen.
    pub fn last_id(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    pub fn queue_len(&self) -> usize {
        self.fanout.capacity()
    }

    /// See [`Fanout::reader_after`].
    pub fn reader_after(
        &self,
        after_id: u64,
        client: Option<ClientStream>,
    ) -> (Reader, Option<u64>) {
        self.fanout.reader_after(after_id, client)
    }

    pub fn ring_stats(&self) -> RingStats {
        self.fanout.stats()
    }

    /// See [`Fanout::cut_off_stalled`].
    pub fn cut_off_stalled(&self) -> usize {
        self.fanout.cut_off_stalled()
    }

    /// Opens a stream on the room: its reader (live only, or resuming after an id), the
    /// member list (the first `WELCOME_MEMBERS` names) and count, and, for a signed-in `member`, their membership while it lasts (their
    /// first stream announces them). Done under the members lock, so the list and the
    /// reader's presence events line up exactly: the newcomer sees every change after the
    /// list and none before it, its own announcement included.
    pub fn open(
        self: &Arc<Self>,
        member: Option<&str>,
        after_id: Option<u64>,
        client: Option<ClientStream>,
    ) -> Opened {
        let mut members = self.members.lock().unwrap();
        let guard = member.map(|name| {
            if members.open_local(name) {
                self.announce(&members, name, true);
            }
            MemberGuard {
                room: self.clone(),
                name: name.to_owned(),
            }
        });
        let (reader, first_queued) = match after_id {
            Some(after) => self.fanout.reader_after(after, client),
            None => (self.fanout.reader(client), None),
        };
        Opened {
            reader,
            first_queued,
            // Read after the reader exists: anything newer reaches it live, so `last_id`
            // plus the reader cover everything (see `publish_committed`).
            last_id: self.last_id(),
            members: members.first(WELCOME_MEMBERS),
            member_count: members.len(),
            guard,
        }
    }

    fn leave(&self, name: &str) {
        let mut members = self.members.lock().unwrap();
        if members.close_local(name) {
            self.announce(&members, name, false);
        }
    }

    /// Another server reports `name` in the room (`joined`) or no longer; announced here
    /// when that changes whether the name is in the room anywhere.
    pub fn remote_member(&self, name: &str, joined: bool) {
        let mut members = self.members.lock().unwrap();
        let changed = if joined {
            members.add_remote(name)
        } else {
            members.remove_remote(name)
        };
        if changed {
            self.announce(&members, name, joined);
        }
    }

    /// The names with a stream open on this server, for its heartbeat.
    pub fn local_members(&self) -> Vec<String> {
        self.members.lock().unwrap().local_names()
    }

    /// Published with the members lock held, so announcements go out in the order the
    /// member list changed. Only the change and the count: a list in every event would
    /// make a reconnect storm cost the square of the room's size.
    fn announce(&self, members: &Members, name: &str, joined: bool) {
        self.fanout.publish([Entry {
            id: 0,
            event: Encoded::event(Event::Presence(Presence {
                username: name.to_owned(),
                joined,
                members: Vec::new(),
                member_count: members.len() as u32,
            })),
            response: None,
        }]);
    }

    pub fn member_count(&self) -> usize {
        self.members.lock().unwrap().len()
    }

    /// An ephemeral event for everyone in the room (typing): never stored or replayed.
    pub fn publish_ephemeral(&self, event: Event) {
        self.fanout.publish([Entry {
            id: 0,
            event: Encoded::event(event),
            response: None,
        }]);
    }

    /// Ends every stream of the room (after it drained), e.g. at shutdown.
    pub fn close(&self) {
        self.fanout.close();
    }
}

/// What a message answers: the original's id (checked to be in the same room) and the
/// line of it shown above the reply.
pub struct Reply {
    pub to: u64,
    pub quote: chat_proto::Quote,
}

/// What a new stream starts from.
pub struct Opened {
    pub reader: Reader,
    /// The oldest message id still in the ring after the resume point (see
    /// `Fanout::reader_after`); older ones must come from the store.
    pub first_queued: Option<u64>,
    pub last_id: u64,
    /// The first `WELCOME_MEMBERS` members by name, and how many there are.
    pub members: Vec<String>,
    pub member_count: usize,
    pub guard: Option<MemberGuard>,
}

/// Most names a Welcome lists; the count tells how many more there are.
pub const WELCOME_MEMBERS: usize = 200;

/// One open stream's membership; dropping it (the stream ended, however) leaves.
pub struct MemberGuard {
    room: Arc<Room>,
    name: String,
}

impl Drop for MemberGuard {
    fn drop(&mut self) {
        self.room.leave(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::ChatEvent;
    use futures::{FutureExt, StreamExt};
    use prost::Message;

    fn room() -> Arc<Room> {
        Arc::new(Room::new(
            "general",
            0,
            Arc::new(RingBudget::new(64, 1 << 20, 1)),
        ))
    }

    fn presence_events(reader: &mut Reader) -> Vec<(String, bool, u32)> {
        let mut out = Vec::new();
        while let Some(Some(Ok(entry))) = reader.next().now_or_never() {
            if let Some(Event::Presence(p)) = ChatEvent::decode(entry.event.bytes().clone())
                .unwrap()
                .event
            {
                assert!(p.members.is_empty(), "presence carries the change only");
                out.push((p.username, p.joined, p.member_count));
            }
        }
        out
    }

    #[test]
    fn presence_counts_streams_per_name() {
        let room = room();
        let mut watcher = room.open(None, None, None).reader;
        let ann1 = room.open(Some("ann"), None, None);
        assert_eq!(ann1.members, ["ann"]);
        let ann2 = room.open(Some("ann"), None, None);
        let bob = room.open(Some("bob"), None, None);
        assert_eq!(bob.members, ["ann", "bob"]);
        assert_eq!(bob.member_count, 2);
        drop(ann1);
        assert_eq!(room.member_count(), 2, "ann still has a stream open");
        drop(ann2);
        drop(bob);
        assert_eq!(
            presence_events(&mut watcher),
            [
                ("ann".to_owned(), true, 1),
                ("bob".to_owned(), true, 2),
                ("ann".to_owned(), false, 1),
                ("bob".to_owned(), false, 0),
            ]
        );
    }

    #[test]
    fn a_newcomer_does_not_see_its_own_or_older_announcements() {
        let room = room();
        let _ann = room.open(Some("ann"), None, None);
        let mut bob = room.open(Some("bob"), Some(0), None);
        assert_eq!(bob.members, ["ann", "bob"]);
        assert!(presence_events(&mut bob.reader).is_empty());
        let _cy = room.open(Some("cy"), None, None);
        assert_eq!(
            presence_events(&mut bob.reader),
            [("cy".to_owned(), true, 3)]
        );
    }

    #[test]
    fn the_welcome_list_is_capped_and_the_count_is_not() {
        let room = room();
        let names: Vec<String> = (0..WELCOME_MEMBERS + 5)
            .map(|i| format!("user{i:04}"))
            .collect();
        let held: Vec<Opened> = names
            .iter()
            .map(|n| room.open(Some(n), None, None))
            .collect();
        let newcomer = room.open(None, None, None);
        assert_eq!(newcomer.members, names[..WELCOME_MEMBERS]);
        assert_eq!(newcomer.member_count, WELCOME_MEMBERS + 5);
        drop(held);
        assert_eq!(room.member_count(), 0);
    }
}
