//! The rooms, each with its unread count, and the box to open a new one; beside them the
//! person's conversations (`@peer`, ListRooms' `direct`, most recent first), counted the
//! same way, so a new one from someone shows up by the next poll. The list comes
//! from ListRooms (a page: the server's most recently active rooms), polled every few seconds and whenever the window regains focus (cheap,
//! and no stream per room needed); counts come from `Unread`, with the room on screen
//! marked read as its messages arrive. Rooms are links to `#name`, so switching is a hash
//! change: no reload, and Back goes to the previous room. Unread messages that came in
//! other rooms while the tab was hidden count in its title too (`Notifier`), and a
//! conversation's growing count raises a notification.

use chat_proto::RoomInfo;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client::ChatClient;
use crate::feed::Feed;
use crate::handler::h;
use crate::notify::Alert;
use crate::reader::Reader;
use crate::room_name;
use crate::timer::sleep_ms;
use crate::unread::Unread;

const POLL_MS: u32 = 3_000;

#[component]
pub fn RoomList(client: ChatClient, feed: Feed, on_pick: Callback<String>) -> impl IntoView {
    let rooms = RwSignal::new(Vec::<RoomInfo>::new());
    let direct = RwSignal::new(Vec::<RoomInfo>::new());
    let unread = RwSignal::new(Unread::load());
    let current = feed.room();
    let client = StoredValue::new_local(client);
    // Each room's newest id at the last poll (None before the first): what is newer and
    // unread came since, which is what the title counts while the tab is hidden. (A total
    // of unread counts would miss what came to a room read since the last poll.)
    let last_ids = StoredValue::new(None::<Vec<(String, u64)>>);

    let refresh = move || {
        let client = client.get_value();
        spawn_local(async move {
            let Ok(list) = client.list_rooms().await else {
                return; // the badge already says when the server is away
            };
            let room = current.get_untracked();
            let all = || list.rooms.iter().chain(&list.direct);
            let names = all().map(|r| (r.name.as_str(), r.last_id));
            let now = all().map(|r| (r.name.clone(), r.last_id)).collect();
            // try_: the list may have been unmounted (signed out) while the call ran.
            let Some(before) = last_ids.try_update_value(|ids| ids.replace(now)) else {
                return;
            };
            let Some(grown) = unread.try_update(|u| {
                u.observe(list.epoch, names, &room);
                u.save();
                let Some(before) = &before else {
                    return Vec::new();
                };
                let others = all().filter(|r| r.name != room);
                let grown = others.filter_map(|r| {
                    let then = before.iter().find(|b| b.0 == r.name).map_or(0, |b| b.1);
                    let n = u.count(&r.name, r.last_id) - u.count(&r.name, then.min(r.last_id));
                    (n > 0).then(|| (r.name.clone(), n))
                });
                grown.collect::<Vec<_>>()
            }) else {
                return;
            };
            let notifier = feed.notifier();
            notifier.counted(grown.iter().map(|g| g.1).sum());
            // A conversation's message is for the reader, though the page has not its text.
            if let Some((peer, _)) = grown.into_iter().find(|g| g.0.starts_with('@')) {
                notifier.notify(Alert {
                    title: format!("New message from {}", &peer[1..]),
                    body: String::new(),
                    open: Callback::new(move |()| {
                        let _ = window().location().set_hash(&peer);
                    }),
                });
            }
            rooms.try_set(list.rooms);
            direct.try_set(list.direct);
        });
    };
    // Lives as long as the list: `alive` is disposed with it, which ends the loop.
    let alive = StoredValue::new(());
    spawn_local(async move {
        while alive.try_get_value().is_some() {
            refresh();
            sleep_ms(POLL_MS).await;
        }
    });
    let focus = window_event_listener(leptos::ev::focus, move |_| refresh());
    on_cleanup(move || focus.remove());

    // What is on screen is read. Saved (and the list redrawn) only when that moves it on,
    // not for every edit or reaction that changes what is shown.
    Effect::new(move || {
        let (epoch, last_id) = feed.seen();
        let room = current.get();
        unread.maybe_update(|u| {
            let moved = u.mark_read(epoch, &room, last_id);
            if moved {
                u.save();
            }
            moved
        });
    });

    // The server's page (its most recently active rooms), plus the room on screen if the
    // page leaves it out, shown by name so rows do not jump as rooms get busy (the
    // conversations, fewer, stay newest first).
    let shown = move |list: RwSignal<Vec<RoomInfo>>, direct: bool| {
        let mut list: Vec<(String, u64)> = list.with(|rooms| {
            unread.with(|u| {
                rooms
                    .iter()
                    .map(|r| (r.name.clone(), u.count(&r.name, r.last_id)))
                    .collect()
            })
        });
        current.with(|room| {
            let mine = !room.is_empty() && room.starts_with('@') == direct;
            if mine && !list.iter().any(|(name, _)| name == room) {
                list.push((room.clone(), 0));
            }
        });
        if !direct {
            list.sort();
        }
        list
    };
    let items = move |list, direct| {
        let list: Vec<(String, u64)> = shown(list, direct);
        list.into_iter()
            .map(|(name, unread)| view! { <RoomItem name unread current /> })
            .collect_view()
    };

    view! {
        <nav class="rooms" aria-label="Rooms">
            <h2>"Rooms"</h2>
            <ul data-testid="rooms">
                {move || items(rooms, false)}
            </ul>
            <NewRoom on_pick />
            <h2>"Conversations"</h2>
            <ul data-testid="conversations">{move || items(direct, true)}</ul>
        </nav>
    }
}

#[component]
fn RoomItem(name: String, unread: u64, current: Reader<String>) -> impl IntoView {
    let here = {
        let name = name.clone();
        Memo::new(move |_| current.with(|c| *c == name))
    };
    let badge = match unread {
        0 => None,
        1..=99 => Some(unread.to_string()),
        _ => Some("99+".to_owned()),
    }
    .map(|n| {
        let label = format!("{n} unread");
        view! { <span class="unread" data-testid="unread" aria-label=label>{n}</span> }
    });
    let href = format!("#{name}");
    let data_room = name.clone();
    view! {
        <li data-testid="room" data-room=data_room class:current=move || here.get()>
            <a href=href aria-current=move || here.get().then(|| "page".to_owned())>{room_name::title(&name)}</a>
            {badge}
        </li>
    }
}

/// Opens a room by name; the server creates it on first use.
#[component]
fn NewRoom(on_pick: Callback<String>) -> impl IntoView {
    let value = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match room_name::validate(&value.get_untracked()) {
            Ok(room) => {
                value.set(String::new());
                on_pick.run(room);
            }
            Err(message) => error.set(Some(message)),
        }
    };
    view! {
        <form class="new-room" on:submit=h(on_submit)>
            <input
                data-testid="new-room-input"
                type="text"
                placeholder="new-room"
                aria-label="Open or create a room"
                prop:value=value
                on:input=h(move |ev| {
                    value.set(event_target_value(&ev));
                    error.set(None);
                })
            />
            <button type="submit" data-testid="new-room-submit">"Go"</button>
            {move || error.get().map(|e| view! { <p class="error" role="alert" data-testid="new-room-error">{e}</p> })}
        </form>
    }
}
