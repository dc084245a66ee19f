//! `RoomHub`: the rooms by name, over the message store they share. A cheap-to-clone
//! handle; the map lock is taken only to find or create a room, never to send, so rooms
//! never wait on each other.
//!
//! The store's writer thread calls back into the rooms after each commit (the hook set
//! up in `open`); that is the only way a message reaches subscribers, so whatever they
//! see is already on disk.
//!
//! Conversations (`direct`) are rooms here too, under their key, with a cap of their own
//! so they never take a room's place nor show in the rooms' count.
//!
//! Who may create a room is `room_creation`'s rule; the hub only keeps the cap. Rooms
//! that never got a message and that nobody has open are dropped after a while (see
//! `drop_unused_rooms`), so names tried once do not pile up.
use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use chat_proto::{chat_event::Event, ChatEvent, Encoded, RoomInfo, TypingEvent, Welcome};

use crate::{
    bus::Bus,
    client_stream::ClientStream,
    direct,
    error::ChatError,
    idempotency::{self, InFlight},
    metrics_endpoint::CUT_OFF,
    ring_budget::RingBudget,
    room::{Reply, Room},
    sessions::{Sender, StreamGuard},
    shared_rooms::SharedRoomList,
    store::{Committed, Database, Durability, MessageStore, RoomCreated},
    subscription::{Subscription, SubscriptionParts},
};

/// The room every server has, whatever else exists.
pub const DEFAULT_ROOM: &str = "general";

type Rooms = RwLock<HashMap<String, Arc<Room>>>;

#[derive(Clone)]
pub struct RoomHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    rooms: Arc<Rooms>,
    store: MessageStore,
    in_flight: InFlight,
    max_rooms: usize,
    max_conversations: usize,
    rings: Arc<RingBudget>,
    /// Set once, at start, when servers share the database (see `join_bus`).
    bus: Arc<OnceLock<Bus>>,
    /// ListRooms's last read of the database, with a bus.
    shared_list: SharedRoomList,
}

pub struct HubSettings<'a> {
    pub db: &'a Database,
    pub durability: Durability,
    pub max_rooms: usize,
    /// Most conversations (`direct`), besides the rooms.
    pub max_conversations: usize,
    /// Events a subscriber may fall behind before it is cut off.
    pub queue_len: usize,
    /// Bytes all rooms' fan-out rings may hold together (see `ring_budget`).
    pub fanout_bytes: usize,
    /// Store reads running at once; more wait.
    pub store_reads: usize,
}

/// What the rooms hold in memory now, for tests and the memory bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub rooms: usize,
    /// Events and bytes held by every room's fan-out ring.
    pub ring_entries: usize,
    pub ring_bytes: usize,
    /// The most `ring_bytes` can reach with the room cap reached.
    pub ring_bound: usize,
    /// Open ring readers (each Subscribe or Broadcast stream has one) and parked ones.
    pub readers: usize,
    pub waiters: usize,
    /// Names present in some room, counted once per room.
    pub members: usize,
}

/// Who opens a Subscribe stream and from where.
pub struct SubscribeRequest {
    pub room: Arc<Room>,
    /// Resume after this id (0 = live only).
    pub after_id: u64,
    /// The history epoch `after_id` belongs to (0 = unknown).
    pub epoch: u64,
    /// The signed-in member, who is then present in the room while the stream lasts.
    pub member: Option<StreamGuard>,
    pub heartbeat: Option<Duration>,
    /// The client's stream, ended if it is cut off and stops reading.
    pub client: Option<ClientStream>,
}

