//! The one rule for names, used alike by the server, the CLI and the page: which strings
//! are names, and which names belong to the same person. A name is shown in its NFKC form;
//! two names are the same person when their keys are equal, the key being the Unicode
//! TR39 confusable skeleton of the case-folded NFKC form, so "аnn" (Cyrillic а) is "ann",
//! "ÉMILE" is "émile" and "ﬀ" is "ff". Names mixing scripts are refused outright (TR39
//! mixed-script detection): a name that mixes them is nearly always passing for another.
use std::fmt;

use caseless::Caseless;
use unicode_normalization::{char::is_combining_mark, UnicodeNormalization};
use unicode_security::{mixed_script::AugmentedScriptSet, skeleton};

/// Longest name, in characters (code points) of its NFKC form.
pub const MAX_CHARS: usize = 32;

/// A valid name: the form everyone sees, and the key it is held under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    display: String,
    key: String,
}

impl Name {
    /// Checks `raw` against every rule (see [`display_form`]) and computes its key.
    pub fn parse(raw: &str) -> Result<Name, NameError> {
        let display = display_form(raw)?;
        let key = key(&display);
        Ok(Name { display, key })
    }

    /// Trimmed and in NFKC: what is shown, stored, and sent back to clients.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Equal for exactly the names that are the same person.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn into_display(self) -> String {
        self.display
    }
}

/// Checks `raw` against every rule and returns the form to show: trimmed, then NFKC, so
/// "Ｊｏ" (fullwidth) is shown as "Jo" and "ﬀ" as "ff", and nobody can look different from
/// the person their key says they are. 1 to [`MAX_CHARS`] characters of that form, each a
/// letter or digit of any script (accents and other marks after one), `_`, `-` or `.`,
/// all letters of one script. Leaves out the key, whose confusables table is the
/// heaviest part of the rule: a client checking a name before sending it needs no key.
pub fn display_form(raw: &str) -> Result<String, NameError> {
    let normalized: String = raw.nfkc().collect();
    let name = normalized.trim();
    let chars = name.chars().count();
    if chars == 0 {
        return Err(NameError::Missing);
    }
    if chars > MAX_CHARS {
        return Err(NameError::TooLong(chars));
    }
    let mut after_base = false;
    for c in name.chars() {
        let found = if c.is_whitespace() {
            Some(Found::Space)
        } else if c.is_control() {
            Some(Found::Control)
        } else if invisible(c) {
            // Checked before letters: the Hangul fillers are letters that show nothing.
            Some(Found::Invisible(c))
        } else if c.is_alphanumeric() || (after_base && is_combining_mark(c)) {
            after_base = true;
            None
        } else if matches!(c, '_' | '-' | '.') {
            after_base = false;
            None
        } else {
            Some(Found::Other(c))
        };
        if let Some(found) = found {
            return Err(NameError::BadCharacter {
                name: name.to_owned(),
                found,
            });
        }
    }
    if let Some(scripts) = mixed_scripts(name) {
        return Err(NameError::MixedScripts {
            name: name.to_owned(),
            scripts,
        });
    }
    Ok(name.to_owned())
}

/// The key `name` is held under: the TR39 skeleton of its case-folded (full Unicode case
/// folding: "ß" is "ss") NFKC form, folded once more because some of the skeleton's
/// prototypes are capitals ("0" becomes "O", which must meet the "o" of "bob"). Folding
/// first makes every case of a name one person; the price is that look-alikes only in
/// capitals (Greek "ΑΝΝ", Latin "ANN") stay apart. Keys come from the Unicode tables of
/// the crates below: a stored key is recomputed if an update ever changes them.
pub fn key(name: &str) -> String {
    let folded: String = name.nfkc().default_case_fold().collect();
    skeleton(&folded).default_case_fold().collect()
}

/// The rule for names typed in ASCII, which needs none of Unicode's tables (NFKC leaves
/// ASCII alone, and it is all one script): exactly [`display_form`]'s answer, in its
/// words, for those; any other name passes, for whoever holds the whole rule to judge.
/// The page checks with this as the person types and leaves the rest to the server's
/// answer to Join: the whole rule's tables would add about 65 KB (brotli) to the page.
pub fn check_typed(raw: &str) -> Result<(), NameError> {
    let name = raw.trim();
    if !name.is_ascii() {
        return Ok(());
    }
    if name.is_empty() {
        return Err(NameError::Missing);
    }
    if name.len() > MAX_CHARS {
        return Err(NameError::TooLong(name.len()));
    }
    let found = name.chars().find_map(|c| match c {
        c if c.is_whitespace() => Some(Found::Space),
        c if c.is_ascii_control() => Some(Found::Control),
        c if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') => None,
        c => Some(Found::Other(c)),
    });
    match found {
        Some(found) => Err(NameError::BadCharacter {
            name: name.to_owned(),
            found,
        }),
        None => Ok(()),
    }
}

