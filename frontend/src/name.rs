//! The display name a person chats under, checked by the server's own rule
//! (`chat_proto::names`) before anything is sent, so a bad name typed in ASCII is
//! explained at once, in the server's words (`session` remembers the chosen one). Other
//! names go to the server as typed and its answer to Join explains a refusal: the whole
//! rule's Unicode tables would make the page about 45% heavier (see `names::check_typed`).

/// The name to send (trimmed), or why it is not one.
pub fn validate(raw: &str) -> Result<String, String> {
    chat_proto::names::check_typed(raw).map_err(|err| err.to_string())?;
    Ok(raw.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn the_servers_rule_and_words() {
        assert_eq!(validate("  a.b_c-9 ").as_deref(), Ok("a.b_c-9"));
        assert!(validate(&"x".repeat(32)).is_ok());
        assert_eq!(validate("   "), Err("username is required".to_owned()));
        assert!(validate(&"x".repeat(33)).is_err());
        assert!(validate("bob smith")
            .unwrap_err()
            .contains("contains a space"));
        assert!(validate("<b>").unwrap_err().contains("contains '<'"));
    }
}
