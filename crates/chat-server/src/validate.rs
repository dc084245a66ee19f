//! Input rules for names, rooms and message text. Kept apart from the handlers so the
//! same rules serve SendMessage, Broadcast and Subscribe, and are unit-tested alone. The
//! name rule itself is `chat_proto::names`, shared with the CLI and the page.
use chat_proto::names;

use crate::error::ChatError;

/// Characters of a name's NFKC form (the shared rule's bound).
pub use chat_proto::names::MAX_CHARS as MAX_NAME_CHARS;
pub const MAX_CLIENT_MSG_ID_CHARS: usize = 64;
pub const MAX_ROOM_CHARS: usize = 32;
pub const MAX_TEXT_BYTES: usize = 4096;
pub const DEFAULT_ROOM: &str = "general";

/// A username by the shared rule (1-32 letters of one script, digits, `_`, `-`, `.`);
/// returns the form to show and store: trimmed, NFKC.
pub fn username(name: &str) -> Result<String, ChatError> {
    Ok(names::display_form(name)?)
}

/// A room name: empty means `general`; otherwise 1-32 of `[A-Za-z0-9_-]`.
pub fn room(room: &str) -> Result<&str, ChatError> {
    if room.is_empty() {
        return Ok(DEFAULT_ROOM);
    }
    let chars = room.chars().count();
    if chars > MAX_ROOM_CHARS {
        return Err(ChatError::RoomTooLong(chars));
    }
    if !room
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        return Err(ChatError::RoomInvalid(room.to_owned()));
    }
    Ok(room)
}

/// A client message id: empty means none; otherwise 1-64 characters of printable ASCII
/// (space to `~`), enough for a UUID or a counter with a prefix.
pub fn client_msg_id(id: &str) -> Result<Option<&str>, ChatError> {
    if id.is_empty() {
        return Ok(None);
    }
    if !id.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(ChatError::ClientMsgIdInvalid);
    }
    // ASCII from here, so bytes are characters.
    if id.len() > MAX_CLIENT_MSG_ID_CHARS {
        return Err(ChatError::ClientMsgIdTooLong(id.len()));
    }
    Ok(Some(id))
}

/// Message text: not blank, at most 4 KiB, no control characters but newline and tab.
/// Trailing whitespace is trimmed; leading indentation is kept (code snippets).
pub fn text(text: &str) -> Result<&str, ChatError> {
    let text = text.trim_end();
    if text.trim_start().is_empty() {
        return Err(ChatError::TextEmpty);
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(ChatError::TextTooLong(text.len()));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ChatError::TextControlChars);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_shared_rule() {
        use names::NameError;
        assert_eq!(username(" alice ").as_deref(), Ok("alice"));
        assert_eq!(username("지민_2.3-4").as_deref(), Ok("지민_2.3-4"));
        assert_eq!(username("ＡＮＮ").as_deref(), Ok("ANN"));
        assert_eq!(username("   "), Err(ChatError::Name(NameError::Missing)));
        assert_eq!(
            username(&"a".repeat(33)),
            Err(ChatError::Name(NameError::TooLong(33)))
        );
        assert!(matches!(
            username("\u{430}nn"),
            Err(ChatError::Name(NameError::MixedScripts { .. }))
        ));
    }

    #[test]
    fn rooms() {
        assert_eq!(room(""), Ok("general"));
        assert_eq!(room("dev-ops_2"), Ok("dev-ops_2"));
        assert!(matches!(room("a room"), Err(ChatError::RoomInvalid(_))));
        assert!(matches!(room("é"), Err(ChatError::RoomInvalid(_))));
        assert_eq!(room(&"r".repeat(33)), Err(ChatError::RoomTooLong(33)));
    }

    #[test]
    fn client_msg_ids() {
        assert_eq!(client_msg_id(""), Ok(None));
        let uuid = "0b7e2c1a-5d4f-4c2e-9a51-3f0e8d6b7c21";
        assert_eq!(client_msg_id(uuid), Ok(Some(uuid)));
        assert_eq!(client_msg_id("line 7 ~!"), Ok(Some("line 7 ~!")));
        assert!(client_msg_id(&"x".repeat(64)).is_ok());
        assert_eq!(
            client_msg_id(&"x".repeat(65)),
            Err(ChatError::ClientMsgIdTooLong(65))
        );
        assert_eq!(client_msg_id("a\tb"), Err(ChatError::ClientMsgIdInvalid));
        assert_eq!(client_msg_id("é"), Err(ChatError::ClientMsgIdInvalid));
        assert_eq!(
            client_msg_id(&"é".repeat(40)),
            Err(ChatError::ClientMsgIdInvalid)
        );
    }

    #[test]
    fn texts() {
        assert_eq!(text("  hi there \n"), Ok("  hi there"));
        assert_eq!(text(" \t\n "), Err(ChatError::TextEmpty));
        assert_eq!(text(""), Err(ChatError::TextEmpty));
        assert_eq!(text(&"x".repeat(4096)).map(str::len), Ok(4096));
        assert_eq!(text(&"x".repeat(4097)), Err(ChatError::TextTooLong(4097)));
        assert_eq!(text("a\u{7}b"), Err(ChatError::TextControlChars));
        assert_eq!(text("line1\nline2\tx"), Ok("line1\nline2\tx"));
    }
}
