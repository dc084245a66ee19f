//! The display name a person chats under: the server's rules mirrored here so the prompt
//! can explain a bad name before anything is sent (`session` remembers the chosen one).

const MAX_CHARS: usize = 32;

/// Trims the input and checks it (letters of any script, like the server); the error text is shown under the name field.
pub fn validate(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("Please enter a name.".into());
    }
    if name.chars().count() > MAX_CHARS {
        return Err(format!("A name can be at most {MAX_CHARS} characters."));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        let what = match bad {
            c if c.is_whitespace() => "Spaces are".to_owned(),
            c => format!("\u{201c}{c}\u{201d} is"),
        };
        return Err(format!("{what} not allowed: use letters, digits, _ - or ."));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_server_alphabet_and_trims() {
        assert_eq!(validate("  a.b_c-9 ").as_deref(), Ok("a.b_c-9"));
        assert!(validate(&"x".repeat(32)).is_ok());
    }

    #[test]
    fn rejects_empty_long_and_odd_chars() {
        assert!(validate("   ").is_err());
        assert!(validate(&"x".repeat(33)).is_err());
        assert!(validate("bob smith").is_err());
        assert!(validate("<b>").is_err());
    }
}