impl RoomHub {
    pub async fn open(settings: HubSettings<'_>) -> Result<Self, ChatError> {
        let rooms: Arc<Rooms> = Arc::default();
        let bus: Arc<OnceLock<Bus>> = Arc::default();
        let (hook_rooms, hook_bus) = (Arc::clone(&rooms), Arc::clone(&bus));
        let store = MessageStore::open(
            settings.db,
            settings.durability,
            settings.store_reads,
            move |batch| match hook_bus.get() {
                None => for_each_room(&hook_rooms, batch, Room::publish_committed),
                Some(bus) => {
                    for_each_room(&hook_rooms, batch, Room::offer_committed);
                    bus.publish_committed(batch);
                }
            },
        )
        .await?;
        let max_rooms = settings.max_rooms.max(1);
        let max_conversations = settings.max_conversations;
        let rings = Arc::new(RingBudget::new(
            settings.queue_len,
            settings.fanout_bytes,
            max_rooms + max_conversations,
        ));
        {
            let mut map = rooms.write().unwrap();
            for stored in store.rooms() {
                map.insert(
                    stored.name.clone(),
                    Arc::new(Room::restored(stored, rings.clone())),
                );
            }
        }
        let hub = RoomHub {
            inner: Arc::new(HubInner {
                rooms,
                store,
                in_flight: InFlight::default(),
                max_rooms,
                max_conversations,
                rings,
                bus,
                shared_list: SharedRoomList::default(),
            }),
        };
        hub.get_or_create(DEFAULT_ROOM)?;
        Ok(hub)
    }

    /// Identifies this database's history; see `Welcome.epoch`.
    pub fn epoch(&self) -> u64 {
        self.inner.store.epoch()
    }

    pub fn store(&self) -> &MessageStore {
        &self.inner.store
    }

    /// The sends with a client message id on their way to the store.
    pub(crate) fn in_flight(&self) -> &InFlight {
        &self.inner.in_flight
    }

    /// Joins the servers sharing this database: from now on commits are published on
    /// `bus`, and rooms take messages from every server in id order. Call it once, before
    /// serving; a second bus is refused.
    pub fn join_bus(&self, bus: Bus) -> Result<(), Bus> {
        self.inner.bus.set(bus)
    }

