//! The page shell: the name prompt until the person has a session, then the chat: rooms and
//! who is here on the side, the room on screen (header with the connection badge,
//! messages, typing line, composer). The room comes from the URL hash, else the last one
//! visited; switching changes the hash, so it needs no reload and Back works.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client::ChatClient;
use crate::composer::Composer;
use crate::connection_badge::ConnectionBadge;
use crate::feed::Feed;
use crate::member_list::MemberList;
use crate::message_list::MessageList;
use crate::name_prompt::NamePrompt;
use crate::room_list::RoomList;
use crate::room_name;
use crate::session;
use crate::typing_indicator::TypingIndicator;

#[component]
pub fn App() -> impl IntoView {
    let me = RwSignal::new(None::<String>);
    // The server's reason when the page could not get its name back by itself.
    let notice = RwSignal::new(None::<String>);
    let client = ChatClient::new(move |reason| {
        notice.set(Some(reason));
        me.set(None);
    });
    me.set(client.name());
    let feed = Feed::new(client.clone());
    let client = StoredValue::new_local(client);

    // Signed out (by the button or because the name was lost): stop following the room.
    Effect::new(move || {
        if me.with(Option::is_none) {
            feed.close();
        }
    });
    let go = move |room: String| {
        room_name::remember(&room);
        if feed.room().get_untracked() != room {
            feed.open(room);
        }
    };
    if me.get_untracked().is_some() {
        go(room_name::initial());
    }
    // Room links and Back/Forward change the hash.
    let hash = window_event_listener(leptos::ev::hashchange, move |_| {
        if me.with_untracked(Option::is_some) {
            if let Some(room) = room_name::from_hash() {
                go(room);
            }
        }
    });
    on_cleanup(move || hash.remove());

    let on_joined = Callback::new(move |name: String| {
        notice.set(None);
        me.set(Some(name));
        // A new session: (re)open the room so its stream carries the new token.
        let room = room_name::initial();
        room_name::remember(&room);
        feed.open(room);
    });
    let sign_out = move |_| {
        me.set(None);
        let client = client.get_value();
        spawn_local(async move { client.leave().await });
    };
    let my_name = Signal::derive(move || me.get().unwrap_or_default());

    view! {
        <Show
            when=move || me.with(Option::is_some)
            fallback=move || view! {
                <NamePrompt
                    client=client.get_value()
                    initial=session::last_name().unwrap_or_default()
                    notice=notice.get_untracked()
                    on_joined
                />
            }
        >
            <div class="chat">
                <aside class="sidebar">
                    <RoomList client=client.get_value() feed on_pick=Callback::new(go) />
                    <MemberList members=feed.members() me=my_name />
                </aside>
                <main class="room">
                    <header class="topbar">
                        <h1 data-testid="room-title">"#"{move || feed.room().get()}</h1>
                        <ConnectionBadge state=feed.state() />
                        <span class="me">
                            "You are " <strong data-testid="me">{my_name}</strong>
                        </span>
                        <button type="button" class="link" data-testid="sign-out" on:click=sign_out>
                            "Sign out"
                        </button>
                    </header>
                    <Show when=move || feed.problem().with(Option::is_some)>
                        <p class="error room-error" role="alert" data-testid="room-error">
                            {move || feed.problem().get().unwrap_or_default()}
                        </p>
                    </Show>
                    <MessageList
                        messages=feed.messages()
                        me=my_name
                        has_older=feed.has_older()
                        loading_older=feed.loading_older()
                        on_near_top=Callback::new(move |()| feed.load_older())
                    />
                    <TypingIndicator typists=feed.typists() me=my_name />
                    <Composer client=client.get_value() room=feed.room() />
                </main>
            </div>
        </Show>
    }
}
