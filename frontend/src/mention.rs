//! `@name` mentions, as pure text rules so they are unit tested: where one is being typed
//! (for the composer's completion), which names complete it, and where a message mentions
//! the reader (for the highlight and the notification). Names compare by `fold`, the case
//! folding half of the server's key; its look-alike half (TR39 skeletons) would cost the
//! page tens of KB of tables, so `@b0b` does not mention "bob" here though the server
//! holds them as one name.

use crate::markup::pieces;

/// Most names the completion offers at once.
const OFFERED: usize = 8;

/// How two names compare on the page: lowercased (as the server folds case). In the page
/// by the browser's own `toLowerCase`, which spares the wasm Rust's case tables.
pub fn fold(name: &str) -> String {
    #[cfg(target_family = "wasm")]
    return String::from(js_sys::JsString::from(name).to_lower_case());
    #[cfg(not(target_family = "wasm"))]
    name.to_lowercase()
}

/// A character a name may hold: ASCII letters, digits, `_`, `-`, `.`, and any other
/// character but spaces and the common punctuation blocks (Latin-1's symbols and « »,
/// quotes, dashes, ellipsis, CJK and fullwidth punctuation). Unicode's letter tables
/// would weigh more than they decide: a rare symbol right after a mention only leaves it
/// unmarked.
fn name_char(c: char) -> bool {
    match c {
        _ if c.is_ascii() => c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'),
        '\u{a0}'..='\u{bf}' | '\u{d7}' | '\u{f7}' | '\u{2000}'..='\u{206f}' => false,
        '\u{3000}'..='\u{303f}' | '\u{ff01}'..='\u{ff0f}' => false,
        _ => !c.is_whitespace(),
    }
}

/// Whether the text before byte `at` ends in a name character (then an `@` at `at` is part
/// of a word, like an e-mail address, not a mention).
fn in_word(text: &str, at: usize) -> bool {
    text[..at].chars().next_back().is_some_and(name_char)
}

/// The byte ranges of the mentions of `me` (a `fold`ed name) in `text`: an `@` that does not
/// follow a name character, then the name, ending where name characters end. A `.`, `-` or
/// `_` after the name ends the sentence, not the name, unless the name holds it: "@bob."
/// mentions "bob" and "bob." alike.
pub fn find(text: &str, me: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    if me.is_empty() {
        return found;
    }
    let mut from = 0;
    while let Some(at) = text[from..].find('@').map(|i| from + i) {
        let start = at + 1;
        let run = text[start..]
            .find(|c| !name_char(c))
            .map_or(text.len(), |n| start + n);
        from = run.max(start);
        if in_word(text, at) {
            continue;
        }
        let mut name = &text[start..run];
        loop {
            if fold(name) == me {
                found.push((at, start + name.len()));
                break;
            }
            match name.strip_suffix(['.', '-', '_']) {
                Some(shorter) if !shorter.is_empty() => name = shorter,
                _ => break,
            }
        }
    }
    found
}

/// Whether `text` mentions `me` (`fold`ed) where the page shows it as text: not in a code
/// span, not in a link.
pub fn mentions(text: &str, me: &str) -> bool {
    pieces(text)
        .iter()
        .any(|p| !p.style.code && !p.style.link && !find(p.text, me).is_empty())
}

/// The `@name` being typed with the caret at byte `caret`: the byte index of its `@` and
/// what is typed after it (possibly nothing yet).
pub fn typed_at(text: &str, caret: usize) -> Option<(usize, &str)> {
    let before = text.get(..caret)?;
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !name_char(*c))
        .filter(|(_, c)| *c == '@')?
        .0;
    (!in_word(text, start)).then(|| (start, &before[start + 1..]))
}

