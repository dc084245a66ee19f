//! The little formatting a message may carry: http(s) links, `code`, **bold** and _italic_.
//! Parsed by hand into pieces of plain text with style flags, never into HTML: the message
//! list builds elements from the pieces, so nothing a person types becomes markup, and the
//! page carries no Markdown or regex crate. Each pass is linear in the text, whatever it
//! holds (a marker left open is shown as typed, not searched for again).

/// How a piece of a message is shown. Flags, not a tree, so overlapping markers
/// (`**a _b** c_`) need no special case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    pub bold: bool,
    pub italic: bool,
    pub code: bool,
    /// The piece is an http(s) URL, to be its own link's target.
    pub link: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece<'a> {
    pub text: &'a str,
    pub style: Style,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Code,
    Link,
    Bold,
    Italic,
}

/// A run of the message: text to show (Text, Code, Link) or a marker that may toggle a style.
#[derive(Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
    can_open: bool,
    can_close: bool,
    /// A marker with a partner; unpaired markers are shown as text.
    paired: bool,
}

/// The message split into what to show and how.
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut tokens = tokenize(text);
    pair_markers(&mut tokens);
    let mut style = Style::default();
    let mut out: Vec<(usize, usize, Style)> = Vec::new();
    for t in tokens {
        let shown = match t.kind {
            Kind::Bold | Kind::Italic if t.paired => {
                if t.kind == Kind::Bold {
                    style.bold = !style.bold;
                } else {
                    style.italic = !style.italic;
                }
                continue;
            }
            Kind::Code => Style {
                code: true,
                ..style
            },
            Kind::Link => Style {
                link: true,
                ..style
            },
            _ => style,
        };
        // Plain runs side by side (text and unpaired markers) become one piece.
        match out.last_mut() {
            Some(last)
                if t.kind != Kind::Link && !shown.code && last.1 == t.start && last.2 == shown =>
            {
                last.1 = t.end
            }
            _ => out.push((t.start, t.end, shown)),
        }
    }
    out.into_iter()
        .filter(|(start, end, _)| end > start)
        .map(|(start, end, style)| Piece {
            text: &text[start..end],
            style,
        })
        .collect()
}

