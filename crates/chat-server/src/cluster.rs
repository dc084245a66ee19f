//! This server as one of several sharing a database, joined by the bus (`--nats`).
//!
//! Three loops: one applies what the others say (their committed messages into the rooms'
//! order, their heartbeats into presence, their typing and revocations); one sends this
//! server's heartbeat; one sweeps: rooms waiting too long for a missing message read it
//! from the store, and servers gone quiet lose their members. The store stays the truth,
//! so every repair is a store read, never a question to another server.
use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use crate::{
    accounts::Accounts,
    bus::{
        peers::{Change, Peers},
        wire::{Heartbeat, RoomState},
        Bus, BusError, Inbox, Incoming,
    },
    hub::RoomHub,
    room::Room,
    shutdown::Shutdown,
    store::{Committed, MAX_READ_ROWS},
};

/// How the servers of a cluster keep in touch.
#[derive(Debug, Clone, Copy)]
pub struct ClusterSettings {
    /// How often this server says it is alive, with its member lists and rooms' ids.
    pub heartbeat: Duration,
    /// A server not heard from for this long is dead: its members leave.
    pub peer_timeout: Duration,
    /// How long a room waits for a missing message on the bus before reading the store.
    pub gap_grace: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            heartbeat: Duration::from_secs(1),
            peer_timeout: Duration::from_secs(4),
            gap_grace: Duration::from_millis(300),
        }
    }
}

/// Text bytes one page of a gap read may hold.
const FILL_PAGE_BYTES: usize = 1 << 20;

/// Connects to NATS at `url` and joins the hub to the other servers of its database,
/// until shutdown.
pub async fn join(
    url: &str,
    hub: &RoomHub,
    accounts: Accounts,
    settings: ClusterSettings,
    shutdown: Shutdown,
) -> Result<(), BusError> {
    let (bus, inbox) = Bus::connect(url, hub.epoch()).await?;
    if hub.join_bus(bus.clone()).is_err() {
        tracing::warn!("this server was on a bus already; the second one is not used");
        return Ok(());
    }
    accounts.join_bus(bus.clone());
    tracing::info!(
        url,
        server = format_args!("{:016x}", bus.server_id()),
        "joined the other servers through NATS"
    );
    tokio::spawn(run(hub.clone(), accounts, bus, inbox, settings, shutdown));
    Ok(())
}

/// Runs this server's side of the cluster until shutdown, then tells the others it left.
async fn run(
    hub: RoomHub,
    accounts: Accounts,
    bus: Bus,
    inbox: Inbox,
    settings: ClusterSettings,
    shutdown: Shutdown,
) {
    let peers = Arc::new(std::sync::Mutex::new(Peers::default()));
    tokio::spawn(heartbeats(
        hub.clone(),
        bus.clone(),
        settings,
        shutdown.clone(),
    ));
    tokio::spawn(sweep(
        hub.clone(),
        peers.clone(),
        settings,
        shutdown.clone(),
    ));
    let listen = listen(hub.clone(), accounts, peers, inbox);
    tokio::select! {
        _ = listen => tracing::error!("the bus closed; this server no longer hears the others"),
        _ = shutdown.wait() => {
            bus.publish_heartbeat(Heartbeat {
                server: 0,
                rooms: Vec::new(),
                leaving: true,
            });
            bus.flush().await;
        }
    }
}

async fn listen(
    hub: RoomHub,
    accounts: Accounts,
    peers: Arc<std::sync::Mutex<Peers>>,
    mut inbox: Inbox,
) {
    while let Some(incoming) = inbox.next().await {
        match incoming {
            Incoming::Committed(batch) => {
                let messages: Vec<Committed> = batch.messages.into_iter().map(Arc::new).collect();
                for run in messages.chunk_by(|a, b| a.room == b.room) {
                    let room = hub.adopt(&run[0].room);
                    room.offer_committed(run);
                }
            }
            Incoming::Heartbeat(heartbeat) => {
                for state in &heartbeat.rooms {
                    hub.adopt(&state.room).heard_of(state.last_id);
                }
                let changes = peers.lock().unwrap().heartbeat(&heartbeat, Instant::now());
                apply(&hub, changes);
            }
            Incoming::Typing(typing) => {
                if let (Some(room), Some(event)) = (hub.existing(&typing.room), typing.event) {
                    room.publish_ephemeral(chat_proto::chat_event::Event::Typing(event));
                }
            }
            Incoming::Revoke(revoke) => {
                // Off this loop: it writes to the database.
                let accounts = accounts.clone();
                tokio::spawn(async move {
                    match accounts.revoked(revoke).await {
                        Ok(ended) => tracing::info!(
                            sessions = ended,
                            "sessions ended through another server"
                        ),
                        Err(err) => {
                            tracing::warn!(%err, "could not end sessions another server ended")
                        }
                    }
                });
            }
            Incoming::Reconnected => {
                // Whatever was published while we were away is lost to us: every room
                // reads what it missed from the store.
                for room in hub.rooms() {
                    fill(&hub, room, Duration::ZERO, true);
                }
            }
        }
    }
}

/// Presence changes from the others, announced in the rooms they concern.
fn apply(hub: &RoomHub, changes: Vec<Change>) {
    for change in changes {
        hub.adopt(&change.room)
            .remote_member(&change.name, change.joined);
    }
}

async fn heartbeats(hub: RoomHub, bus: Bus, settings: ClusterSettings, shutdown: Shutdown) {
    let mut ticks = shutdown.every(settings.heartbeat);
    while ticks.next().await {
        let rooms = hub
            .rooms()
            .into_iter()
            .map(|room| RoomState {
                room: room.name().to_owned(),
                last_id: room.last_id(),
                members: room.local_members(),
            })
            .filter(|state| state.last_id > 0 || !state.members.is_empty())
            .collect();
        bus.publish_heartbeat(Heartbeat {
            server: 0,
            rooms,
            leaving: false,
        });
    }
}

async fn sweep(
    hub: RoomHub,
    peers: Arc<std::sync::Mutex<Peers>>,
    settings: ClusterSettings,
    shutdown: Shutdown,
) {
    let every = (settings.gap_grace / 3).max(Duration::from_millis(20));
    let mut ticks = shutdown.every(every);
    while ticks.next().await {
        let gone = peers
            .lock()
            .unwrap()
            .expire(Instant::now(), settings.peer_timeout);
        let someone_died = !gone.is_empty();
        apply(&hub, gone);
        for room in hub.rooms() {
            // A server killed between its commit and its publish leaves a message only
            // the store knows of: every room looks.
            fill(&hub, room, settings.gap_grace, someone_died);
        }
    }
}

/// Reads what `room` misses from the store, if a read is due (or `now`), in the
/// background, page by page.
fn fill(hub: &RoomHub, room: Arc<Room>, grace: Duration, now: bool) {
    let Some(after_id) = room.fill_due(grace, now) else {
        return;
    };
    let store = hub.store().clone();
    tokio::spawn(async move {
        let mut after_id = after_id;
        loop {
            match store
                .after(room.name(), after_id, MAX_READ_ROWS, FILL_PAGE_BYTES)
                .await
            {
                Ok(page) => {
                    let page: Vec<Committed> = page.into_iter().map(Arc::new).collect();
                    room.filled(Some(&page));
                    match page.last() {
                        Some(last) if page.len() == MAX_READ_ROWS => after_id = last.id,
                        _ => return,
                    }
                }
                Err(err) => {
                    tracing::warn!(room = room.name(), %err, "could not read a gap from the store");
                    room.filled(None);
                    return;
                }
            }
        }
    });
}
