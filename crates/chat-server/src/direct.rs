//! Direct messages: a private conversation between two accounts. Each of the two names it
//! `@peer` (relative to themselves), so nobody can name the conversation of two others:
//! `@bob` from carol is carol's own with bob. Inside, the store, hub, bus and fan-out know
//! it by one key for both, `@A@B` with the two registered names sorted, which no room
//! name can be (rooms are `[A-Za-z0-9_-]`) and no client can ask for (a name has no `@`).
//! Who may read what is `room_access`'s rule.
use chat_proto::names::MAX_CHARS as MAX_NAME_CHARS;

/// What starts a conversation's name, as a client asks for it and as it is kept.
pub const PREFIX: char = '@';

/// The longest key: two names of 32 characters of up to four bytes, two prefixes.
pub const MAX_KEY_BYTES: usize = 2 + 2 * 4 * MAX_NAME_CHARS;

/// Whether `room` (a kept name, or one a client asked for) is a conversation.
pub fn is_direct(room: &str) -> bool {
    room.starts_with(PREFIX)
}

/// The conversation of the accounts registered as `a` and `b`, as it is kept.
pub fn key(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("{PREFIX}{first}{PREFIX}{second}")
}

/// The two names of a kept conversation.
pub fn members(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(PREFIX)?.split_once(PREFIX)
}

/// How `me` names the conversation `key` (`@peer`), if it is one of theirs.
pub fn as_seen_by(key: &str, me: &str) -> Option<String> {
    match members(key)? {
        (a, b) if a == me => Some(format!("{PREFIX}{b}")),
        (a, b) if b == me => Some(format!("{PREFIX}{a}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_for_both_and_each_sees_the_other() {
        let k = key("bob", "alice");
        assert_eq!(k, key("alice", "bob"));
        assert_eq!(k, "@alice@bob");
        assert_eq!(members(&k), Some(("alice", "bob")));
        assert_eq!(as_seen_by(&k, "alice").as_deref(), Some("@bob"));
        assert_eq!(as_seen_by(&k, "bob").as_deref(), Some("@alice"));
        assert_eq!(as_seen_by(&k, "carol"), None);
        assert_eq!(
            as_seen_by(&key("ann", "ann"), "ann").as_deref(),
            Some("@ann")
        );
        assert!(is_direct(&k) && !is_direct("general"));
        let longest = "𠀀".repeat(MAX_NAME_CHARS);
        assert_eq!(key(&longest, &longest).len(), MAX_KEY_BYTES);
    }
}
