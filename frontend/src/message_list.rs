//! The conversation: one row per message with sender, text and local time, the reader's
//! own messages set apart, and a "guest" tag on a guest's (whose name someone else may use
//! later). It follows new messages only while the reader is at the
//! bottom, so scrolling back to read is not yanked away by each arrival. Scrolling near
//! the top asks for the page before; when rows land above, the scroll offset moves by
//! their height so the rows being read stay where they are.

use chat_proto::MessageResponse;
use leptos::html::Ol;
use leptos::prelude::*;

/// How close (px) to the bottom still counts as "at the bottom".
const STICK_SLACK_PX: i32 = 48;
/// How close (px) to the top asks for older messages, so they are often in before the
/// reader gets there.
const NEAR_TOP_PX: i32 = 200;

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
    has_older: Signal<bool>,
    loading_older: Signal<bool>,
    on_near_top: Callback<()>,
) -> impl IntoView {
    let list = NodeRef::<Ol>::new();
    let at_bottom = StoredValue::new(true);
    // The first row's key and the list's height as last rendered: a different first row
    // means rows came (or went) above.
    let rendered = StoredValue::new((None::<(u64, u64)>, 0));

    // Runs after the rows for a change are in the DOM.
    Effect::new(move || {
        let first = messages.with(|m| m.first().map(|(key, _)| *key));
        let Some(el) = list.get() else { return };
        let (first_before, height_before) = rendered.get_value();
        if first.is_none() {
            // An emptied list (another room, a new epoch) starts at the newest again.
            at_bottom.set_value(true);
        }
        if at_bottom.get_value() {
            el.set_scroll_top(el.scroll_height());
        } else if first_before.is_some() && first != first_before {
            el.set_scroll_top(el.scroll_top() + el.scroll_height() - height_before);
        }
        rendered.set_value((first, el.scroll_height()));
        // A page that does not fill the list gives nothing to scroll: fetch the next now.
        if el.scroll_height() <= el.client_height() && has_older.get_untracked() {
            on_near_top.run(());
        }
    });
    let on_scroll = move |_| {
        if let Some(el) = list.get_untracked() {
            at_bottom.set_value(
                el.scroll_height() - el.scroll_top() - el.client_height() <= STICK_SLACK_PX,
            );
            if el.scroll_top() <= NEAR_TOP_PX && has_older.get_untracked() {
                on_near_top.run(());
            }
        }
    };

    view! {
        <div class="messages-frame">
            <Show when=move || loading_older.get()>
                <p class="older" data-testid="older-loading">"Loading older messages\u{2026}"</p>
            </Show>
            <ol class="messages" data-testid="messages" aria-live="polite" node_ref=list on:scroll=on_scroll>
                <For each=move || messages.get() key=|(key, _)| *key let:item>
                    <MessageRow message=item.1 me />
                </For>
            </ol>
        </div>
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
                {message.guest.then(|| view! { <span class="tag" data-testid="message-guest">"guest"</span> })}
                <time class="time" data-testid="message-time" title=full_time>{time}</time>
            </div>
            <p class="text" data-testid="message-text">{message.text}</p>
        </li>
    }
}
