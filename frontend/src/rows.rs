//! The rows of the message list, worked out from the messages alone: a day line where the
//! local date changes, a "new messages" line before the first unread message, and which
//! messages head a group (one sender's run within a few minutes shows name and time once).
//! Recomputed over the whole list on every change, so a page of older messages merged in
//! above regroups with what was shown as if it had always been there.

use chat_proto::MessageResponse;

/// A sender's messages closer together than this share one heading.
const GROUP_GAP_MS: i64 = 5 * 60_000;

/// A message's key in the list: (history epoch, id).
pub type Key = (u64, u64);

/// One message and what goes above it.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub key: Key,
    /// A day line above, for the local day this message's time falls in.
    pub day_line: bool,
    /// The "new messages" line above: the first unread message.
    pub new_line: bool,
    /// Shows the sender and time: the first of a run.
    pub head: bool,
    pub message: MessageResponse,
}

impl Row {
    /// Keyed with what is drawn around the message too, so a row whose heading or line
    /// comes or goes (a page merged in above continues its run) is drawn again.
    /// An edit, delete or reaction changes the key too, so the row is drawn anew.
    pub fn key(&self) -> (Key, bool, bool, bool, u64) {
        (
            self.key,
            self.head,
            self.day_line,
            self.new_line,
            revision(&self.message),
        )
    }
}

/// A fingerprint of what changes can alter in a message (text, edit time, deleted,
/// reactions, the quote of its original): FNV-1a over them.
fn revision(m: &MessageResponse) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut add = |bytes: &[u8]| {
        for b in bytes {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    add(&m.edited_at_ms.to_le_bytes());
    add(&[m.deleted as u8]);
    add(m.text.as_bytes());
    if let Some(q) = &m.quote {
        add(&[q.deleted as u8]);
        add(q.text.as_bytes());
    }
    for r in &m.reactions {
        add(r.emoji.as_bytes());
        for who in &r.usernames {
            add(who.as_bytes());
            add(&[0]);
        }
    }
    hash
}

/// The rows for `messages` (oldest first): the new-messages line goes above the first
/// message after `new_after`; `day_of` gives a time's local day number.
pub fn rows(
    messages: Vec<(Key, MessageResponse)>,
    new_after: Option<Key>,
    day_of: impl Fn(i64) -> i64,
) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::with_capacity(messages.len());
    let mut line_due = new_after;
    let mut day_before = None;
    for (key, message) in messages {
        let day = day_of(message.sent_at_ms);
        let day_line = day_before != Some(day);
        day_before = Some(day);
        let new_line = line_due.is_some_and(|after| key > after);
        if new_line {
            line_due = None;
        }
        let head = day_line
            || new_line
            || out.last().is_none_or(|b| {
                b.message.username != message.username
                    || b.message.guest != message.guest
                    || message.sent_at_ms - b.message.sent_at_ms > GROUP_GAP_MS
            });
        out.push(Row {
            key,
            day_line,
            new_line,
            head,
            message,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const DAY: i64 = 24 * 60 * MIN;

    fn msg(id: u64, user: &str, at: i64) -> (Key, MessageResponse) {
        let m = MessageResponse {
            id,
            username: user.to_owned(),
            sent_at_ms: at,
            ..Default::default()
        };
        ((1, id), m)
    }

    /// The rows as short strings: "day N", "new", "3 head" / "3".
    fn shape(rows: &[Row]) -> Vec<String> {
        let mut out = Vec::new();
        for r in rows {
            if r.day_line {
                out.push(format!("day {}", r.message.sent_at_ms.div_euclid(DAY)));
            }
            if r.new_line {
                out.push("new".to_owned());
            }
            out.push(format!("{}{}", r.key.1, if r.head { " head" } else { "" }));
        }
        out
    }

    fn day_of(ms: i64) -> i64 {
        ms.div_euclid(DAY)
    }

    #[test]
    fn a_run_of_one_sender_within_minutes_shares_a_heading() {
        let t = 10 * DAY;
        let mut guest_ann = msg(5, "ann", t + 9 * MIN);
        guest_ann.1.guest = true;
        let list = vec![
            msg(1, "ann", t),
            msg(2, "ann", t + 4 * MIN),
            msg(3, "bob", t + 5 * MIN),
            msg(4, "ann", t + 6 * MIN),
            // Another "ann": a guest, so maybe someone else.
            guest_ann,
            msg(6, "ann", t + 30 * MIN),
            msg(7, "ann", t + 36 * MIN),
        ];
        assert_eq!(
            shape(&rows(list, None, day_of)),
            ["day 10", "1 head", "2", "3 head", "4 head", "5 head", "6 head", "7 head"]
        );
    }

    #[test]
    fn each_local_day_gets_a_line_and_starts_a_new_group() {
        let list = vec![
            msg(1, "ann", 10 * DAY - MIN),
            msg(2, "ann", 10 * DAY + MIN),
            msg(3, "ann", 10 * DAY + 2 * MIN),
            msg(4, "ann", 12 * DAY),
        ];
        assert_eq!(
            shape(&rows(list, None, day_of)),
            ["day 9", "1 head", "day 10", "2 head", "3", "day 12", "4 head"]
        );
    }

    #[test]
    fn the_new_messages_line_goes_before_the_first_unread_and_heads_it() {
        let t = 10 * DAY;
        let list = || {
            vec![
                msg(1, "ann", t),
                msg(2, "ann", t + MIN),
                msg(3, "ann", t + 2 * MIN),
            ]
        };
        assert_eq!(
            shape(&rows(list(), Some((1, 1)), day_of)),
            ["day 10", "1 head", "new", "2 head", "3"]
        );
        assert_eq!(
            shape(&rows(list(), Some((1, 0)), day_of)),
            ["day 10", "new", "1 head", "2", "3"]
        );
        assert_eq!(
            shape(&rows(list(), Some((1, 3)), day_of)),
            ["day 10", "1 head", "2", "3"],
            "nothing unread, no line"
        );
    }

    #[test]
    fn an_older_page_merged_above_regroups_the_rows_it_meets() {
        let t = 10 * DAY;
        let shown = rows(
            vec![msg(5, "ann", t + 2 * MIN), msg(6, "ann", t + 3 * MIN)],
            None,
            day_of,
        );
        let merged = rows(
            vec![
                msg(4, "ann", t + MIN),
                msg(5, "ann", t + 2 * MIN),
                msg(6, "ann", t + 3 * MIN),
            ],
            None,
            day_of,
        );
        assert_eq!(shape(&shown), ["day 10", "5 head", "6"]);
        assert_eq!(shape(&merged), ["day 10", "4 head", "5", "6"]);
        // Row 5 lost its heading and day line: its key changes, so the list draws it again.
        assert_ne!(shown[0].key(), merged[1].key());
        assert_eq!(shown[1].key(), merged[2].key());
    }
}
