//! Room names: the server's rule (1-32 of A-Z a-z 0-9 _ -) checked here so a typo in the
//! new-room box gets an explanation at once, and the room the person was last in, from the
//! URL hash (so a link or the back button picks a room) or else localStorage. `@NAME` is
//! the person's direct conversation with the account NAME (the server's word on who has
//! one), its name checked by `name`.

const STORAGE_KEY: &str = "chat.room";
const MAX_CHARS: usize = 32;
pub const DEFAULT: &str = "general";

/// Trims the input and checks it; the error text is shown under the new-room field.
pub fn validate(raw: &str) -> Result<String, String> {
    let name = raw.trim().trim_start_matches('#');
    if let Some(peer) = name.strip_prefix('@') {
        return Ok(format!("@{}", crate::name::validate(peer)?));
    }
    if name.is_empty() {
        return Err("Please enter a room name.".into());
    }
    if name.chars().count() > MAX_CHARS {
        return Err(format!(
            "A room name can be at most {MAX_CHARS} characters."
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
    {
        let what = match bad {
            c if c.is_whitespace() => "Spaces are".to_owned(),
            c => format!("\u{201c}{c}\u{201d} is"),
        };
        return Err(format!(
            "{what} not allowed in a room name: use letters a-z, digits, _ or -"
        ));
    }
    Ok(name.to_owned())
}

/// The room named by the URL hash (`#room`, `#@name`), if it is a valid name. The browser
/// percent-encodes a name outside ASCII there.
pub fn from_hash() -> Option<String> {
    let hash = web_sys::window()?.location().hash().ok()?;
    let hash = js_sys::decode_uri_component(&hash).ok()?.as_string()?;
    validate(&hash).ok()
}

/// How a room is titled: `#room`, or `@name` for a conversation.
pub fn title(room: &str) -> String {
    match room.starts_with('@') {
        true => room.to_owned(),
        false => format!("#{room}"),
    }
}

/// Where to go on load: the hash, else the last room, else general.
pub fn initial() -> String {
    from_hash()
        .or_else(|| {
            let saved = crate::session::storage()?.get_item(STORAGE_KEY).ok()??;
            validate(&saved).ok()
        })
        .unwrap_or_else(|| DEFAULT.to_owned())
}

/// Remembers `room` and shows it in the URL hash (a history entry, so Back returns to the
/// previous room; setting the hash the page already has adds nothing).
pub fn remember(room: &str) {
    if let Some(storage) = crate::session::storage() {
        let _ = storage.set_item(STORAGE_KEY, room);
    }
    if let Some(window) = web_sys::window() {
        if from_hash().as_deref() != Some(room) {
            let _ = window.location().set_hash(room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_server_alphabet() {
        assert_eq!(validate(" dev-ops_2 ").as_deref(), Ok("dev-ops_2"));
        assert_eq!(validate("#random").as_deref(), Ok("random"));
        assert!(validate(&"r".repeat(32)).is_ok());
        assert_eq!(validate("#@bob").as_deref(), Ok("@bob"));
        assert_eq!(validate(" @지민 ").as_deref(), Ok("@지민"));
    }

    #[test]
    fn rejects_empty_long_and_odd_chars() {
        assert!(validate("").is_err());
        assert!(validate(&"r".repeat(33)).is_err());
        assert!(validate("two words").unwrap_err().starts_with("Spaces"));
        assert!(
            validate("caf\u{e9}").is_err(),
            "ASCII only, unlike user names"
        );
        assert!(validate("a.b").unwrap_err().contains("\u{201c}.\u{201d}"));
        assert!(validate("@").is_err());
        assert!(validate("@bob smith").unwrap_err().contains("space"));
    }
}
