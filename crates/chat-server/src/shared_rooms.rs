//! ListRooms when servers share the database: each server knows only the rooms used
//! through it or heard of on the bus, so the list comes from the database, which has
//! every room whichever server made it, used or not.
//!
//! Every open tab polls ListRooms (every 3 s), so one server reads the database at most
//! once per `FRESH_FOR`, a page of `MAX_ROOMS_PAGE`, and the callers in between share it.
use std::{sync::Arc, time::Duration};

use chat_proto::RoomInfo;
use tokio::{sync::Mutex, time::Instant};

use crate::{
    error::ChatError,
    room::Room,
    service::MAX_ROOMS_PAGE,
    store::{MessageStore, StoredRoom},
};

/// How long one read of the room list answers ListRooms on this server.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// The most recently active rooms and how many exist, as last read.
type Listed = Arc<(Vec<StoredRoom>, usize)>;

/// The last read and when it was made.
#[derive(Default)]
pub struct SharedRoomList {
    last: Mutex<Option<(Instant, Listed)>>,
}

impl SharedRoomList {
    /// The `limit` (at most `MAX_ROOMS_PAGE`) most recently active rooms, most recent
    /// first, and how many exist. Activity and newest id are the newer of the database's
    /// and this server's (a message delivered here since the read); member counts are this
    /// server's, which are the union over servers (see `room_members`).
    pub async fn page(
        &self,
        store: &MessageStore,
        limit: usize,
        room: impl Fn(&str) -> Option<Arc<Room>>,
    ) -> Result<(Vec<RoomInfo>, usize), ChatError> {
        let listed = self.read(store).await?;
        let (stored, total) = &*listed;
        let mut page: Vec<RoomInfo> = stored
            .iter()
            .take(limit)
            .map(|stored| {
                let here = room(&stored.name);
                RoomInfo {
                    name: stored.name.clone(),
                    members: here.as_ref().map_or(0, |r| r.member_count() as u32),
                    last_id: here
                        .as_ref()
                        .map_or(stored.last_id, |r| r.last_id().max(stored.last_id)),
                    last_active_ms: i64::try_from(
                        here.as_ref().map_or(stored.last_active_ms, |r| {
                            r.last_active_ms().max(stored.last_active_ms)
                        }),
                    )
                    .unwrap_or(i64::MAX),
                }
            })
            .collect();
        // This server's newer activity may reorder the page it read.
        page.sort_by(|a, b| {
            b.last_active_ms
                .cmp(&a.last_active_ms)
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok((page, *total))
    }

    /// Drops the last read: a room made through this server is listed by it at once.
    pub async fn forget(&self) {
        *self.last.lock().await = None;
    }

    /// The last read if it is fresh, else a new one; callers arriving during a read wait
    /// for it instead of reading too.
    async fn read(&self, store: &MessageStore) -> Result<Listed, ChatError> {
        let mut last = self.last.lock().await;
        if let Some((at, listed)) = &*last {
            if at.elapsed() < FRESH_FOR {
                return Ok(Arc::clone(listed));
            }
        }
        let listed = Arc::new(store.room_page(MAX_ROOMS_PAGE).await?);
        *last = Some((Instant::now(), Arc::clone(&listed)));
        Ok(listed)
    }
}
