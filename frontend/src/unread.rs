//! Unread counts per room, from two numbers: the room's newest id (ListRooms) and the
//! newest id the person has seen there, remembered in localStorage so a reload or a later
//! visit still knows. Ids only mean something within one history epoch, so a new epoch
//! starts over. On the first look at a server everything already there counts as read
//! (a newcomer is not greeted by thousands of "unread"); rooms created after that count
//! from their first message.

const STORAGE_KEY: &str = "chat.seen";

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Unread {
    /// The epoch `seen` belongs to; None until the first room list.
    epoch: Option<u64>,
    seen: Vec<(String, u64)>,
}

impl Unread {
    /// Takes a room list (`(name, last_id)`). The `current` room is on screen, so read.
    pub fn observe<'a>(
        &mut self,
        epoch: u64,
        rooms: impl Iterator<Item = (&'a str, u64)> + Clone,
        current: &str,
    ) {
        if self.epoch != Some(epoch) {
            self.epoch = Some(epoch);
            self.seen = rooms.clone().map(|(r, id)| (r.to_owned(), id)).collect();
        }
        if let Some((_, id)) = rooms.into_iter().find(|(r, _)| *r == current) {
            self.mark_read(epoch, current, id);
        }
    }

    /// The person has seen `room` up to `id` (in `epoch`); whether that is news.
    pub fn mark_read(&mut self, epoch: u64, room: &str, id: u64) -> bool {
        if self.epoch != Some(epoch) {
            return false; // ids of another epoch: the next room list starts over anyway
        }
        match self.seen.iter_mut().find(|(r, _)| r == room) {
            Some(entry) if entry.1 >= id => false,
            Some(entry) => {
                entry.1 = id;
                true
            }
            None => {
                self.seen.push((room.to_owned(), id));
                true
            }
        }
    }

    /// Messages in `room` newer than what was seen there.
    pub fn count(&self, room: &str, last_id: u64) -> u64 {
        last_id.saturating_sub(self.seen(room).map_or(0, |s| s.1))
    }

    /// (epoch, newest id seen) in `room`; None before the first room list.
    pub fn seen(&self, room: &str) -> Option<(u64, u64)> {
        let id = self.seen.iter().find(|(r, _)| r == room).map_or(0, |e| e.1);
        self.epoch.map(|epoch| (epoch, id))
    }

    /// One line per room after the epoch; room names never hold spaces or newlines.
    pub fn encode(&self) -> String {
        let mut out = self.epoch.map_or(String::new(), |e| e.to_string());
        for (room, id) in &self.seen {
            out.push_str(&format!("\n{room} {id}"));
        }
        out
    }

    /// Anything unreadable is dropped: the worst case is a fresh start.
    pub fn decode(text: &str) -> Self {
        let mut lines = text.lines();
        let Some(epoch) = lines.next().and_then(|e| e.parse().ok()) else {
            return Unread::default();
        };
        let seen = lines
            .filter_map(|line| {
                let (room, id) = line.split_once(' ')?;
                Some((room.to_owned(), id.parse().ok()?))
            })
            .collect();
        Unread {
            epoch: Some(epoch),
            seen,
        }
    }

    // Called from the room list and the feed: one copy, not one inlined into each.
    #[inline(never)]
    pub fn load() -> Self {
        crate::session::storage()
            .and_then(|s| s.get_item(STORAGE_KEY).ok()?)
            .map_or_else(Unread::default, |text| Unread::decode(&text))
    }

    pub fn save(&self) {
        if let Some(storage) = crate::session::storage() {
            let _ = storage.set_item(STORAGE_KEY, &self.encode());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list<'a>(
        rooms: &'a [(&'static str, u64)],
    ) -> impl Iterator<Item = (&'static str, u64)> + Clone + 'a {
        rooms.iter().copied()
    }

    #[test]
    fn first_look_is_all_read_then_counts_new_messages() {
        let mut u = Unread::default();
        u.observe(5, list(&[("general", 40), ("dev", 7)]), "general");
        assert_eq!(u.count("dev", 7), 0);
        u.observe(
            5,
            list(&[("general", 45), ("dev", 10), ("new", 3)]),
            "general",
        );
        assert_eq!(u.count("general", 45), 0, "the current room is read");
        assert_eq!(u.count("dev", 10), 3);
        assert_eq!(
            u.count("new", 3),
            3,
            "a room created later counts from its start"
        );
    }

    #[test]
    fn visiting_a_room_reads_it() {
        let mut u = Unread::default();
        u.observe(5, list(&[("general", 1), ("dev", 1)]), "general");
        u.observe(5, list(&[("general", 1), ("dev", 4)]), "general");
        u.mark_read(5, "dev", 4);
        assert_eq!(u.count("dev", 4), 0);
        u.mark_read(5, "dev", 2);
        assert_eq!(u.count("dev", 4), 0, "never goes back");
        assert_eq!(u.seen("dev"), Some((5, 4)));
        assert_eq!(
            u.seen("elsewhere"),
            Some((5, 0)),
            "a room never seen: all of it is new"
        );
        assert_eq!(
            Unread::default().seen("dev"),
            None,
            "a first look: nothing is new"
        );
    }

    #[test]
    fn a_new_epoch_starts_over_and_old_ids_are_ignored() {
        let mut u = Unread::default();
        u.observe(5, list(&[("general", 100)]), "dev");
        u.mark_read(6, "general", 3);
        assert_eq!(u.count("general", 100), 0);
        u.observe(6, list(&[("general", 2)]), "dev");
        assert_eq!(u.count("general", 2), 0);
        assert_eq!(u.count("general", 5), 3);
    }

    #[test]
    fn survives_storage_round_trip_and_garbage() {
        let mut u = Unread::default();
        u.observe(9, list(&[("general", 4), ("a-b_c", 12)]), "general");
        assert_eq!(Unread::decode(&u.encode()), u);
        assert_eq!(Unread::decode("not a number\nx 1"), Unread::default());
        assert_eq!(Unread::decode("3\nok 2\nbroken"), Unread::decode("3\nok 2"));
    }
}