fn tokenize(text: &str) -> Vec<Token> {
    let b = text.as_bytes();
    let mut tokens = Vec::new();
    let mut plain_from = 0;
    // Once a backtick has no partner, none after it has one either: no more searching.
    let mut ticks_left = true;
    let mut i = 0;
    while i < b.len() {
        let (kind, start, end, next, can_open, can_close) = match b[i] {
            b'`' if ticks_left => match b[i + 1..].iter().position(|&c| c == b'`') {
                Some(0) => {
                    i += 2; // `` shows as typed
                    continue;
                }
                Some(n) => (Kind::Code, i + 1, i + 1 + n, i + 2 + n, false, false),
                None => {
                    ticks_left = false;
                    i += 1;
                    continue;
                }
            },
            b'h' | b'H' if !word_byte(b, i.wrapping_sub(1)) => match link_end(b, i) {
                Some(end) => (Kind::Link, i, end, end, false, false),
                None => {
                    i += 1;
                    continue;
                }
            },
            b'*' if b.get(i + 1) == Some(&b'*') && b.get(i + 2) != Some(&b'*') => {
                let open = b.get(i + 2).is_some_and(|c| !c.is_ascii_whitespace());
                let close = i > 0 && b[i - 1] != b'*' && !b[i - 1].is_ascii_whitespace();
                (Kind::Bold, i, i + 2, i + 2, open, close)
            }
            b'*' => {
                // Runs of three or more stars are shown as typed.
                while b.get(i) == Some(&b'*') {
                    i += 1;
                }
                continue;
            }
            b'_' if b.get(i + 1) != Some(&b'_') && (i == 0 || b[i - 1] != b'_') => {
                let next = b.get(i + 1);
                let open = !word_byte(b, i.wrapping_sub(1))
                    && next.is_some_and(|c| !c.is_ascii_whitespace());
                let close = i > 0 && !b[i - 1].is_ascii_whitespace() && !word_byte(b, i + 1);
                (Kind::Italic, i, i + 1, i + 1, open, close)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        // Code's backticks are dropped: the text token before ends at the opening one.
        let plain_to = if kind == Kind::Code { start - 1 } else { start };
        if plain_to > plain_from {
            tokens.push(plain(plain_from, plain_to));
        }
        tokens.push(Token {
            kind,
            start,
            end,
            can_open,
            can_close,
            paired: false,
        });
        plain_from = next;
        i = next;
    }
    if b.len() > plain_from {
        tokens.push(plain(plain_from, b.len()));
    }
    tokens
}

fn plain(start: usize, end: usize) -> Token {
    Token {
        kind: Kind::Text,
        start,
        end,
        can_open: false,
        can_close: false,
        paired: false,
    }
}

/// A letter or digit at `i` (false outside the text). Bytes of non-ASCII characters count
/// as letters, so `café_au_lait` stays as typed.
fn word_byte(b: &[u8], i: usize) -> bool {
    b.get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c >= 0x80)
}

/// Where an http:// or https:// URL starting at `i` ends. It runs to the next space,
/// less trailing punctuation that more likely ends the sentence (and a closing bracket
/// without an opening one inside the URL).
fn link_end(b: &[u8], i: usize) -> Option<usize> {
    let rest = &b[i..];
    let scheme = [&b"http://"[..], &b"https://"[..]]
        .into_iter()
        .find(|s| rest.len() >= s.len() && rest[..s.len()].eq_ignore_ascii_case(s))?
        .len();
    let len = rest
        .iter()
        .position(|c| c.is_ascii_whitespace() || matches!(c, b'<' | b'>' | b'"' | b'`'))
        .unwrap_or(rest.len());
    let url = &rest[..len];
    let mut unmatched = url.iter().filter(|&&c| c == b')').count() as isize
        - url.iter().filter(|&&c| c == b'(').count() as isize;
    let mut end = len;
    while end > scheme {
        match url[end - 1] {
            b'.' | b',' | b':' | b';' | b'!' | b'?' | b'\'' | b'*' | b'_' => end -= 1,
            b')' if unmatched > 0 => {
                unmatched -= 1;
                end -= 1;
            }
            _ => break,
        }
    }
    (end > scheme).then_some(i + end)
}

/// Pairs bold and italic markers left to right: a marker that can close an open one of its
/// kind does, otherwise one that can open does; the rest stay text. One pass, no search.
fn pair_markers(tokens: &mut [Token]) {
    let mut open_bold: Option<usize> = None;
    let mut open_italic: Option<usize> = None;
    for i in 0..tokens.len() {
        let open = match tokens[i].kind {
            Kind::Bold => &mut open_bold,
            Kind::Italic => &mut open_italic,
            _ => continue,
        };
        match *open {
            // Not right after the opener: `****` is not an empty bold.
            Some(at) if tokens[i].can_close && at + 1 < i => {
                tokens[at].paired = true;
                tokens[i].paired = true;
                *open = None;
            }
            None if tokens[i].can_open => *open = Some(i),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Style = Style {
        bold: false,
        italic: false,
        code: false,
        link: false,
    };

    fn show(text: &str) -> Vec<(String, &'static str)> {
        pieces(text)
            .into_iter()
            .map(|p| {
                let s = p.style;
                let how = match (s.bold, s.italic, s.code, s.link) {
                    (false, false, false, false) => "text",
                    (true, false, false, false) => "bold",
                    (false, true, false, false) => "italic",
                    (true, true, false, false) => "bold italic",
                    (false, false, true, false) => "code",
                    (true, false, true, false) => "bold code",
                    (false, false, false, true) => "link",
                    (true, false, false, true) => "bold link",
                    (false, true, false, true) => "italic link",
                    _ => "other",
                };
                (p.text.to_owned(), how)
            })
            .collect()
    }

    fn t(text: &str, how: &'static str) -> (String, &'static str) {
        (text.to_owned(), how)
    }

    /// Shown exactly as typed: one plain piece.
    fn as_typed(text: &str) {
        assert_eq!(
            pieces(text),
            vec![Piece { text, style: PLAIN }],
            "{text:?} should stay as typed"
        );
    }

    #[test]
    fn plain_text_and_html_stay_as_typed() {
        as_typed("hello there");
        as_typed("<script>alert(1)</script>");
        as_typed("<img src=x onerror=alert(1)>");
        as_typed("<a href=\"javascript:alert(1)\">x</a>");
        assert!(pieces("").is_empty());
    }

    #[test]
    fn http_and_https_urls_become_links_without_trailing_punctuation() {
        assert_eq!(
            show("see https://example.com/a_b?c=1&d=**x**."),
            vec![
                t("see ", "text"),
                t("https://example.com/a_b?c=1&d=**x", "link"),
                t("**.", "text"),
            ]
        );
        assert_eq!(
            show("(HTTP://en.wikipedia.org/wiki/Rust_(language)), ok"),
            vec![
                t("(", "text"),
                t("HTTP://en.wikipedia.org/wiki/Rust_(language)", "link"),
                t("), ok", "text"),
            ]
        );
        assert_eq!(
            show("http://a.b\nhttps://c.d"),
            vec![
                t("http://a.b", "link"),
                t("\n", "text"),
                t("https://c.d", "link")
            ]
        );
        assert_eq!(
            show("**https://x.org**"),
            vec![t("https://x.org", "bold link")]
        );
        assert_eq!(
            show("<https://x.org>"),
            vec![t("<", "text"), t("https://x.org", "link"), t(">", "text")]
        );
    }

    #[test]
    fn other_schemes_and_half_urls_stay_text() {
        as_typed("javascript:alert(1)");
        as_typed("JavaScript:alert(document.cookie)");
        as_typed("data:text/html,<script>alert(1)</script>");
        as_typed("vbscript:msgbox(1) file:///etc/passwd ftp://x.org mailto:a@b.c");
        as_typed("xhttps://evil.example");
        as_typed("https:// and http://.");
        as_typed("https:javascript:alert(1)");
        // The scheme is what makes a link: a URL merely mentioning javascript: is http.
        assert_eq!(
            show("https://x.org/?q=javascript:alert(1)"),
            vec![t("https://x.org/?q=javascript:alert(1)", "link")]
        );
    }

    #[test]
    fn code_bold_and_italic() {
        assert_eq!(
            show("run `cargo test` now"),
            vec![
                t("run ", "text"),
                t("cargo test", "code"),
                t(" now", "text")
            ]
        );
        assert_eq!(
            show("**bold** and _italic_"),
            vec![t("bold", "bold"), t(" and ", "text"), t("italic", "italic")]
        );
        assert_eq!(
            show("**bold _both_**"),
            vec![t("bold ", "bold"), t("both", "bold italic")]
        );
        assert_eq!(
            show("**a _b** c_"),
            vec![t("a ", "bold"), t("b", "bold italic"), t(" c", "italic")]
        );
        assert_eq!(show("**`x`**"), vec![t("x", "bold code")]);
    }

    #[test]
    fn nothing_is_formatted_inside_code() {
        assert_eq!(
            show("`**no** _no_ https://x.org <b>`"),
            vec![t("**no** _no_ https://x.org <b>", "code")]
        );
    }

    #[test]
    fn unclosed_and_stray_markers_stay_as_typed() {
        as_typed("**open");
        as_typed("_open");
        as_typed("`open");
        as_typed("open** and close_");
        as_typed("a ** b ** c");
        as_typed("2**3 and 4*5");
        as_typed("****");
        as_typed("***x***");
        as_typed("``");
        as_typed("snake_case_name and __init__ and café_au_lait");
        as_typed("_ spaced _");
        // A lone backtick before a pair: the pair still works.
        assert_eq!(
            show("a `b` c ` d"),
            vec![t("a ", "text"), t("b", "code"), t(" c ` d", "text")]
        );
    }

    #[test]
    fn links_are_only_ever_http_urls_from_the_text() {
        let hostile = "javascript:alert(1) https://ok.example/x data:,x \
                       https://a.b/\"onmouseover=alert(1) `https://in.code` _https://i.t_";
        for p in pieces(hostile) {
            if p.style.link {
                let lower = p.text.to_ascii_lowercase();
                assert!(
                    lower.starts_with("http://") || lower.starts_with("https://"),
                    "{p:?}"
                );
                assert!(!p.text.contains(['"', '<', '>', ' ']), "{p:?}");
            }
        }
    }

    #[test]
    fn hostile_input_takes_linear_time() {
        // Each of these would be quadratic for a parser that searched ahead from every
        // marker; 1 MB each, far beyond any message the server accepts.
        let n = 1 << 20;
        let inputs = [
            "**a ".repeat(n / 4),
            "_a ".repeat(n / 3),
            "`".repeat(n / 2) + &"x".repeat(n / 2),
            "https://".repeat(n / 8),
            "(".repeat(n / 2) + "https://x" + &")".repeat(n / 2),
            "h".repeat(n),
            "*_`".repeat(n / 3),
        ];
        let started = std::time::Instant::now();
        for input in &inputs {
            let shown: usize = pieces(input).iter().map(|p| p.text.len()).sum();
            assert!(shown <= input.len());
        }
        let took = started.elapsed();
        assert!(took.as_secs() < 5, "took {took:?}");
    }
}
