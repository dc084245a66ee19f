//! A message's text as elements: each piece `markup` finds becomes a text node, alone or in
//! the one element its style asks for, so the text is always escaped by the view. One
//! element type with the tag chosen at run time (and classes for a second style) keeps the
//! page small. A link opens in a new tab, tells the target nothing about this page
//! (noopener noreferrer) and does not vouch for it (nofollow).

use leptos::either::Either;
use leptos::html::custom;
use leptos::prelude::*;

use crate::markup::{pieces, Style};

pub fn message_text(text: &str) -> impl IntoView {
    pieces(text)
        .into_iter()
        .map(|p| {
            let s = p.style;
            let text = p.text.to_owned();
            if s == Style::default() {
                return Either::Left(text);
            }
            let tag = match () {
                _ if s.link => "a",
                _ if s.code => "code",
                _ if s.bold => "strong",
                _ => "em",
            };
            let mut class = String::new();
            for (on, name, tag_says) in [(s.bold, " b", "strong"), (s.italic, " i", "em")] {
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
                    .child(text),
            )
        })
        .collect_view()
}
