//! Where a person writes: Enter sends, Shift+Enter adds a line. The text stays in the box
//! until the server has accepted it, so a failed send (shown right under the box with the
//! server's own reason: too long, too fast, ...) loses nothing. A send that cannot reach
//! the server is tried again by itself, with backoff, under the same message id
//! (`Outgoing`), so however many tries it takes it is posted once. Entering a room moves
//! the focus here. Typing tells the others, spaced out by `TypingThrottle` so it stays
//! under the server's rate limit. `@` starts a name's completion (`mention_list`).

use chat_proto::MessageResponse;
use leptos::ev::KeyboardEvent;
use leptos::html::Textarea;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::backoff;
use crate::client::{ChatClient, ErrorKind};
use crate::handler::h;
use crate::mention_list::{Completion, MentionList};
use crate::outgoing::{random_id, Outgoing};
use crate::reader::Reader;
use crate::text;
use crate::timer::{now_ms, sleep_ms};
use crate::typing::TypingThrottle;

#[component]
pub fn Composer(
    client: ChatClient,
    room: Reader<String>,
    /// The message being answered, quoted above the box until sent or cancelled.
    replying: RwSignal<Option<MessageResponse>>,
    /// The names `@` completes (see `Feed::people`), and the writer's own, left out.
    people: Callback<(), Vec<String>>,
    me: Memo<String>,
) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let completion = Completion::new(text.into(), people, me);
    let error = RwSignal::new(None::<String>);
    let sending = RwSignal::new(false);
    let client = StoredValue::new_local(client);
    let throttle = StoredValue::new(TypingThrottle::default());
    let outgoing = StoredValue::new(Outgoing::default());

    let input = NodeRef::<Textarea>::new();
    // An error about the last room's message means nothing in the next one. Entering a
    // room (or the chat) puts the keyboard where one writes.
    Effect::new(move || {
        room.track();
        error.set(None);
        replying.set(None);
        if let Some(el) = input.get() {
            let _ = el.focus();
        }
    });

    let send = move || {
        if sending.get_untracked() {
            return;
        }
        let body = text.get_untracked();
        let room = room.get_untracked();
        let reply_to = replying.with_untracked(|r| r.as_ref().map_or(0, |m| m.id));
        let id = outgoing
            .try_update_value(|o| o.id_for(&room, &body, random_id))
            .unwrap_or_default();
        let client = client.get_value();
        sending.set(true);
        spawn_local(async move {
            let mut attempt = 0;
            // `sending` is disposed with the composer (signed out): stop trying then.
            while sending.try_get_untracked().is_some() {
                match client.send(&body, &room, &id, reply_to).await {
                    Ok(_) => {
                        replying.try_set(None);
                        outgoing.try_update_value(|o| o.accepted(&id));
                        error.try_set(None);
                        // Only clear what was sent: the person may have kept typing meanwhile.
                        if text.try_get_untracked().as_ref() == Some(&body) {
                            text.try_set(String::new());
                        }
                    }
                    Err(e) if e.kind == ErrorKind::Unreachable => {
                        attempt += 1;
                        error.try_set(Some(format!(
                            "Not sent yet ({}); trying again\u{2026}",
                            e.message
                        )));
                        sleep_ms(backoff::delay_ms(attempt, js_sys::Math::random())).await;
                        continue;
                    }
                    Err(e) => {
                        error.try_set(Some(e.message));
                    }
                }
                break;
            }
            sending.try_set(false);
        });
    };
    // A name taken from the completion goes into the box with the caret after it.
    let take = Callback::new(move |(value, caret): (String, u32)| {
        if let Some(el) = input.get_untracked() {
            el.set_value(&value);
            let _ = el.set_selection_range(caret, caret);
        }
        text.set(value);
    });
    let on_input = move |value: String| {
        if let Some(el) = input.get_untracked() {
            completion.follow(&el, &value);
        }
        let typing = !value.trim().is_empty()
            && throttle
                .try_update_value(|t| t.should_send(now_ms()))
                .unwrap_or(false);
        text.set(value);
        if typing {
            let client = client.get_value();
            let room = room.get_untracked();
            // Best effort: a refused or lost Typing only means no indicator for a moment.
            spawn_local(async move {
                let _ = client.typing(&room).await;
            });
        }
    };
    let on_keydown = move |ev: KeyboardEvent| {
        if completion.key(&ev, |value, caret| take.run((value, caret))) {
            return;
        }
        // is_composing: Enter that confirms an IME candidate must not send.
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            send();
        }
    };

    view! {
        <form class="composer" on:submit=h(move |ev: leptos::ev::SubmitEvent| { ev.prevent_default(); send(); })>
            <p class="replying" data-testid="composer-reply" hidden=move || replying.with(Option::is_none)>
                {text::text(move || replying.with(|m| m.as_ref().map(|m| {
                    format!("Replying to {}: {}", m.username, m.text.lines().next().unwrap_or_default())
                }).unwrap_or_default()))}
                <button type="button" aria-label="Cancel reply" on:click=h(move |_| replying.set(None))>"\u{00D7}"</button>
            </p>
            <textarea
                data-testid="composer-input"
                rows="2"
                placeholder="Write a message\u{2026}"
                aria-label=text::text(move || format!("Message #{}", room.get()))
                node_ref=input
                aria-autocomplete="list"
                aria-controls=completion.controls()
                aria-activedescendant=completion.active_id()
                on:click=h(move |_| {
                    if let Some(el) = input.get_untracked() {
                        completion.follow(&el, &text.get_untracked());
                    }
                })
                on:blur=h(move |_| completion.close())
                prop:value=text
                on:input=h(move |ev| on_input(event_target_value(&ev)))
                on:keydown=h(on_keydown)
            ></textarea>
            <MentionList completion take />
            <button type="submit" data-testid="composer-send" disabled=sending>"Send"</button>
            {move || error.get().map(|e| view! { <p class="error" role="alert" data-testid="composer-error">{e}</p> })}
        </form>
    }
}
