//! Search in the room on screen: a labelled search box, the hits as a list (newest first,
//! "More" for older ones) and a click (or Enter) on a hit opening the room at that
//! message, through the same jump a reply's quote makes. The words found are marked with
//! `<mark>` elements cut from the server's byte ranges, so the text is never parsed as
//! markup. A new room clears the search.

use chat_proto::{SearchHit, TextRange};
use leptos::either::Either;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client::ChatClient;
use crate::handler::h;
use crate::reader::Reader;
use crate::text::text;
use crate::when;

#[component]
pub fn SearchPanel(
    client: ChatClient,
    room: Reader<String>,
    /// Opens the room at a message (the reply jump).
    on_open: Callback<u64>,
) -> impl IntoView {
    let client = StoredValue::new_local(client);
    let query = RwSignal::new(String::new());
    // The query the hits are for, so "More" pages the same one whatever is typed since.
    let asked = RwSignal::new(None::<String>);
    let hits = RwSignal::new(Vec::<SearchHit>::new());
    let has_more = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // Bumped by every new search (or clearing), so a page still on its way for an older
    // one is dropped rather than mixed in.
    let generation = StoredValue::new(0u32);

    let clear = move || {
        generation.update_value(|g| *g += 1);
        busy.set(false);
        asked.set(None);
        hits.set(Vec::new());
        has_more.set(false);
        error.set(None);
    };
    Effect::new(move || {
        room.track();
        clear();
    });

    let fetch = move |words: String, before_id: u64| {
        let client = client.get_value();
        let room = room.get_untracked();
        let ours = generation.get_value();
        busy.set(true);
        spawn_local(async move {
            let found = client.search(&room, &words, before_id).await;
            if generation.get_value() != ours {
                return;
            }
            match found {
                Ok(found) => {
                    error.set(None);
                    has_more.set(found.has_more);
                    hits.update(|h| h.extend(found.hits));
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let words = query.get_untracked();
        if words.trim().is_empty() {
            return clear();
        }
        clear();
        asked.set(Some(words.clone()));
        fetch(words, 0);
    };
    let more = move |_| {
        let oldest =
            hits.with_untracked(|h| h.last().and_then(|h| h.message.as_ref()).map(|m| m.id));
        if let (Some(words), Some(oldest)) = (asked.get_untracked(), oldest) {
            fetch(words, oldest);
        }
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        if ev.key() == "Escape" {
            query.set(String::new());
            clear();
        }
    };

    view! {
        <form class="search" role="search" data-testid="search" on:submit=h(submit)>
            <label for="search-query" class="sr-only">
                {text(move || format!("Search #{}", room.get()))}
            </label>
            <input
                id="search-query"
                type="search"
                data-testid="search-query"
                placeholder="Search this room"
                maxlength="200"
                prop:value=query
                on:input=h(move |ev| query.set(event_target_value(&ev)))
                on:keydown=h(on_key)
            />
            <button type="submit" data-testid="search-go">"Search"</button>
        </form>
        <section
            class="search-results"
            aria-label="Search results"
            data-testid="search-results"
            hidden=move || asked.with(Option::is_none)
        >
            {move || error.get().map(|e| view! {
                <p class="error" role="alert" data-testid="search-error">{e}</p>
            })}
            <p class="search-count" role="status" data-testid="search-status">
                {text(move || match (busy.get(), hits.with(Vec::len), has_more.get()) {
                    (true, _, _) => "Searching\u{2026}".to_owned(),
                    _ if error.with(Option::is_some) => String::new(),
                    (false, 0, _) => "No messages found".to_owned(),
                    (false, 1, false) => "1 message found".to_owned(),
                    (false, n, false) => format!("{n} messages found"),
                    (false, n, true) => format!("{n}+ messages found"),
                })}
            </p>
            <ol class="hits">
                {move || hits.with(|h| h.iter().map(|hit| hit_row(hit, on_open)).collect_view())}
            </ol>
            <button
                type="button"
                data-testid="search-more"
                on:click=h(more)
                disabled=busy
                hidden=move || !has_more.get()
            >
                "More"
            </button>
        </section>
    }
}

fn hit_row(hit: &SearchHit, on_open: Callback<u64>) -> impl IntoView {
    let message = hit.message.clone().unwrap_or_default();
    let id = message.id;
    let text = marked(&message.text, &hit.matches)
        .into_iter()
        .map(|(piece, found)| match found {
            true => Either::Left(view! { <mark>{piece}</mark> }),
            false => Either::Right(piece),
        })
        .collect_view();
    view! {
        <li>
            <button
                type="button"
                class="hit"
                data-testid="search-hit"
                data-id=id.to_string()
                on:click=h(move |_| on_open.run(id))
            >
                <span class="user">{message.username}</span>
                <time class="time">{when::full_time(message.sent_at_ms)}</time>
                <span class="text">{text}</span>
            </button>
        </li>
    }
}

/// `text` cut into pieces, each marked when it is one of `ranges`. Ranges out of order, out
/// of bounds or off a character boundary are skipped rather than trusted.
fn marked(text: &str, ranges: &[TextRange]) -> Vec<(String, bool)> {
    let mut pieces = Vec::new();
    let mut at = 0;
    for range in ranges {
        let (start, end) = (range.start as usize, range.end as usize);
        if start < at || end <= start || text.get(start..end).is_none() {
            continue;
        }
        if start > at {
            pieces.push((text[at..start].to_owned(), false));
        }
        pieces.push((text[start..end].to_owned(), true));
        at = end;
    }
    if at < text.len() {
        pieces.push((text[at..].to_owned(), false));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u32, end: u32) -> TextRange {
        TextRange { start, end }
    }

    #[test]
    fn pieces_alternate_between_plain_and_marked() {
        let cut = marked("a cat, a Cat", &[range(2, 5), range(9, 12)]);
        let want = [("a ", false), ("cat", true), (", a ", false), ("Cat", true)];
        assert_eq!(cut, want.map(|(s, m)| (s.to_owned(), m)));
    }

    #[test]
    fn bad_ranges_are_skipped_not_trusted() {
        let text = "wörd x";
        // 2 is inside "ö"; 3..1 is backwards; 5..99 is past the end.
        let cut = marked(text, &[range(2, 4), range(3, 1), range(5, 99), range(6, 7)]);
        assert_eq!(cut, [("wörd ".to_owned(), false), ("x".to_owned(), true)]);
    }
}
