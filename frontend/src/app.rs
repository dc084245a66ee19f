//! The page shell: the name prompt until a name is chosen, then the room (header with the
//! connection badge, messages, composer). The feed starts on first entry and keeps running
//! across name changes, since what the room shows does not depend on who reads it.

use leptos::prelude::*;

use crate::client::ChatClient;
use crate::composer::Composer;
use crate::connection_badge::ConnectionBadge;
use crate::feed::Feed;
use crate::message_list::MessageList;
use crate::name;
use crate::name_prompt::NamePrompt;

/// The one room this page shows (the proto supports more).
const ROOM: &str = "general";

#[component]
pub fn App() -> impl IntoView {
    let client = StoredValue::new_local(ChatClient::new());
    let feed = Feed::new();
    let me = RwSignal::new(name::load_saved());
    let choosing_name = RwSignal::new(me.get_untracked().is_none());

    if !choosing_name.get_untracked() {
        feed.start(client.get_value(), ROOM);
    }
    let on_join = Callback::new(move |chosen: String| {
        name::save(&chosen);
        me.set(Some(chosen));
        choosing_name.set(false);
        feed.start(client.get_value(), ROOM);
    });
    let my_name = Signal::derive(move || me.get().unwrap_or_default());

    view! {
        <Show
            when=move || !choosing_name.get()
            fallback=move || {
                let current = me.get_untracked();
                // Only someone who already has a name can go back without choosing one.
                let on_cancel = current.is_some().then(|| Callback::new(move |()| choosing_name.set(false)));
                view! { <NamePrompt initial=current.unwrap_or_default() on_join on_cancel /> }
            }
        >
            <div class="room">
                <header class="topbar">
                    <h1>"#"{ROOM}</h1>
                    <ConnectionBadge state=feed.state() />
                    <span class="me">
                        "You are " <strong data-testid="me">{my_name}</strong>
                    </span>
                    <button type="button" class="link" on:click=move |_| choosing_name.set(true)>
                        "Change name"
                    </button>
                </header>
                <MessageList messages=feed.messages() me=my_name />
                <Composer client=client.get_value() me=my_name room=ROOM />
            </div>
        </Show>
    }
}
