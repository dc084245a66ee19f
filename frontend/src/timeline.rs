//! What the page has seen of a room: the messages on screen, the newest id and the history
//! epoch those ids belong to. Kept free of I/O and signals so the no-gap/no-duplicate rules
//! can be unit tested: ids only grow within an epoch, so "accept iff id > last_id" dedupes
//! replays, and a new epoch means the old ids are meaningless and everything is dropped.
//! Older pages (scrolling up) merge in by id below what is shown.

use chat_proto::{change::Kind, MessageResponse, Reaction};

/// Older messages are dropped past this many (or this many live arrivals after the
/// reader last paged back), so a long-open tab does not grow without bound.
const MAX_SHOWN: usize = 500;

#[derive(Clone, Debug, Default)]
pub struct Timeline {
    epoch: u64,
    last_id: u64,
    messages: Vec<MessageResponse>,
    /// The server holds messages older than the first one shown.
    has_older: bool,
    /// The bound on what is kept, raised when the reader pages back: a page the reader
    /// asked for is not dropped again by the next live arrivals. 0 = `MAX_SHOWN`.
    cap: usize,
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

    pub fn has_older(&self) -> bool {
        self.has_older
    }

    /// The id to page back from: everything shown is newer (0 = the newest).
    pub fn oldest_id(&self) -> u64 {
        self.messages.first().map_or(0, |m| m.id)
    }