/// Unicode's Default_Ignorable_Code_Point: characters that show nothing (zero-width
/// spaces and joiners, direction marks, variation selectors, fillers, tags). Written out
/// because the crates keep their copy private and the next best, TR39's identifier
/// types, is a 60 KB table the page would carry; a test checks this list against
/// unicode-security's for every character.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}'..='\u{1160}' | '\u{17b4}'..='\u{17b5}'
        | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
        | '\u{ffa0}' | '\u{fff0}'..='\u{fff8}' | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}' | '\u{e0000}'..='\u{e0fff}')
}

/// The two scripts a name mixes, the one most of its letters use first; `None` when all
/// its letters share a script, Japanese (Han, Hiragana, Katakana) and Korean (Han,
/// Hangul) counting as one (TR39's augmented script sets). Digits and `_-.` belong to
/// every script.
fn mixed_scripts(name: &str) -> Option<(&'static str, &'static str)> {
    let mut shared = AugmentedScriptSet::default();
    for c in name.chars() {
        let own = AugmentedScriptSet::for_char(c);
        let mut next = shared;
        next.intersect_with(own);
        if next.is_empty() {
            let users = |set: AugmentedScriptSet| {
                name.chars()
                    .map(AugmentedScriptSet::for_char)
                    .filter(|of| !of.is_all())
                    .filter(|of| {
                        let mut both = *of;
                        both.intersect_with(set);
                        !both.is_empty()
                    })
                    .count()
            };
            let (first, second) = match users(own) > users(shared) {
                true => (own, shared),
                false => (shared, own),
            };
            return Some((script_name(first), script_name(second)));
        }
        shared = next;
    }
    None
}

/// A readable name for a non-empty script set: its first script, or the writing system
/// when only the augmented part is left (Hiragana and Katakana share none but Japanese).
fn script_name(set: AugmentedScriptSet) -> &'static str {
    match set.base.iter().next() {
        Some(script) => script.full_name(),
        None if set.jpan => "Japanese",
        None if set.kore => "Korean",
        None => "Han",
    }
}

/// The character that broke the rule of allowed characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Space,
    Control,
    /// A character that shows nothing (zero-width, a filler, a direction mark...).
    Invisible(char),
    Other(char),
}

/// Why a string is not a name; its `Display` is the message for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Missing,
    /// Characters of the NFKC form.
    TooLong(usize),
    BadCharacter {
        name: String,
        found: Found,
    },
    MixedScripts {
        name: String,
        scripts: (&'static str, &'static str),
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Missing => write!(f, "username is required"),
            NameError::TooLong(chars) => write!(
                f,
                "username is too long ({chars} characters); at most {MAX_CHARS} are allowed"
            ),
            NameError::BadCharacter { name, found } => {
                write!(f, "username {name:?} contains ")?;
                match found {
                    Found::Space => write!(f, "a space")?,
                    Found::Control => write!(f, "a control character")?,
                    Found::Invisible(c) => {
                        write!(f, "an invisible character (U+{:04X})", *c as u32)?
                    }
                    Found::Other(c) => write!(f, "{c:?}")?,
                }
                write!(f, "; it may only contain letters, digits, '_', '-' and '.'")
            }
            NameError::MixedScripts {
                name,
                scripts: (first, second),
            } => write!(
                f,
                "username {name:?} mixes {first} and {second} letters; use letters of one script"
            ),
        }
    }
}

