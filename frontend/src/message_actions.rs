//! What a reader does to a message already posted: edit or delete their own (an inline
//! editor, a confirmation), react with one of the server's few emoji (a small picker;
//! a reaction chip toggles the reader's own), or answer it. The row only says what was
//! asked (`Act`); the app sends it, and the change comes back live like everyone else's.

use chat_proto::{reactions::REACTIONS, MessageResponse, Reaction};
use leptos::ev::KeyboardEvent;
use leptos::prelude::*;

/// One thing asked of message `id` (the room is the one on screen).
#[derive(Clone, Debug, PartialEq)]
pub enum Act {
    Edit(u64, String),
    Delete(u64),
    React(u64, String),
    Reply(MessageResponse),
}

/// The reactions under a message: each emoji with its count, who on hover; a click
/// toggles the reader's own.
pub fn reactions(
    id: u64,
    list: Vec<Reaction>,
    me: Memo<String>,
    act: Callback<Act>,
) -> impl IntoView {
    let chips = list
        .into_iter()
        .map(|r| {
            let mine = r.usernames.iter().any(|n| me.with_untracked(|me| n == me));
            let emoji = r.emoji.clone();
            view! {
                <button
                    type="button"
                    class="reaction"
                    class:mine=mine
                    data-testid="reaction"
                    title=r.usernames.join(", ")
                    on:click=h(move |_| act.run(Act::React(id, emoji.clone())))
                >
                    {format!("{} {}", r.emoji, r.usernames.len())}
                </button>
            }
        })
        .collect_view();
    view! { <div class="reactions">{chips}</div> }
}

/// The buttons on a message: react (opens the picker), reply, and for the author's own
/// message edit and delete (which asks first).
#[component]
pub fn Actions(
    message: MessageResponse,
    mine: bool,
    editing: RwSignal<bool>,
    act: Callback<Act>,
) -> impl IntoView {
    let id = message.id;
    let picking = RwSignal::new(false);
    let picker = move || {
        picking.get().then(|| {
            REACTIONS
                .iter()
                .map(|emoji| {
                    view! {
                        <button
                            type="button"
                            data-testid="react-pick"
                            on:click=h(move |_| {
                                picking.set(false);
                                act.run(Act::React(id, (*emoji).to_owned()));
                            })
                        >
                            {*emoji}
                        </button>
                    }
                })
                .collect_view()
        })
    };
    let delete = move |_| {
        let sure = window()
            .confirm_with_message("Delete this message for everyone?")
            .unwrap_or(false);
        if sure {
            act.run(Act::Delete(id));
        }
    };
    let own = mine.then(|| {
        view! {
            <button type="button" data-testid="message-edit" on:click=h(move |_| editing.set(true))>"Edit"</button>
            <button type="button" data-testid="message-delete" on:click=h(delete)>"Delete"</button>
        }
    });
    view! {
        <div class="actions">
            <button type="button" data-testid="message-react" aria-label="React" on:click=h(move |_| picking.update(|p| *p = !*p))>"+\u{263A}"</button>
            <button type="button" data-testid="message-reply" on:click=h(move |_| act.run(Act::Reply(message.clone())))>"Reply"</button>
            {own}
            <span class="picker">{picker}</span>
        </div>
    }
}

/// The inline editor: Enter saves, Shift+Enter adds a line, Escape cancels.
pub fn editor(id: u64, text: String, editing: RwSignal<bool>, act: Callback<Act>) -> impl IntoView {
    let on_keydown = move |ev: KeyboardEvent| match ev.key().as_str() {
        "Enter" if !ev.shift_key() && !ev.is_composing() => {
            ev.prevent_default();
            editing.set(false);
            act.run(Act::Edit(id, event_target_value(&ev)));
        }
        "Escape" => editing.set(false),
        _ => {}
    };
    view! {
        <textarea class="editor" data-testid="message-editor" aria-label="Edit message" rows="2" prop:value=text on:keydown=h(on_keydown) autofocus></textarea>
    }
}
use crate::handler::h;
