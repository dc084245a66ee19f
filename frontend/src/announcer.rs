//! The polite live region that tells a screen reader what arrived: messages from others
//! heard live on the stream, never the history loaded on entering a room (which is why the
//! list itself is not a live region: each page of history would be read out).

use chat_proto::MessageResponse;
use leptos::prelude::*;

#[component]
pub fn Announcer(live: Signal<Option<MessageResponse>>, me: Signal<String>) -> impl IntoView {
    let said = move || {
        live.with(|m| match m {
            Some(m) if me.with_untracked(|me| m.username != *me) => {
                format!("{}: {}", m.username, m.text)
            }
            _ => String::new(),
        })
    };
    view! { <div class="sr-only" aria-live="polite" data-testid="announcer">{said}</div> }
}
