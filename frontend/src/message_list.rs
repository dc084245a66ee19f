//! The conversation: one row per message with sender, text and local time, the reader's
//! own messages set apart. It follows new messages only while the reader is at the
//! bottom, so scrolling back to read is not yanked away by each arrival.

use chat_proto::MessageResponse;
use leptos::html::Ol;
use leptos::prelude::*;

/// How close (px) to the bottom still counts as "at the bottom".
const STICK_SLACK_PX: i32 = 48;

/// "HH:MM" in the reader's time zone; the full date goes in the tooltip.
fn local_times(sent_at_ms: i64) -> (String, String) {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(sent_at_ms as f64));
    let short = format!("{:02}:{:02}", date.get_hours(), date.get_minutes());
    let full: String = date
        .to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED)
        .into();
    (short, full)
}

#[component]
pub fn MessageList(
    messages: Signal<Vec<((u64, u64), MessageResponse)>>,
    me: Signal<String>,
) -> impl IntoView {
    let list = NodeRef::<Ol>::new();
    let at_bottom = StoredValue::new(true);

    // Runs after the rows for a change are in the DOM.
    Effect::new(move || {
        messages.track();
        if at_bottom.get_value() {
            if let Some(el) = list.get() {
                el.set_scroll_top(el.scroll_height());
            }
        }
    });
    let on_scroll = move |_| {
        if let Some(el) = list.get_untracked() {
            at_bottom.set_value(
                el.scroll_height() - el.scroll_top() - el.client_height() <= STICK_SLACK_PX,
            );
        }
    };

    view! {
        <ol class="messages" data-testid="messages" aria-live="polite" node_ref=list on:scroll=on_scroll>
            <For each=move || messages.get() key=|(key, _)| *key let:item>
                <MessageRow message=item.1 me />
            </For>
        </ol>
        <Show when=move || messages.with(Vec::is_empty)>
            <p class="empty">"No messages yet. Say hello!"</p>
        </Show>
    }
}

#[component]
fn MessageRow(message: MessageResponse, me: Signal<String>) -> impl IntoView {
    let (time, full_time) = local_times(message.sent_at_ms);
    let username = message.username.clone();
    let mine = move || me.with(|me| *me == username);
    view! {
        <li class="message" class:mine=mine data-testid="message" data-id=message.id.to_string()>
            <div class="meta">
                <span class="user" data-testid="message-user">{message.username}</span>
                <time class="time" data-testid="message-time" title=full_time>{time}</time>
            </div>
            <p class="text" data-testid="message-text">{message.text}</p>
        </li>
    }
}
