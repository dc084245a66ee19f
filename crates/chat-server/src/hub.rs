//! `RoomHub`: the rooms by name, and the history epoch they share. A cheap-to-clone
//! handle; the map lock is taken only to find or create a room, never to send.
use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use crate::room::{HistoryPage, Message, Room, Subscription};

#[derive(Clone)]
pub struct RoomHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    rooms: RwLock<HashMap<String, Arc<Room>>>,
    /// Identifies this history. Memory-only history starts anew with every process, so
    /// the epoch is random per start; clients holding ids of another epoch are told.
    epoch: u64,
    history_per_room: usize,
    subscriber_queue: usize,
}

/// A subscription plus what the client must know before it reads: whether the ids it
/// resumes from still mean anything here.
pub struct Joined {
    pub epoch: u64,
    pub reset: bool,
    pub subscription: Subscription,
}

impl RoomHub {
    pub fn new(history_per_room: usize, subscriber_queue: usize) -> Self {
        RoomHub {
            inner: Arc::new(HubInner {
                rooms: RwLock::default(),
                // Never 0: 0 means "unknown" on the wire.
                epoch: rand::random::<u64>().max(1),
                history_per_room,
                subscriber_queue,
            }),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// The room, created on first use.
    pub fn room(&self, name: &str) -> Arc<Room> {
        if let Some(room) = self.inner.rooms.read().unwrap().get(name) {
            return room.clone();
        }
        let mut rooms = self.inner.rooms.write().unwrap();
        rooms
            .entry(name.to_owned())
            .or_insert_with(|| {
                tracing::info!(room = name, "room created");
                Arc::new(Room::new(
                    name,
                    self.inner.history_per_room,
                    self.inner.subscriber_queue,
                ))
            })
            .clone()
    }

    fn existing(&self, name: &str) -> Option<Arc<Room>> {
        self.inner.rooms.read().unwrap().get(name).cloned()
    }

    pub fn post(&self, room: &str, username: &str, text: &str) -> Message {
        self.room(room).post(username, text)
    }

    /// Subscribes to `room` resuming after `after_id` of history `epoch` (0 = unknown);
    /// `after_id` 0 means live only. Ids from another epoch, or beyond anything this
    /// history issued, cannot be trusted: the client is told to reset and gets the whole
    /// buffer instead.
    pub fn subscribe(&self, room: &str, after_id: u64, epoch: u64) -> Joined {
        let room = self.room(room);
        let stale_epoch = epoch != 0 && epoch != self.inner.epoch;
        let from_future = after_id > room.last_id();
        let reset = stale_epoch || from_future;
        let replay_after = match (reset, after_id) {
            (true, _) => Some(0),
            (false, 0) => None,
            (false, after) => Some(after),
        };
        let subscription = room.subscribe(replay_after);
        Joined {
            epoch: self.inner.epoch,
            reset,
            subscription,
        }
    }

    /// A page of history; a room nobody has used yet is simply empty (and not created).
    pub fn history(&self, room: &str, before_id: u64, limit: usize) -> HistoryPage {
        match self.existing(room) {
            Some(room) => room.history(before_id, limit),
            None => HistoryPage {
                messages: Vec::new(),
                has_more: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_independent() {
        let hub = RoomHub::new(10, 10);
        assert_eq!(hub.post("a", "x", "1").id, 1);
        assert_eq!(hub.post("b", "x", "1").id, 1);
        assert_eq!(hub.post("a", "x", "2").id, 2);
        assert_eq!(hub.history("a", 0, 10).messages.len(), 2);
        assert!(hub.history("nobody-here", 0, 10).messages.is_empty());
    }

    #[test]
    fn foreign_epoch_or_future_id_resets() {
        let hub = RoomHub::new(10, 10);
        hub.post("a", "x", "1");
        hub.post("a", "x", "2");
        let same = hub.subscribe("a", 1, hub.epoch());
        assert!(!same.reset);
        assert_eq!(same.subscription.replay.len(), 1);
        let other = hub.subscribe("a", 1, hub.epoch().wrapping_add(1).max(1));
        assert!(other.reset);
        assert_eq!(other.subscription.replay.len(), 2);
        let future = hub.subscribe("a", 99, 0);
        assert!(future.reset);
        assert_eq!(future.subscription.replay.len(), 2);
        let unknown_epoch = hub.subscribe("a", 2, 0);
        assert!(!unknown_epoch.reset && unknown_epoch.subscription.replay.is_empty());
        let live_only = hub.subscribe("a", 0, hub.epoch());
        assert!(!live_only.reset && live_only.subscription.replay.is_empty());
    }
}
