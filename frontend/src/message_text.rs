//! A message's text as elements: each piece `markup` finds becomes a text node, alone or in
//! the one element its style asks for, so the text is always escaped by the view. One
//! element type with the tag chosen at run time (and classes for a second style) keeps the
//! page small. A link opens in a new tab, tells the target nothing about this page
//! (noopener noreferrer) and does not vouch for it (nofollow). A mention of the reader
//! (see `mention`) outside code and links is a `mark`.

use leptos::either::Either;
use leptos::html::custom;
use leptos::prelude::*;

use crate::markup::{pieces, Style};
use crate::mention;

/// `text` shown, its mentions of `me` (a `mention::fold`ed name; empty for none) marked.
pub fn message_text(text: &str, me: &str) -> impl IntoView {
    let mut parts: Vec<(&str, Style, bool)> = Vec::new();
    for p in pieces(text) {
        let mut from = 0;
        if !p.style.code && !p.style.link {
            for (start, end) in mention::find(p.text, me) {
                parts.push((&p.text[from..start], p.style, false));
                parts.push((&p.text[start..end], p.style, true));
                from = end;
            }
        }
        parts.push((&p.text[from..], p.style, false));
    }
    parts
        .into_iter()
        .filter(|(text, ..)| !text.is_empty())
        .map(|(text, s, mention)| {
            let text = text.to_owned();
            if s == Style::default() && !mention {
                return Either::Left(text);
            }
            let tag = match () {
                _ if mention => "mark",
                _ if s.link => "a",
                _ if s.code => "code",
                _ if s.bold => "strong",
                _ => "em",
            };
            let mut class = String::new();
            for (on, name, tag_says) in [
                (s.bold, " b", "strong"),
                (s.italic, " i", "em"),
                (mention, " mention", "-"),
            ] {
                if on && tag != tag_says {
                    class.push_str(name);
                }
            }
            let link = |v: &'static str| s.link.then_some(v);
            Either::Right(
                custom(tag)
                    .attr(
                        "class",
                        (!class.is_empty()).then(|| class.trim_start().to_owned()),
                    )
                    .attr("href", s.link.then(|| text.clone()))
                    .attr("target", link("_blank"))
                    .attr("rel", link("noopener noreferrer nofollow"))
                    .attr("data-testid", mention.then_some("mention"))
                    .child(text),
            )
        })
        .collect_view()
}