    /// A History page (oldest first) and its `has_more`. A different epoch replaces what
    /// was shown; in the same epoch the page is merged by id, since it may overlap or
    /// precede live messages. Only a page reaching below what is shown says whether
    /// anything older remains.
    pub fn load_history(&mut self, epoch: u64, page: Vec<MessageResponse>, has_more: bool) {
        if epoch != self.epoch {
            self.reset(epoch);
        }
        let reaches_below = match (page.first(), self.messages.first()) {
            (Some(first), Some(shown)) => first.id <= shown.id,
            (_, None) => true,
            (None, Some(_)) => false,
        };
        if reaches_below {
            self.has_older = has_more;
        }
        let older_page = reaches_below && !self.messages.is_empty();
        for message in page {
            if let Err(at) = self.messages.binary_search_by_key(&message.id, |m| m.id) {
                self.last_id = self.last_id.max(message.id);
                self.messages.insert(at, message);
            }
        }
        if older_page {
            self.cap = self.messages.len() + MAX_SHOWN;
        }
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

    /// Applies a change event (edit, delete, reaction) to the message it names, if shown;
    /// it takes its id in the sequence either way, so a resume starts after it. Returns
    /// whether anything changed. A deleted message stays deleted whatever comes after.
    pub fn apply(&mut self, event: MessageResponse) -> bool {
        let Some(change) = event.change.as_ref().filter(|_| event.id > self.last_id) else {
            return false;
        };
        self.last_id = event.id;
        let Ok(at) = self
            .messages
            .binary_search_by_key(&change.target_id, |m| m.id)
        else {
            return false;
        };
        let target = &mut self.messages[at];
        if target.deleted {
            return false;
        }
        match change.kind() {
            Kind::Edit => {
                target.text = event.text;
                target.edited_at_ms = event.sent_at_ms;
            }
            Kind::Delete => {
                target.deleted = true;
                target.text.clear();
                target.reactions.clear();
            }
            Kind::React => toggle(
                &mut target.reactions,
                &change.emoji,
                event.username,
                change.on,
            ),
        }
        // A reply quoting the changed message shows the change too.
        let (id, deleted) = (target.id, target.deleted);
        let line = target.text.lines().next().unwrap_or_default().to_owned();
        for reply in self.messages.iter_mut().filter(|m| m.reply_to == id) {
            if let Some(quote) = &mut reply.quote {
                quote.deleted = deleted;
                quote.text = if deleted { String::new() } else { line.clone() };
            }
        }
        true
    }

    /// Drops the oldest past the bound (they can be paged in again).
    fn trim(&mut self) {
        let keep = self.cap.max(MAX_SHOWN);
        if self.messages.len() > keep {
            let excess = self.messages.len() - keep;
            self.messages.drain(..excess);
            self.has_older = true;
        }
    }

    fn reset(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.last_id = 0;
        self.messages.clear();
        self.has_older = false;
        self.cap = 0;
    }
}

/// Sets whether `who` has reacted with `emoji` (`on`), keeping first-use order.
fn toggle(reactions: &mut Vec<Reaction>, emoji: &str, who: String, on: bool) {
    let at = reactions.iter().position(|r| r.emoji == emoji);
    match (at, on) {
        (Some(at), true) if !reactions[at].usernames.contains(&who) => {
            reactions[at].usernames.push(who)
        }
        (None, true) => reactions.push(Reaction {
            emoji: emoji.to_owned(),
            usernames: vec![who],
        }),
        (Some(at), false) => {
            reactions[at].usernames.retain(|n| *n != who);
            if reactions[at].usernames.is_empty() {
                reactions.remove(at);
            }
        }
        _ => {}
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
        t.load_history(7, vec![msg(1), msg(2), msg(3)], false);
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
        t.load_history(7, vec![msg(10), msg(11)], true);
        t.welcome(9, true);
        assert!(t.messages().is_empty());
        assert!(!t.has_older());
        assert_eq!(t.epoch(), 9);
        assert!(t.push(msg(1)));
        assert_eq!(ids(&t), [1]);
    }

    #[test]
    fn late_history_page_merges_under_live_messages() {
        let mut t = Timeline::default();
        t.welcome(7, false);
        t.push(msg(5));
        t.load_history(7, vec![msg(2), msg(3), msg(5)], false);
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
        assert!(t.has_older(), "trimmed ones can be paged in again");
    }

    #[test]
    fn older_pages_merge_below_and_track_has_more() {
        let mut t = Timeline::default();
        t.load_history(7, (101..=150).map(msg).collect(), true);
        assert!(t.has_older());
        assert_eq!(t.oldest_id(), 101);
        t.push(msg(151));
        // The next older page overlaps by one: merged without a duplicate.
        t.load_history(7, (51..=101).map(msg).collect(), true);
        assert_eq!(t.oldest_id(), 51);
        assert_eq!(t.messages().len(), 101);
        t.load_history(7, (1..=50).map(msg).collect(), false);
        assert!(!t.has_older());
        assert_eq!(ids(&t), (1..=151).collect::<Vec<_>>());
        assert_eq!(t.last_id(), 151);
        // Reloading a page adds nothing.
        t.load_history(7, (1..=50).map(msg).collect(), false);
        assert_eq!(t.messages().len(), 151);
    }

    #[test]
    fn paged_in_messages_are_not_trimmed_by_live_ones() {
        let mut t = Timeline::default();
        let newest = MAX_SHOWN as u64 + 100;
        t.load_history(7, (101..=newest).map(msg).collect(), true);
        assert_eq!(t.messages().len(), MAX_SHOWN);
        t.load_history(7, (51..=100).map(msg).collect(), true);
        t.push(msg(newest + 1));
        assert_eq!(t.oldest_id(), 51, "the page just read stays");
        // The bound still holds for what keeps arriving.
        for id in newest + 2..=newest + 1000 {
            t.push(msg(id));
        }
        assert_eq!(t.messages().len(), MAX_SHOWN + 550);
        assert!(t.has_older());
    }

    #[test]
    fn a_gap_fill_above_does_not_touch_has_older() {
        let mut t = Timeline::default();
        t.load_history(7, (51..=100).map(msg).collect(), true);
        t.load_history(7, vec![msg(101), msg(102)], false);
        assert!(t.has_older());
        assert_eq!(t.last_id(), 102);
    }

    fn change(
        id: u64,
        target: u64,
        kind: Kind,
        text: &str,
        who: &str,
        emoji: &str,
        on: bool,
    ) -> MessageResponse {
        MessageResponse {
            id,
            text: text.into(),
            username: who.into(),
            sent_at_ms: id as i64 * 1000,
            change: Some(chat_proto::Change {
                target_id: target,
                kind: kind.into(),
                emoji: emoji.into(),
                on,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn changes_apply_to_their_message_and_advance_the_resume_point() {
        let mut t = Timeline::default();
        t.welcome(1, false);
        t.push(msg(1));
        let mut reply = msg(2);
        reply.reply_to = 1;
        reply.quote = Some(chat_proto::Quote {
            username: "ann".into(),
            text: "m1".into(),
            deleted: false,
        });
        t.push(reply);
        assert!(t.apply(change(3, 1, Kind::Edit, "fixed\nmore", "ann", "", false)));
        assert_eq!(t.messages()[0].text, "fixed\nmore");
        assert_eq!(t.messages()[0].edited_at_ms, 3000);
        assert_eq!(t.messages()[1].quote.as_ref().unwrap().text, "fixed");
        assert!(t.apply(change(4, 1, Kind::React, "", "bob", "👍", true)));
        assert!(t.apply(change(5, 1, Kind::React, "", "cy", "👍", true)));
        assert!(t.apply(change(6, 1, Kind::React, "", "bob", "👍", false)));
        assert_eq!(t.messages()[0].reactions[0].usernames, ["cy"]);
        // Replayed again after a resume: already applied.
        assert!(!t.apply(change(5, 1, Kind::React, "", "cy", "👍", false)));
        assert!(t.apply(change(7, 1, Kind::Delete, "", "ann", "", false)));
        let gone = &t.messages()[0];
        assert!(gone.deleted && gone.text.is_empty() && gone.reactions.is_empty());
        assert!(t.messages()[1].quote.as_ref().unwrap().deleted);
        // Deleted stays deleted; a change to a message not shown only moves the id on.
        assert!(!t.apply(change(8, 1, Kind::Edit, "back", "ann", "", false)));
        assert!(!t.apply(change(9, 99, Kind::Edit, "x", "ann", "", false)));
        assert_eq!(t.last_id(), 9);
        assert!(!t.push(msg(9)), "ids of changes are not reused by messages");
    }
}
