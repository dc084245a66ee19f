//! The polite live region that tells a screen reader what arrived: messages from others
//! heard live on the stream, never the history loaded on entering a room (which is why the
//! list itself is not a live region: each page of history would be read out).

use crate::reader::Reader;
use crate::text::text;
use leptos::prelude::*;

/// `live`: "NAME: text" of the last message from someone else heard on the stream.
#[component]
pub fn Announcer(live: Reader<Option<String>>) -> impl IntoView {
    view! {
        <div class="sr-only" aria-live="polite" data-testid="announcer">
            {text(move || live.get().unwrap_or_default())}
        </div>
    }
}
