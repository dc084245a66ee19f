//! What the page has seen of a room: the messages on screen, the newest id and the history
//! epoch those ids belong to. Kept free of I/O and signals so the no-gap/no-duplicate rules
//! can be unit tested: ids only grow within an epoch, so "accept iff id > last_id" dedupes
//! replays, and a new epoch means the old ids are meaningless and everything is dropped.

use chat_proto::MessageResponse;

/// Older messages are dropped past this so a long-open tab does not grow without bound.
const MAX_SHOWN: usize = 500;

#[derive(Clone, Debug, Default)]
pub struct Timeline {
    epoch: u64,
    last_id: u64,
    messages: Vec<MessageResponse>,
}

impl Timeline {
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    pub fn messages(&self) -> &[MessageResponse] {
        &self.messages
    }

    /// A History page (oldest first). A different epoch replaces what was shown; in the
    /// same epoch the page is merged by id, since it may overlap or precede live messages.
    pub fn load_history(&mut self, epoch: u64, page: Vec<MessageResponse>) {
        if epoch != self.epoch {
            self.reset(epoch);
        }
        for message in page {
            if let Err(at) = self.messages.binary_search_by_key(&message.id, |m| m.id) {
                self.last_id = self.last_id.max(message.id);
                self.messages.insert(at, message);
            }
        }
        self.trim();
    }

    /// The Welcome that opens every Subscribe stream.
    pub fn welcome(&mut self, epoch: u64, reset: bool) {
        if reset || epoch != self.epoch {
            self.reset(epoch);
        }
    }

    /// Appends a message unless it was already seen; returns whether it was new.
    pub fn push(&mut self, message: MessageResponse) -> bool {
        if message.id <= self.last_id {
            return false;
        }
        self.last_id = message.id;
        self.messages.push(message);
        self.trim();
        true
    }

    fn trim(&mut self) {
        if self.messages.len() > MAX_SHOWN {
            let excess = self.messages.len() - MAX_SHOWN;
            self.messages.drain(..excess);
        }
    }

    fn reset(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.last_id = 0;
        self.messages.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: u64) -> MessageResponse {
        MessageResponse {
            id,
            text: format!("m{id}"),
            ..Default::default()
        }
    }

    fn ids(t: &Timeline) -> Vec<u64> {
        t.messages().iter().map(|m| m.id).collect()
    }

    #[test]
    fn replay_after_history_is_deduplicated() {
        let mut t = Timeline::default();
        t.load_history(7, vec![msg(1), msg(2), msg(3)]);
        t.welcome(7, false);
        for id in [2, 3, 4, 5] {
            t.push(msg(id));
        }
        assert_eq!(ids(&t), [1, 2, 3, 4, 5]);
        assert_eq!(t.last_id(), 5);
    }

    #[test]
    fn reset_drops_old_epoch_and_takes_replay() {
        let mut t = Timeline::default();
        t.load_history(7, vec![msg(10), msg(11)]);
        t.welcome(9, true);
        assert!(t.messages().is_empty());
        assert_eq!(t.epoch(), 9);
        assert!(t.push(msg(1)));
        assert_eq!(ids(&t), [1]);
    }

    #[test]
    fn late_history_page_merges_under_live_messages() {
        let mut t = Timeline::default();
        t.welcome(7, false);
        t.push(msg(5));
        t.load_history(7, vec![msg(2), msg(3), msg(5)]);
        assert_eq!(ids(&t), [2, 3, 5]);
        assert_eq!(t.last_id(), 5);
        assert!(
            !t.push(msg(4)),
            "older than the newest seen: a replay, not new"
        );
    }

    #[test]
    fn keeps_at_most_max_shown() {
        let mut t = Timeline::default();
        for id in 1..=(MAX_SHOWN as u64 + 10) {
            t.push(msg(id));
        }
        assert_eq!(t.messages().len(), MAX_SHOWN);
        assert_eq!(t.messages()[0].id, 11);
    }
}
