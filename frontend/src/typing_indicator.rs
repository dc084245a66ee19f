//! "NAME is typing..." under the conversation. The line is always there (empty when nobody
//! types) so the list above does not jump each time it comes and goes.

use leptos::prelude::*;

use crate::reader::Reader;
use crate::text::text;
use crate::typing::Typists;

#[component]
pub fn TypingIndicator(typists: Reader<Typists>, me: Memo<String>) -> impl IntoView {
    let line = move || typists.with(|t| me.with(|me| t.line(me)));
    view! {
        <p class="typing" data-testid="typing" aria-live="polite">
            {text(move || line().unwrap_or_default())}
        </p>
    }
}