impl std::error::Error for NameError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        key(a) == key(b)
    }

    fn message(raw: &str) -> String {
        display_form(raw).unwrap_err().to_string()
    }

    #[test]
    fn look_alikes_are_the_same_person() {
        // Refused anyway for mixing scripts; the key alone says it is ann.
        assert!(same("ann", "\u{430}nn"), "Cyrillic а");
        // All Cyrillic, so a valid name, and still the same person as the Latin one.
        assert_eq!(
            display_form("\u{440}\u{43e}\u{440}").map(|n| key(&n)),
            Ok(key("pop"))
        );
        assert!(same("Émile", "émile"));
        assert!(same("ÉMILE", "émile"));
        assert!(same("E\u{301}mile", "émile"), "decomposed accent");
        assert!(same("\u{fb00}", "ff"), "ligature");
        assert!(same("Straße", "STRASSE"), "full case folding");
        assert!(same("ＡＮＮ", "ann"), "fullwidth");
        assert!(same("paypal", "paypa1"), "digit one and letter l");
        assert!(same("rn", "m"));
        assert!(same("b0b", "BOB"), "a prototype in capitals is folded too");
    }

    #[test]
    fn different_names_stay_different() {
        assert!(!same("ann", "anne"));
        assert!(!same("émile", "emile"));
        assert!(!same("bob", "bo_b"));
    }

    #[test]
    fn display_is_trimmed_nfkc_and_keeps_case() {
        let name = Name::parse("  E\u{301}mile ").unwrap();
        assert_eq!(name.display(), "\u{c9}mile");
        assert_eq!(display_form("\u{fb00}"), Ok("ff".to_owned()));
        assert_eq!(display_form("ＡＮＮ"), Ok("ANN".to_owned()));
        assert_eq!(display_form("x_1.y-2"), Ok("x_1.y-2".to_owned()));
        assert_eq!(display_form("___"), Ok("___".to_owned()));
    }

    #[test]
    fn mixed_scripts_are_refused_with_the_scripts_named() {
        assert_eq!(
            message("\u{430}nn"),
            "username \"\u{430}nn\" mixes Latin and Cyrillic letters; use letters of one script"
        );
        assert_eq!(
            display_form("\u{3b1}\u{3b2}c"),
            Err(NameError::MixedScripts {
                name: "\u{3b1}\u{3b2}c".into(),
                scripts: ("Greek", "Latin")
            })
        );
        assert!(matches!(
            display_form("日本a"),
            Err(NameError::MixedScripts { .. })
        ));
        assert!(matches!(
            display_form("あ한"),
            Err(NameError::MixedScripts { .. })
        ));
    }

    #[test]
    fn one_script_with_digits_and_punctuation_is_accepted() {
        for name in ["山田はなこ", "ヤマダ_花子2"] {
            assert_eq!(
                display_form(name).as_deref(),
                Ok(name),
                "Japanese is one script"
            );
        }
        for name in ["지민_2", "Ολυμπία", "Владимир-1", "नमस्ते", "مريم"]
        {
            assert!(display_form(name).is_ok(), "{name}");
        }
        assert!(display_form("지민x").is_err());
    }

    #[test]
    fn lengths_are_characters_of_the_nfkc_form() {
        assert!(
            display_form(&"é".repeat(32)).is_ok(),
            "32 characters, 64 bytes"
        );
        assert_eq!(display_form(&"a".repeat(33)), Err(NameError::TooLong(33)));
        // One character typed, two after NFKC.
        assert!(display_form(&"\u{fb00}".repeat(16)).is_ok());
        assert_eq!(
            display_form(&"\u{fb00}".repeat(17)),
            Err(NameError::TooLong(34))
        );
        assert_eq!(display_form("   "), Err(NameError::Missing));
        assert_eq!(display_form(""), Err(NameError::Missing));
    }

    #[test]
    fn check_typed_refuses_only_what_the_whole_rule_refuses_in_its_words() {
        let typed = [
            "ann",
            " ann ",
            "a b",
            "a.b_c-9",
            "<b>",
            "",
            "  ",
            "a\tb",
            "a\u{7}b",
            "Émile",
            "\u{430}nn",
            "a\u{200b}b",
            "\u{fb00}",
            "日本a",
            "x y\u{430}",
            "ann!",
        ];
        let long = [
            "a".repeat(32),
            "a".repeat(33),
            "é".repeat(33),
            "a b".repeat(20),
            "é b".repeat(20),
        ];
        for raw in typed.iter().copied().chain(long.iter().map(String::as_str)) {
            let whole = display_form(raw);
            match check_typed(raw) {
                Err(err) => assert_eq!(whole, Err(err), "{raw:?}"),
                Ok(()) if raw.is_ascii() => assert!(whole.is_ok(), "{raw:?}"),
                Ok(()) => {}
            }
        }
        assert!(
            check_typed("\u{430}nn").is_ok(),
            "scripts are the whole rule's to judge"
        );
    }

    #[test]
    fn invisible_is_unicodes_default_ignorable() {
        // The skeleton drops exactly the default ignorable characters (TR39), and no
        // other character decomposes into nothing but those.
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let dropped = skeleton(c.encode_utf8(&mut [0; 4])).next().is_none();
            assert_eq!(invisible(c), dropped, "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn spaces_controls_invisibles_and_symbols_are_refused() {
        let found = |raw: &str| match display_form(raw) {
            Err(NameError::BadCharacter { found, .. }) => Some(found),
            _ => None,
        };
        assert_eq!(found("a b"), Some(Found::Space));
        assert_eq!(found("a\u{3000}b"), Some(Found::Space));
        assert_eq!(found("a\u{7}b"), Some(Found::Control));
        // The Hangul fillers are letters that show nothing.
        for invisible in [
            '\u{200b}', '\u{200d}', '\u{ad}', '\u{202e}', '\u{3164}', '\u{115f}',
        ] {
            assert!(
                matches!(found(&format!("an{invisible}n")), Some(Found::Invisible(_))),
                "U+{:04X}",
                invisible as u32
            );
        }
        assert_eq!(found("ann\u{fe0f}"), Some(Found::Invisible('\u{fe0f}')));
        assert_eq!(found("<b>"), Some(Found::Other('<')));
        assert_eq!(
            found("\u{301}a"),
            Some(Found::Other('\u{301}')),
            "a mark on nothing"
        );
        assert_eq!(found("a\u{1f600}"), Some(Found::Other('\u{1f600}')));
        assert_eq!(
            message("a b"),
            "username \"a b\" contains a space; it may only contain letters, digits, '_', '-' and '.'"
        );
        assert!(message("a\u{200b}b").contains("an invisible character (U+200B)"));
    }
}