    /// The room as another server reports it, made here if this server did not know it
    /// (unanchored; not in the store, which has it, nor counted against the cap).
    pub fn adopt(&self, name: &str) -> Arc<Room> {
        if let Some(room) = self.existing(name) {
            return room;
        }
        let mut rooms = self.inner.rooms.write().unwrap();
        rooms
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Room::unanchored(name, self.inner.rings.clone())))
            .clone()
    }

    /// The room if it exists: here, or, with servers sharing the database, made through
    /// another that this server has not heard of yet (then taken in, see `adopt`).
    pub async fn existing_anywhere(&self, name: &str) -> Result<Option<Arc<Room>>, ChatError> {
        if let Some(room) = self.existing(name) {
            return Ok(Some(room));
        }
        if self.inner.bus.get().is_none() || !self.inner.store.room_exists(name).await? {
            return Ok(None);
        }
        Ok(Some(self.adopt(name)))
    }

    /// Creates the room `name` (or finds it made meanwhile), up to the room cap. With
    /// servers sharing the database the cap is counted there, so they keep one cap
    /// between them, and the room is recorded before this returns, so the others find
    /// it (`existing_anywhere`) once the caller is answered. Otherwise `get_or_create`.
    pub async fn create(&self, name: &str) -> Result<Arc<Room>, ChatError> {
        if self.inner.bus.get().is_none() {
            return self.get_or_create(name);
        }
        // A conversation counts against its own cap (the store counts its kind only).
        let (cap, full): (usize, fn(usize) -> ChatError) = match direct::is_direct(name) {
            true => (
                self.inner.max_conversations,
                ChatError::TooManyConversations,
            ),
            false => (self.inner.max_rooms, ChatError::TooManyRooms),
        };
        match self.inner.store.create_room_within(name, cap).await? {
            RoomCreated::Full => Err(full(cap)),
            RoomCreated::Created => {
                tracing::info!(room = name, "room created");
                self.inner.shared_list.forget().await;
                Ok(self.adopt(name))
            }
            RoomCreated::Existed => Ok(self.adopt(name)),
        }
    }

    /// Every room now.
    pub fn rooms(&self) -> Vec<Arc<Room>> {
        self.inner.rooms.read().unwrap().values().cloned().collect()
    }

    /// Shows `event` to everyone in `room`, on every server.
    pub fn typing(&self, room: &Room, event: TypingEvent) {
        if let Some(bus) = self.inner.bus.get() {
            bus.publish_typing(room.name(), event.clone());
        }
        room.publish_ephemeral(Event::Typing(event));
    }

    /// With servers sharing the database, a client may resume after an id this server
    /// has not delivered yet (it read it through another server that committed it just
    /// now): the store is read first, so it is not told to reset.
    pub async fn catch_up(&self, room: &Arc<Room>, after_id: u64) -> Result<(), ChatError> {
        if self.inner.bus.get().is_none() || after_id <= room.last_id() {
            return Ok(());
        }
        let from = room.catch_up_from(after_id);
        let read = self
            .inner
            .store
            .after(room.name(), from, crate::store::MAX_READ_ROWS, 1 << 20)
            .await;
        let page: Vec<Committed> = match read {
            Ok(page) => page.into_iter().map(Arc::new).collect(),
            Err(err) => return Err(err.into()),
        };
        room.filled(Some(&page));
        Ok(())
    }

    /// The room, created (and recorded in the store) if it does not exist, up to the room
    /// cap counted here (for a conversation, the conversation cap): for one server (see
    /// `create`). Whether the caller may create rooms is `room_creation`'s to decide.
    pub fn get_or_create(&self, name: &str) -> Result<Arc<Room>, ChatError> {
        if let Some(room) = self.existing(name) {
            return Ok(room);
        }
        let mut rooms = self.inner.rooms.write().unwrap();
        if let Some(room) = rooms.get(name) {
            return Ok(room.clone());
        }
        let direct = direct::is_direct(name);
        let kept = rooms
            .keys()
            .filter(|k| direct::is_direct(k) == direct)
            .count();
        match direct {
            false if kept >= self.inner.max_rooms => {
                return Err(ChatError::TooManyRooms(self.inner.max_rooms))
            }
            true if kept >= self.inner.max_conversations => {
                return Err(ChatError::TooManyConversations(
                    self.inner.max_conversations,
                ))
            }
            _ => {}
        }
        let room = Arc::new(Room::new(name, 0, self.inner.rings.clone()));
        rooms.insert(name.to_owned(), room.clone());
        // Queued now, ahead of any message to the room; a failure to record it shows up
        // as that first message failing, so nothing waits for it here.
        drop(self.inner.store.create_room(name));
        tracing::info!(room = name, "room created");
        Ok(room)
    }

    pub fn existing(&self, name: &str) -> Option<Arc<Room>> {
        self.inner.rooms.read().unwrap().get(name).cloned()
    }

    /// Commits the message, then it is fanned out; resolves with it as stored.
    /// With a `client_msg_id`, a repeat from the same person within a day resolves with
    /// the original instead (see `idempotency`).
    pub async fn post(
        &self,
        room: &Room,
        sender: Sender<'_>,
        text: &str,
        client_msg_id: Option<&str>,
    ) -> Result<Committed, ChatError> {
        self.post_reply(room, sender, text, None, client_msg_id)
            .await
    }

    /// `post`, answering the message `reply` names (checked already, see
    /// `message_changes::reply`).
    pub async fn post_reply(
        &self,
        room: &Room,
        sender: Sender<'_>,
        text: &str,
        reply: Option<Reply>,
        client_msg_id: Option<&str>,
    ) -> Result<Committed, ChatError> {
        if let Some(client_msg_id) = client_msg_id {
            return idempotency::post_once(self, room, sender, text, reply, client_msg_id).await;
        }
        let posted = room.post(&self.inner.store, sender, text, reply, None)?;
        Ok(posted.await?)
    }

    /// A page of history, oldest first, and whether older messages exist. A room nobody
    /// has used is simply empty (and not created). With a shared database (PostgreSQL)
    /// another server may have filled a room this one has not heard of, so it is read.
    pub async fn history(
        &self,
        room: &str,
        before_id: u64,
        limit: usize,
    ) -> Result<(Vec<chat_proto::MessageResponse>, bool), ChatError> {
        if self.existing(room).is_none() && !self.inner.store.assigns_ids() {
            return Ok((Vec::new(), false));
        }
        Ok(self.inner.store.history(room, before_id, limit).await?)
    }

    /// The `limit` most recently active rooms, most recent first (ties by name), and how
    /// many rooms exist (conversations are neither): this server's (`list_page`), or with servers sharing the
    /// database, the database's (see `shared_rooms`).
    pub async fn list(&self, limit: usize) -> Result<(Vec<RoomInfo>, usize), ChatError> {
        if self.inner.bus.get().is_none() {
            return Ok(self.list_page(limit));
        }
        let store = &self.inner.store;
        self.inner
            .shared_list
            .page(store, limit, |name| self.existing(name))
            .await
    }

    /// The `limit` most recently active rooms this server holds, most recent first (ties
    /// by name), and how many it holds, conversations left out. A bounded heap picks them in one pass, so the cost per call is
    /// O(rooms x log limit) with no allocation beyond the page.
    pub fn list_page(&self, limit: usize) -> (Vec<RoomInfo>, usize) {
        let rooms = self.inner.rooms.read().unwrap();
        let mut total = 0;
        let page = top_active(
            rooms
                .values()
                .filter(|room| !direct::is_direct(room.name())),
            limit,
            |room| {
                total += 1;
                Some(room.name().to_owned())
            },
        );
        (page, total)
    }

    /// The `limit` most recently active conversations of the account `me`, each named as
    /// they name it (`@peer`), most recent first.
    pub fn conversations_of(&self, me: &str, limit: usize) -> Vec<RoomInfo> {
        let rooms = self.inner.rooms.read().unwrap();
        top_active(rooms.values(), limit, |room| {
            direct::as_seen_by(room.name(), me)
        })
    }

    /// Drops every room (never `general`) that has no message, that nobody holds (no
    /// stream, no post under way), that nobody is in through another server, and that this
    /// server run has known for at least `ttl`;
    /// from memory now and from the store with the writer's next batch. Returns their
    /// names.
    ///
    /// "Nobody holds it" is the room's reference count: every stream, membership and post
    /// holds an `Arc<Room>`, and under the write lock nobody can take a new one from the
    /// map, so a count of one (the map's) cannot change underneath.
    pub fn drop_unused_rooms(&self, ttl: Duration) -> Vec<String> {
        let mut rooms = self.inner.rooms.write().unwrap();
        let unused: Vec<String> = rooms
            .iter()
            .filter(|(name, room)| {
                name.as_str() != DEFAULT_ROOM
                    && Arc::strong_count(room) == 1
                    && room.age() >= ttl
                    && !room.has_messages()
                    // With servers sharing the database: nobody is in it through another
                    // (whose server holds it, but not this server's `Arc`).
                    && room.member_count() == 0
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in &unused {
            rooms.remove(name);
            // Queued now, behind anything already queued for it; a failure leaves a
            // row that the next start loads and this drops again.
            drop(self.inner.store.delete_empty_room(name));
        }
        unused
    }

    /// Runs `drop_unused_rooms(ttl)` now and then until shutdown.
    pub async fn drop_unused_rooms_every(self, ttl: Duration, shutdown: crate::Shutdown) {
        let every = (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
        let mut ticks = shutdown.every(every);
        while ticks.next().await {
            let dropped = self.drop_unused_rooms(ttl);
            if !dropped.is_empty() {
                tracing::info!(rooms = dropped.len(), "dropped rooms nobody used");
                tracing::debug!(?dropped, "dropped rooms");
            }
        }
    }

    /// Opens a Subscribe stream. Ids from another epoch, or beyond anything this history
    /// issued, cannot be trusted: the client is told to reset and gets the newest page
    /// (`reset_page` messages) instead, and pages further back through History.
    pub fn subscribe(
        &self,
        req: SubscribeRequest,
        reset_page: u64,
    ) -> Result<Subscription, ChatError> {
        let room = req.room;
        let newest = room.last_id();
        let reset = (req.epoch != 0 && req.epoch != self.epoch()) || req.after_id > newest;
        let after_id = match (reset, req.after_id) {
            (true, _) => Some(newest.saturating_sub(reset_page)),
            (false, 0) => None,
            (false, after) => Some(after),
        };
        let member_name = req
            .member
            .as_ref()
            .map(|slot| slot.session().name().to_owned());
        let opened = room.open(member_name.as_deref(), after_id, req.client.clone());
        let welcome = Encoded::<ChatEvent>::event(Event::Welcome(Welcome {
            room: room.name().to_owned(),
            epoch: self.epoch(),
            last_id: opened.last_id,
            reset,
            heartbeat_ms: req.heartbeat.map_or(0, |d| d.as_millis() as u32),
            member_count: opened.member_count as u32,
            members: opened.members,
        }));
        let after_id = after_id.unwrap_or(opened.last_id);
        // The store fills whatever lies between the resume point and the ring.
        let catch_up_to = match opened.first_queued {
            Some(first) => first - 1,
            None => opened.last_id,
        };
        Ok(Subscription::new(SubscriptionParts {
            welcome,
            reader: opened.reader,
            queue_len: room.queue_len(),
            after_id,
            catch_up_to,
            store: self.inner.store.clone(),
            room: room.clone(),
            heartbeat: req.heartbeat,
            member: opened.guard,
            slot: req.member,
            client: req.client,
        }))
    }

    /// Ends the streams of subscribers that were cut off and stopped reading, every
    /// `every`, until shutdown.
    pub async fn cut_off_stalled_every(self, every: Duration, shutdown: crate::Shutdown) {
        let mut ticks = shutdown.every(every);
        while ticks.next().await {
            let rooms = self.rooms();
            for room in rooms {
                let closed = room.cut_off_stalled();
                if closed > 0 {
                    metrics::counter!(CUT_OFF, "reason" => "stalled").increment(closed as u64);
                    tracing::info!(
                        room = room.name(),
                        closed,
                        "ended the streams of subscribers that stopped reading"
                    );
                }
            }
        }
    }

    /// What the rooms hold now: rings, readers, members.
    pub fn memory_stats(&self) -> MemoryStats {
        let rooms = self.rooms();
        let mut stats = MemoryStats {
            rooms: rooms.len(),
            ring_bound: self
                .inner
                .rings
                .bound(self.inner.max_rooms + self.inner.max_conversations),
            ..MemoryStats::default()
        };
        for room in rooms {
            let ring = room.ring_stats();
            stats.ring_entries += ring.entries;
            stats.ring_bytes += ring.bytes;
            stats.readers += ring.readers;
            stats.waiters += ring.waiters;
            stats.members += room.member_count();
        }
        stats
    }

    /// Ends every stream, each with "shutting down", once it has sent what is queued.
    pub fn end_streams(&self) {
        for room in self.inner.rooms.read().unwrap().values() {
            room.close();
        }
    }

    /// Commits whatever is queued and stops the store; later posts fail.
    pub async fn close(&self) {
        self.inner.store.close().await;
    }
}

/// The `limit` most recently active of `rooms` that `name` shows (by the name it gives),
/// most recent first: a min-heap of the best `limit` so far, whose root is the first to
/// give way.
fn top_active<'a>(
    rooms: impl Iterator<Item = &'a Arc<Room>>,
    limit: usize,
    mut name: impl FnMut(&Room) -> Option<String>,
) -> Vec<RoomInfo> {
    let mut top: BinaryHeap<Reverse<Ranked>> = BinaryHeap::with_capacity(limit + 1);
    for room in rooms {
        let Some(name) = name(room) else { continue };
        top.push(Reverse(Ranked {
            last_active_ms: room.last_active_ms(),
            name,
            room,
        }));
        if top.len() > limit {
            top.pop();
        }
    }
    top.into_sorted_vec()
        .into_iter()
        .map(|Reverse(ranked)| RoomInfo {
            members: ranked.room.member_count() as u32,
            last_id: ranked.room.last_id(),
            last_active_ms: i64::try_from(ranked.last_active_ms).unwrap_or(i64::MAX),
            name: ranked.name,
        })
        .collect()
}

/// A room's place in ListRooms: more recently active first, then by name. Read once, so
/// a message arriving meanwhile cannot reorder the heap under it.
struct Ranked<'a> {
    last_active_ms: u64,
    /// As the caller sees it.
    name: String,
    room: &'a Room,
}

