//! The other servers as their heartbeats describe them: alive or not, and who is connected
//! through each in each room. A heartbeat carries a server's whole member lists, so
//! applying one is a diff against the last, and a lost heartbeat is repaired by the next;
//! a server that stops sending (killed, cut off) is forgotten after a timeout, and its
//! members with it.
use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use tokio::time::Instant;

use super::wire::Heartbeat;

/// A member that appeared or went on some other server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub room: String,
    pub name: String,
    pub joined: bool,
}

/// What this server heard from the others.
#[derive(Default)]
pub struct Peers {
    servers: HashMap<u64, Peer>,
}

struct Peer {
    last_seen: Instant,
    rooms: HashMap<String, BTreeSet<String>>,
}

impl Peers {
    /// Applies a server's heartbeat; returns who joined or left through it since its last.
    /// A heartbeat saying the server is leaving forgets it at once.
    pub fn heartbeat(&mut self, heartbeat: &Heartbeat, now: Instant) -> Vec<Change> {
        if heartbeat.leaving {
            return self.forget(heartbeat.server);
        }
        let peer = self.servers.entry(heartbeat.server).or_insert(Peer {
            last_seen: now,
            rooms: HashMap::new(),
        });
        peer.last_seen = now;
        let mut changes = Vec::new();
        let mut rooms = HashMap::with_capacity(heartbeat.rooms.len());
        for state in &heartbeat.rooms {
            if state.members.is_empty() {
                continue;
            }
            let now_in: BTreeSet<String> = state.members.iter().cloned().collect();
            let before = peer.rooms.remove(&state.room).unwrap_or_default();
            diff(&state.room, &before, &now_in, &mut changes);
            rooms.insert(state.room.clone(), now_in);
        }
        // Rooms it no longer lists: everyone there left.
        for (room, before) in peer.rooms.drain() {
            diff(&room, &before, &BTreeSet::new(), &mut changes);
        }
        peer.rooms = rooms;
        changes
    }

    /// Forgets the servers silent for `timeout`; returns their members, all leaving.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<Change> {
        let dead: Vec<u64> = self
            .servers
            .iter()
            .filter(|(_, peer)| now.duration_since(peer.last_seen) >= timeout)
            .map(|(&id, _)| id)
            .collect();
        let mut changes = Vec::new();
        for id in dead {
            tracing::warn!(
                server = format_args!("{id:016x}"),
                "a server went quiet; its members leave"
            );
            changes.extend(self.forget(id));
        }
        changes
    }

    /// How many other servers are alive as far as we know.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    fn forget(&mut self, server: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        if let Some(peer) = self.servers.remove(&server) {
            for (room, before) in peer.rooms {
                diff(&room, &before, &BTreeSet::new(), &mut changes);
            }
        }
        changes
    }
}

fn diff(room: &str, before: &BTreeSet<String>, after: &BTreeSet<String>, out: &mut Vec<Change>) {
    let change = |name: &String, joined| Change {
        room: room.to_owned(),
        name: name.clone(),
        joined,
    };
    out.extend(before.difference(after).map(|n| change(n, false)));
    out.extend(after.difference(before).map(|n| change(n, true)));
}

#[cfg(test)]
mod tests {
    use super::super::wire::RoomState;
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(4);

    fn beat(server: u64, rooms: &[(&str, &[&str])]) -> Heartbeat {
        Heartbeat {
            server,
            rooms: rooms
                .iter()
                .map(|(room, members)| RoomState {
                    room: room.to_string(),
                    last_id: 0,
                    members: members.iter().map(|m| m.to_string()).collect(),
                })
                .collect(),
            leaving: false,
        }
    }

    fn change(room: &str, name: &str, joined: bool) -> Change {
        Change {
            room: room.into(),
            name: name.into(),
            joined,
        }
    }

    #[test]
    fn heartbeats_are_diffed_against_the_last() {
        let now = Instant::now();
        let mut peers = Peers::default();
        assert_eq!(
            peers.heartbeat(&beat(7, &[("general", &["ann", "bob"])]), now),
            [
                change("general", "ann", true),
                change("general", "bob", true)
            ]
        );
        assert!(peers
            .heartbeat(&beat(7, &[("general", &["ann", "bob"])]), now)
            .is_empty());
        assert_eq!(
            peers.heartbeat(
                &beat(7, &[("general", &["bob", "cy"]), ("x", &["ann"])]),
                now
            ),
            [
                change("general", "ann", false),
                change("general", "cy", true),
                change("x", "ann", true)
            ]
        );
        // A room it stops listing is left by everyone it had there.
        assert_eq!(
            peers.heartbeat(&beat(7, &[("x", &["ann"])]), now),
            [
                change("general", "bob", false),
                change("general", "cy", false)
            ]
        );
    }

    #[test]
    fn a_silent_server_is_forgotten_with_its_members() {
        let t0 = Instant::now();
        let mut peers = Peers::default();
        peers.heartbeat(&beat(1, &[("general", &["ann"])]), t0);
        peers.heartbeat(&beat(2, &[("general", &["bob"])]), t0);
        assert!(peers.expire(t0 + TIMEOUT / 2, TIMEOUT).is_empty());
        peers.heartbeat(&beat(2, &[("general", &["bob"])]), t0 + TIMEOUT / 2);
        assert_eq!(
            peers.expire(t0 + TIMEOUT, TIMEOUT),
            [change("general", "ann", false)]
        );
        assert_eq!(peers.len(), 1);
        // Back after all: it is new again, its members join again.
        assert_eq!(
            peers.heartbeat(&beat(1, &[("general", &["ann"])]), t0 + TIMEOUT),
            [change("general", "ann", true)]
        );
    }

    #[test]
    fn a_leaving_server_takes_its_members_at_once() {
        let now = Instant::now();
        let mut peers = Peers::default();
        peers.heartbeat(&beat(1, &[("general", &["ann"])]), now);
        let mut leaving = beat(1, &[]);
        leaving.leaving = true;
        assert_eq!(
            peers.heartbeat(&leaving, now),
            [change("general", "ann", false)]
        );
        assert!(peers.is_empty());
    }
}
