//! `RoomHub`: the rooms by name, over the message store they share. A cheap-to-clone
//! handle; the map lock is taken only to find or create a room, never to send, so rooms
//! never wait on each other.
//!
//! The store's writer thread calls back into the rooms after each commit (the hook set
//! up in `open`); that is the only way a message reaches subscribers, so whatever they
//! see is already on disk.
use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, RwLock},
    time::Duration,
};

use chat_proto::{chat_event::Event, ChatEvent, Encoded, RoomInfo, Welcome};

use crate::{
    client_stream::ClientStream,
    error::ChatError,
    idempotency::{self, InFlight},
    ring_budget::RingBudget,
    room::Room,
    sessions::{Sender, StreamGuard},
    store::{Committed, Durability, MessageStore},
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
    rings: Arc<RingBudget>,
}

pub struct HubSettings<'a> {
    pub db: &'a Path,
    pub durability: Durability,
    pub max_rooms: usize,
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
pub struct SubscribeRequest<'a> {
    pub room: &'a str,
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
    pub fn open(settings: HubSettings<'_>) -> Result<Self, ChatError> {
        let rooms: Arc<Rooms> = Arc::default();
        let hook_rooms = Arc::clone(&rooms);
        let store = MessageStore::open(
            settings.db,
            settings.durability,
            settings.store_reads,
            move |batch| publish(&hook_rooms, batch),
        )?;
        let max_rooms = settings.max_rooms.max(1);
        let rings = Arc::new(RingBudget::new(
            settings.queue_len,
            settings.fanout_bytes,
            max_rooms,
        ));
        {
            let mut map = rooms.write().unwrap();
            for (name, last_id) in store.rooms() {
                map.insert(
                    name.clone(),
                    Arc::new(Room::new(name, *last_id, rings.clone())),
                );
            }
        }
        let hub = RoomHub {
            inner: Arc::new(HubInner {
                rooms,
                store,
                in_flight: InFlight::default(),
                max_rooms,
                rings,
            }),
        };
        hub.room(DEFAULT_ROOM)?;
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

    /// The room, created (and recorded in the store) on first use, up to the room cap.
    pub fn room(&self, name: &str) -> Result<Arc<Room>, ChatError> {
        if let Some(room) = self.existing(name) {
            return Ok(room);
        }
        let mut rooms = self.inner.rooms.write().unwrap();
        if let Some(room) = rooms.get(name) {
            return Ok(room.clone());
        }
        if rooms.len() >= self.inner.max_rooms {
            return Err(ChatError::TooManyRooms(self.inner.max_rooms));
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
        room: &str,
        sender: Sender<'_>,
        text: &str,
        client_msg_id: Option<&str>,
    ) -> Result<Committed, ChatError> {
        if let Some(client_msg_id) = client_msg_id {
            return idempotency::post_once(self, room, sender, text, client_msg_id).await;
        }
        let posted = self
            .room(room)?
            .post(&self.inner.store, sender, text, None)?;
        Ok(posted.await?)
    }

    /// A page of history, oldest first, and whether older messages exist. A room nobody
    /// has used is simply empty (and not created).
    pub async fn history(
        &self,
        room: &str,
        before_id: u64,
        limit: usize,
    ) -> Result<(Vec<chat_proto::MessageResponse>, bool), ChatError> {
        if self.existing(room).is_none() {
            return Ok((Vec::new(), false));
        }
        Ok(self.inner.store.history(room, before_id, limit).await?)
    }

    /// Every room, sorted by name.
    pub fn list(&self) -> Vec<RoomInfo> {
        let mut rooms: Vec<RoomInfo> = self
            .inner
            .rooms
            .read()
            .unwrap()
            .values()
            .map(|room| RoomInfo {
                name: room.name().to_owned(),
                members: room.member_count() as u32,
                last_id: room.last_id(),
                last_active_ms: 0,
            })
            .collect();
        rooms.sort_by(|a, b| a.name.cmp(&b.name));
        rooms
    }

    /// Opens a Subscribe stream. Ids from another epoch, or beyond anything this history
    /// issued, cannot be trusted: the client is told to reset and gets the newest page
    /// (`reset_page` messages) instead, and pages further back through History.
    pub fn subscribe(
        &self,
        req: SubscribeRequest<'_>,
        reset_page: u64,
    ) -> Result<Subscription, ChatError> {
        let room = self.room(req.room)?;
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
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.wait() => return,
            }
            let rooms: Vec<Arc<Room>> =
                self.inner.rooms.read().unwrap().values().cloned().collect();
            let closed: usize = rooms.iter().map(|room| room.cut_off_stalled()).sum();
            if closed > 0 {
                tracing::info!(
                    closed,
                    "ended the streams of subscribers that stopped reading"
                );
            }
        }
    }

    /// What the rooms hold now: rings, readers, members.
    pub fn memory_stats(&self) -> MemoryStats {
        let rooms: Vec<Arc<Room>> = self.inner.rooms.read().unwrap().values().cloned().collect();
        let mut stats = MemoryStats {
            rooms: rooms.len(),
            ring_bound: self.inner.rings.bound(self.inner.max_rooms),
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

/// The store's commit hook: hands each room its messages of the batch, in order.
fn publish(rooms: &Rooms, batch: &[Committed]) {
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
            Some(room) => room.publish_committed(&batch[start..end]),
            None => tracing::error!(room = %name, "committed a message for an unknown room"),
        }
        start = end;
    }
}
