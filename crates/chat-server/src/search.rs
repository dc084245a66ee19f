//! Full-text search of a room: what a query means, and where its words are in a hit.
//!
//! Both stores index words the same way: a word is a run of letters and digits, compared
//! without case and never stemmed (a chat mixes languages, and a stemmer fits one). The
//! query is cut into words here, so neither engine ever parses what a person typed
//! (no FTS5 or tsquery syntax gets through), and the highlights are found here too, in
//! the text as it is now, as byte ranges a client marks without parsing any markup.
use chat_proto::{MessageResponse, SearchHit, TextRange};

use crate::error::ChatError;

/// Most characters a query may have.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most words a query may have: each is one more posting list the engine intersects.
pub const MAX_QUERY_WORDS: usize = 16;
pub const DEFAULT_SEARCH_PAGE: usize = 20;
pub const MAX_SEARCH_PAGE: usize = 100;

/// A query as the stores run it: its distinct words, lowercased, in the order typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    words: Vec<String>,
}

impl SearchQuery {
    pub fn parse(query: &str) -> Result<Self, ChatError> {
        let chars = query.chars().count();
        if chars > MAX_QUERY_CHARS {
            return Err(ChatError::SearchTooLong(chars));
        }
        let mut words: Vec<String> = Vec::new();
        for (start, end) in word_spans(query) {
            let word = query[start..end].to_lowercase();
            if !words.contains(&word) {
                words.push(word);
            }
        }
        if words.is_empty() {
            return Err(ChatError::SearchEmpty);
        }
        if words.len() > MAX_QUERY_WORDS {
            return Err(ChatError::SearchTooManyWords(words.len()));
        }
        Ok(SearchQuery { words })
    }

    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// An FTS5 MATCH expression: every word as a quoted string, all required. A word is
    /// letters and digits only, so it holds no quote to escape.
    pub fn fts5(&self) -> String {
        let quoted: Vec<String> = self.words.iter().map(|w| format!("\"{w}\"")).collect();
        quoted.join(" ")
    }

    /// The words for PostgreSQL's `plainto_tsquery`, which requires them all.
    pub fn plain(&self) -> String {
        self.words.join(" ")
    }

    /// Where the query's words occur in `text`, in order.
    pub fn matches(&self, text: &str) -> Vec<TextRange> {
        word_spans(text)
            .filter(|&(start, end)| {
                let word = text[start..end].to_lowercase();
                self.words.contains(&word)
            })
            .map(|(start, end)| TextRange {
                start: start as u32,
                end: end as u32,
            })
            .collect()
    }

    /// The search answer for `messages` (newest first), each with its highlights.
    pub fn hits(&self, messages: Vec<MessageResponse>) -> Vec<SearchHit> {
        messages
            .into_iter()
            .map(|message| SearchHit {
                matches: self.matches(&message.text),
                message: Some(message),
            })
            .collect()
    }
}

/// Byte spans of the words of `text`: maximal runs of letters and digits.
fn word_spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, _) = chars.find(|(_, c)| c.is_alphanumeric())?;
        let mut end = text.len();
        while let Some(&(at, c)) = chars.peek() {
            if !c.is_alphanumeric() {
                end = at;
                break;
            }
            chars.next();
        }
        Some((start, end))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(query: &str, text: &str) -> Vec<(u32, u32)> {
        SearchQuery::parse(query)
            .unwrap()
            .matches(text)
            .iter()
            .map(|r| (r.start, r.end))
            .collect()
    }

    #[test]
    fn words_are_runs_of_letters_and_digits_lowercased_once_each() {
        let q = SearchQuery::parse("  Hello, WORLD! hello  x2 ").unwrap();
        assert_eq!(q.words(), ["hello", "world", "x2"]);
        assert_eq!(q.fts5(), r#""hello" "world" "x2""#);
        assert_eq!(q.plain(), "hello world x2");
    }

    #[test]
    fn query_syntax_is_never_passed_through() {
        let q = SearchQuery::parse(r#"a" OR NEAR(b* -c) "#).unwrap();
        assert_eq!(q.fts5(), r#""a" "or" "near" "b" "c""#);
    }

    #[test]
    fn bad_queries_are_refused_in_words() {
        assert_eq!(SearchQuery::parse(""), Err(ChatError::SearchEmpty));
        assert_eq!(SearchQuery::parse(" ?! -- "), Err(ChatError::SearchEmpty));
        let long = "a".repeat(MAX_QUERY_CHARS + 1);
        assert_eq!(
            SearchQuery::parse(&long),
            Err(ChatError::SearchTooLong(MAX_QUERY_CHARS + 1))
        );
        let many: Vec<String> = (0..=MAX_QUERY_WORDS).map(|i| format!("w{i}")).collect();
        assert_eq!(
            SearchQuery::parse(&many.join(" ")),
            Err(ChatError::SearchTooManyWords(MAX_QUERY_WORDS + 1))
        );
    }

    #[test]
    fn matches_are_whole_words_in_byte_ranges() {
        assert_eq!(
            ranges("cat", "Cat, concat; CAT's cats cat"),
            [(0, 3), (13, 16), (24, 27)]
        );
        // Multi-byte text: ranges stay on character boundaries.
        let text = "Ünïcode wörd — Wörd!";
        let found = ranges("WÖRD", text);
        assert_eq!(found.len(), 2);
        for (start, end) in found {
            assert_eq!(text[start as usize..end as usize].to_lowercase(), "wörd");
        }
        assert!(ranges("dog", "hotdog dogs").is_empty());
    }
}