/// The names to offer for `typed`: those starting with it (by `fold`), in the order given,
/// each once, never `me` (`fold`ed), at most `OFFERED`.
pub fn complete<'a>(
    typed: &str,
    names: impl IntoIterator<Item = &'a String>,
    me: &str,
) -> Vec<String> {
    let typed = fold(typed);
    let mut offered: Vec<(String, String)> = Vec::new();
    for name in names {
        let key = fold(name);
        if key.starts_with(&typed) && key != me && offered.iter().all(|(k, _)| *k != key) {
            offered.push((key, name.clone()));
            if offered.len() == OFFERED {
                break;
            }
        }
    }
    offered.into_iter().map(|(_, name)| name).collect()
}

/// The byte offset in `text` of a position counted in UTF-16 units (how the browser
/// reports a caret), clamped to the text.
pub fn byte_at_utf16(text: &str, units: u32) -> usize {
    let mut left = units as usize;
    for (i, c) in text.char_indices() {
        if left < c.len_utf16() {
            return i;
        }
        left -= c.len_utf16();
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found<'a>(text: &'a str, me: &str) -> Vec<&'a str> {
        find(text, me)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect()
    }

    #[test]
    fn a_mention_is_word_bounded_and_case_blind() {
        assert_eq!(found("hi @Bob, and @bob!", "bob"), ["@Bob", "@bob"]);
        assert_eq!(found("@bob", "bob"), ["@bob"]);
        assert_eq!(found("ask @bob.", "bob"), ["@bob"]);
        assert!(found("@bobby @bo bob@bob.org x@bob", "bob").is_empty());
        assert_eq!(found("@ÉMILE?", "émile"), ["@ÉMILE"]);
        assert_eq!(found("(@émile)", "émile"), ["@émile"]);
        assert_eq!(found("«@émile» @émile… @émile，", "émile").len(), 3);
        assert!(found("@bob", "").is_empty(), "no name, no mention");
    }

    #[test]
    fn names_with_dots_and_dashes_keep_them() {
        assert_eq!(found("cc @a.b-c.", "a.b-c"), ["@a.b-c"]);
        assert_eq!(found("cc @bob.", "bob."), ["@bob."]);
        assert!(found("@a.bc", "a.b").is_empty());
    }

    #[test]
    fn code_and_links_do_not_mention() {
        assert!(mentions("**@Bob** look", "bob"));
        assert!(!mentions("`@bob` is a decorator", "bob"));
        assert!(!mentions("https://x.org/@bob", "bob"));
        assert!(!mentions("mail bob@bob.org", "bob"));
    }

    #[test]
    fn the_name_being_typed_is_the_run_after_an_at_sign() {
        assert_eq!(typed_at("hi @Bo", 6), Some((3, "Bo")));
        assert_eq!(typed_at("hi @", 4), Some((3, "")));
        assert_eq!(typed_at("@émi", "@émi".len()), Some((0, "émi")));
        assert_eq!(typed_at("hi @Bo there", 6), Some((3, "Bo")));
        assert_eq!(typed_at("hi @Bo there", 12), None);
        assert_eq!(typed_at("mail bob@x", 10), None);
        assert_eq!(typed_at("plain", 5), None);
        assert_eq!(typed_at("é", 1), None, "not a char boundary");
    }

    #[test]
    fn completion_offers_each_matching_name_once_but_not_mine() {
        let names: Vec<String> = ["Bob", "bea", "ann", "bob", "Ben", "me"]
            .map(String::from)
            .into();
        assert_eq!(complete("b", &names, "me"), ["Bob", "bea", "Ben"]);
        assert_eq!(complete("BO", &names, "me"), ["Bob"]);
        assert_eq!(complete("", &names, "me"), ["Bob", "bea", "ann", "Ben"]);
        assert!(complete("m", &names, "me").is_empty());
        let many: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
        assert_eq!(complete("u", &many, "").len(), OFFERED);
    }

    #[test]
    fn utf16_positions_map_to_bytes() {
        let text = "a😀é@b";
        assert_eq!(byte_at_utf16(text, 1), 1);
        assert_eq!(byte_at_utf16(text, 3), 5);
        assert_eq!(byte_at_utf16(text, 4), 7);
        assert_eq!(byte_at_utf16(text, 99), text.len());
    }
}
