//! The page shell: the prompt (guest, sign in, register) until the person has a session,
//! then the chat: rooms and who is here on the side, the room on screen (header with the
//! connection badge and who is signed in, search, messages, typing line, composer). The room comes from the URL hash, else the last one
//! visited; switching changes the hash, so it needs no reload and Back works.

use chat_proto::MessageResponse;
use leptos::either::Either;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::account_menu::AccountMenu;
use crate::client::ChatClient;
use crate::composer::Composer;
use crate::connection_badge::ConnectionBadge;
use crate::early_prompt::EarlyPrompt;
use crate::feed::Feed;
use crate::member_list::MemberList;
use crate::message_actions::Act;
use crate::message_list::MessageList;
use crate::name_prompt::{Mode, NamePrompt};
use crate::notify::{Notifier, NotifyToggle};
use crate::room_list::RoomList;
use crate::room_name;
use crate::search_panel::SearchPanel;
use crate::session::{self, Who};
use crate::text::text;
use crate::typing_indicator::TypingIndicator;

#[component]
pub fn App(
    /// What index.html's static prompt held when the app took over; the first prompt
    /// continues it.
    early: Option<EarlyPrompt>,
) -> impl IntoView {
    let me = RwSignal::new(None::<Who>);
    // Why the prompt is back: the page could not keep the session by itself (the server's
    // reason, or an account's session ended), or the person signed out everywhere.
    let notice = RwSignal::new(None::<String>);
    let client = ChatClient::new(move |reason| {
        notice.set(Some(reason));
        me.set(None);
    });
    me.set(client.who());
    // Signed in already: the static page showed the frame, and the prompt is not shown.
    let early = StoredValue::new(early.filter(|_| me.with_untracked(Option::is_none)));
    let notifier = Notifier::new();
    let feed = Feed::new(client.clone(), notifier);
    let client = StoredValue::new_local(client);

    // What the reader asked of a message: a reply goes to the composer, the rest to the
    // server, whose answer comes back on the feed; a refusal shows under the list.
    let replying = RwSignal::new(None::<MessageResponse>);
    let act_error = RwSignal::new(None::<String>);
    let act = move |act: Act| {
        if let Act::Reply(original) = act {
            return replying.set(Some(original));
        }
        let client = client.get_value();
        let room = feed.room().get_untracked();
        spawn_local(async move {
            let done = match act {
                Act::Edit(id, text) => client.edit(&room, id, &text).await,
                Act::Delete(id) => client.delete(&room, id).await,
                Act::React(id, emoji) => client.react(&room, id, &emoji).await,
                Act::Reply(_) => Ok(()),
            };
            act_error.set(done.err().map(|e| e.message));
        });
    };

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

    let on_joined = Callback::new(move |who: Who| {
        notice.set(None);
        me.set(Some(who));
        // A new session: (re)open the room so its stream carries the new token.
        let room = room_name::initial();
        room_name::remember(&room);
        feed.open(room);
    });
    let sign_out = Callback::new(move |()| {
        me.set(None);
        let client = client.get_value();
        spawn_local(async move { client.leave().await });
    });
    let signed_out_everywhere = Callback::new(move |what: String| {
        notice.set(Some(what));
        me.set(None);
    });
    let my_name = Memo::new(move |_| {
        me.with(|w| w.as_ref().map(|w| w.name.clone()))
            .unwrap_or_default()
    });
    // A memo, so a new name alone does not build the account menu again.
    let guest = Memo::new(move |_| me.with(|w| w.as_ref().is_none_or(|w| w.guest)));
    // A reply's quote and a search hit both open the room at a message.
    let jump = Callback::new(move |id| feed.jump_to(id));
    // The prompt comes back on the form that fits the last name: an account's on sign in.
    let prompt_for = move || {
        if let Some(early) = early.try_update_value(Option::take).flatten() {
            return (early.name, early.password, early.mode, early.submitted);
        }
        let last = session::last();
        let mode = match &last {
            Some(Who { guest: false, .. }) => Mode::SignIn,
            _ => Mode::Guest,
        };
        (
            last.map(|w| w.name).unwrap_or_default(),
            String::new(),
            mode,
            false,
        )
    };

    // A memo: a new session (a guest joining again) does not build the chat again.
    let signed_in = Memo::new(move |_| me.with(Option::is_some));
    let prompt = move || {
        let (initial, typed_password, mode, submit_now) = prompt_for();
        view! {
            <NamePrompt
                client=client.get_value()
                initial
                typed_password
                mode
                submit_now
                notice=notice.get_untracked()
                on_joined
            />
        }
    };
    move || match signed_in.get() {
        true => Either::Left(view! {
            <div class="chat">
                <aside class="sidebar">
                    <RoomList client=client.get_value() feed on_pick=Callback::new(go) />
                    <MemberList members=feed.members() me=my_name />
                </aside>
                <main class="room">
                    <header class="topbar">
                        <h1 data-testid="room-title">{text(move || room_name::title(&feed.room().get()))}</h1>
                        <ConnectionBadge state=feed.state() />
                        <NotifyToggle notifier />
                        <AccountMenu
                            client=client.get_value()
                            name=my_name
                            guest
                            on_sign_out=sign_out
                            on_ended=signed_out_everywhere
                        />
                    </header>
                    <SearchPanel
                        client=client.get_value()
                        room=feed.room()
                        on_open=jump
                    />
                    {move || feed.problem().get().map(|e| view! { <p class="error room-error" role="alert" data-testid="room-error">{e}</p> })}
                    <MessageList
                        messages=feed.messages()
                        me=my_name
                        has_older=feed.has_older()
                        loading_older=feed.loading_older()
                        read_before=feed.read_before()
                        live=feed.live()
                        on_near_top=Callback::new(move |()| feed.load_older())
                        act=Callback::new(act)
                        on_jump=jump
                    />
                    {move || act_error.get().map(|e| view! { <p class="error" role="alert" data-testid="action-error">{e}</p> })}
                    <TypingIndicator typists=feed.typists() me=my_name />
                    <Composer
                        client=client.get_value()
                        room=feed.room()
                        replying
                        people=feed.people()
                        me=my_name
                    />
                </main>
            </div>
        }),
        false => Either::Right(prompt()),
    }
}