impl Ranked<'_> {
    fn key(&self) -> (u64, Reverse<&str>) {
        (self.last_active_ms, Reverse(&self.name))
    }
}

impl PartialEq for Ranked<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Ranked<'_> {}

impl PartialOrd for Ranked<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// The store's commit hook: hands each room its messages of the batch, in order.
fn for_each_room(rooms: &Rooms, batch: &[Committed], publish: impl Fn(&Room, &[Committed])) {
    let rooms = rooms.read().unwrap();
    let mut start = 0;
    while start < batch.len() {
        let name = &batch[start].room;
        let end = start
            + batch[start..]
                .iter()
                .take_while(|m| &m.room == name)
                .count();
        match rooms.get(name) {
            Some(room) => publish(room, &batch[start..end]),
            None => tracing::error!(room = %name, "committed a message for an unknown room"),
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each test runs on both engines: SQLite in `dir`, and a fresh PostgreSQL database.
    fn databases(dir: &tempfile::TempDir) -> [(Database, Option<crate::test_pg::Database>); 2] {
        let pg = crate::test_pg::database();
        [
            (Database::Sqlite(dir.path().join("chat.db")), None),
            (Database::Postgres(pg.url.clone()), Some(pg)),
        ]
    }

    async fn open(db: &Database) -> RoomHub {
        RoomHub::open(HubSettings {
            db,
            durability: Durability::Normal,
            max_rooms: 100,
            max_conversations: 100,
            queue_len: 16,
            fanout_bytes: 1 << 20,
            store_reads: 2,
        })
        .await
        .unwrap()
    }

    fn subscribe(hub: &RoomHub, room: Arc<Room>) -> Subscription {
        hub.subscribe(
            SubscribeRequest {
                room,
                after_id: 0,
                epoch: 0,
                member: None,
                heartbeat: None,
                client: None,
            },
            50,
        )
        .unwrap()
    }

    fn ann() -> Sender<'static> {
        Sender {
            name: "ann".into(),
            guest: true,
        }
    }

    fn names(rooms: &[RoomInfo]) -> Vec<&str> {
        rooms.iter().map(|r| r.name.as_str()).collect()
    }

    #[tokio::test]
    async fn only_rooms_nobody_used_or_holds_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        for (db, _pg) in databases(&dir) {
            let hub = open(&db).await;
            hub.get_or_create("junk").unwrap();
            let used = hub.get_or_create("used").unwrap();
            // Activity is in milliseconds: a later post is then later than general's creation.
            tokio::time::sleep(Duration::from_millis(2)).await;
            hub.post(&used, ann(), "hi", None).await.unwrap();
            drop(used);
            let held = subscribe(&hub, hub.get_or_create("held").unwrap());
            // Too young to go.
            assert!(hub.drop_unused_rooms(Duration::from_secs(3600)).is_empty());
            assert_eq!(hub.drop_unused_rooms(Duration::ZERO), ["junk"], "{db}");
            assert!(hub.existing("junk").is_none());
            drop(held);
            assert_eq!(hub.drop_unused_rooms(Duration::ZERO), ["held"]);
            assert!(hub.existing(DEFAULT_ROOM).is_some() && hub.existing("used").is_some());
            hub.close().await;
            drop(hub);
            // Gone from the database too.
            let hub = open(&db).await;
            let (rooms, total) = hub.list_page(10);
            assert_eq!((names(&rooms), total), (vec!["used", "general"], 2), "{db}");
            hub.close().await;
        }
    }

    #[tokio::test]
    async fn a_page_is_the_most_recently_active_rooms() {
        let dir = tempfile::tempdir().unwrap();
        for (db, _pg) in databases(&dir) {
            let hub = open(&db).await;
            let rooms: Vec<_> = ["a", "b", "c", "d"]
                .iter()
                .map(|name| hub.get_or_create(name).unwrap())
                .collect();
            for room in [&rooms[2], &rooms[0]] {
                // Distinct milliseconds, so the order is by activity and not by the tie-break.
                tokio::time::sleep(Duration::from_millis(2)).await;
                hub.post(room, ann(), "hi", None).await.unwrap();
            }
            let (page, total) = hub.list_page(2);
            assert_eq!((names(&page), total), (vec!["a", "c"], 5), "{db}");
            assert!(page[0].last_active_ms > page[1].last_active_ms);
            let (all, _) = hub.list_page(10);
            assert_eq!(names(&all)[..2], ["a", "c"]);
            hub.close().await;
        }
    }
}
