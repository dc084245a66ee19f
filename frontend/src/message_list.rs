//! The conversation: a day line where the date changes, and one row per message, the
//! sender and time shown once per run of one person's messages (see `rows`), the reader's
//! own set apart and a guest's tagged "guest" (whose name someone else may use later).
//! It follows new messages only while the reader is at the bottom, so scrolling back to
//! read is not yanked away by each arrival; scrolled up, a button counts what arrived
//! unseen and jumps down, and a "new messages" line marks where unread began (or where it
//! began on entering the room). Scrolling near the top asks for the page before; when rows
//! land above, the scroll offset moves by their height so the rows being read stay put.

use chat_proto::MessageResponse;
use leptos::either::Either;
use leptos::html::Ol;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::announcer::Announcer;
use crate::handler::h;
use crate::mention;
use crate::message_actions::{editor, reactions, Act, Actions};
use crate::message_text::message_text;
use crate::reader::Reader;
use crate::rows::{rows, Key, Row};
use crate::text::text;
use crate::timer::{now_ms, sleep_ms};
use crate::when;

/// How close (px) to the bottom still counts as "at the bottom".
const STICK_SLACK_PX: i32 = 48;
/// How close (px) to the top asks for older messages, so they are often in before the
/// reader gets there.
const NEAR_TOP_PX: i32 = 200;
/// How often "N min ago" is brought up to date.
const TICK_MS: u32 = 20_000;

#[component]
pub fn MessageList(
    messages: Memo<Vec<(Key, MessageResponse)>>,
    me: Memo<String>,
    has_older: Memo<bool>,
    loading_older: Reader<bool>,
    /// What the reader had read on entering the room, when more has come since.
    read_before: Reader<Option<Key>>,
    /// The last message from someone else heard live on the stream, for the screen reader.
    live: Reader<Option<String>>,
    on_near_top: Callback<()>,
    /// Edits, deletes, reactions and replies asked for on a message; a click on a quote
    /// asks to jump to (the id of) its original.
    act: Callback<Act>,
    on_jump: Callback<u64>,
) -> impl IntoView {
    let list = NodeRef::<Ol>::new();
    let at_bottom = RwSignal::new(true);
    // The newest message that was on screen at the bottom: all after it came unseen.
    let seen_to = RwSignal::new(None::<Key>);
    // `seen_to` when messages first came while the reader was scrolled up.
    let fell_behind = RwSignal::new(None::<Key>);
    // The first row's key and the list's height as last rendered: a different first row
    // means rows came (or went) above.
    let rendered = StoredValue::new((None::<Key>, 0));
    // Flips every tick: what reads it is worked out again against the clock.
    let tick = RwSignal::new(false);
    let alive = StoredValue::new(());
    spawn_local(async move {
        loop {
            sleep_ms(TICK_MS).await;
            if alive.try_get_value().is_none() {
                break;
            }
            tick.update(|t| *t = !*t);
        }
    });

    let saw = move |last: Option<Key>| {
        if seen_to.get_untracked() != last {
            seen_to.set(last);
        }
    };
    Effect::new(move || {
        let (first, last, last_mine) = messages.with(|m| {
            let mine = m
                .last()
                .is_some_and(|(_, msg)| me.with_untracked(|me| msg.username == *me));
            (
                m.first().map(|(key, _)| *key),
                m.last().map(|(key, _)| *key),
                mine,
            )
        });
        list.track();
        // The list's own update for this change may still be queued: measure after it.
        queue_microtask(move || {
            if alive.try_get_value().is_none() {
                return; // the list is gone
            }
            let Some(el) = list.get_untracked() else {
                return;
            };
            let (first_before, height_before) = rendered.get_value();
            if first.is_none() {
                // An emptied list (another room, a new epoch) starts at the newest again.
                at_bottom.set(true);
                fell_behind.set(None);
            }
            let arrived = last > seen_to.get_untracked();
            if arrived && last_mine {
                at_bottom.set(true); // the reader's own message: show it
            }
            if at_bottom.get_untracked() {
                el.set_scroll_top(el.scroll_height());
                saw(last);
            } else {
                if first_before.is_some() && first != first_before {
                    el.set_scroll_top(el.scroll_top() + el.scroll_height() - height_before);
                }
                if arrived && fell_behind.get_untracked().is_none() {
                    fell_behind.set(seen_to.get_untracked());
                }
            }
            rendered.set_value((first, el.scroll_height()));
            // A page that does not fill the list gives nothing to scroll: fetch the next now.
            if el.scroll_height() <= el.client_height() && has_older.get_untracked() {
                on_near_top.run(());
            }
        });
    });
    let on_scroll = move |_| {
        if let Some(el) = list.get_untracked() {
            let bottom =
                el.scroll_height() - el.scroll_top() - el.client_height() <= STICK_SLACK_PX;
            if bottom != at_bottom.get_untracked() {
                at_bottom.set(bottom);
            }
            if bottom {
                saw(messages.with_untracked(|m| m.last().map(|(key, _)| *key)));
            }
            if el.scroll_top() <= NEAR_TOP_PX && has_older.get_untracked() {
                on_near_top.run(());
            }
        }
    };
    let jump = move |_| {
        if let Some(el) = list.get_untracked() {
            el.set_scroll_top(el.scroll_height());
            // The button goes away: the list keeps the focus for the keyboard.
            let _ = el.focus();
        }
    };
    let unseen = move || {
        let seen = seen_to.get();
        messages.with(|m| {
            m.iter()
                .rev()
                .take_while(|(key, _)| Some(*key) > seen)
                .count()
        })
    };
    let shown = move || {
        rows(
            messages.get(),
            read_before.get().or(fell_behind.get()),
            when::local_day,
        )
    };

    view! {
        <div class="messages-frame">
            <p class="older" data-testid="older-loading" hidden=move || !loading_older.get()>
                "Loading older messages\u{2026}"
            </p>
            <ol
                class="messages"
                data-testid="messages"
                aria-label="Messages"
                tabindex="0"
                node_ref=list
                on:scroll=h(on_scroll)
            >
                <For each=shown key=Row::key let:row>
                    <MessageRow row me tick act on_jump />
                </For>
            </ol>
            <button
                type="button"
                class="jump"
                data-testid="jump"
                hidden=move || at_bottom.get()
                on:click=h(jump)
            >
                "Jump to newest"
                <span class="count" data-testid="jump-count">
                    {text(move || match unseen() {
                        0 => String::new(),
                        n => format!("{n} new"),
                    })}
                </span>
            </button>
            <Announcer live />
        </div>
        <p class="empty" hidden=move || messages.with(|m| !m.is_empty())>
            "No messages yet. Say hello!"
        </p>
    }
}

/// `say(now, ms)`, said again at each tick. One closure type for every such text (a fn
/// pointer, not a closure per use) keeps one copy of the code that renders it.
fn ticking(tick: RwSignal<bool>, say: fn(i64, i64) -> String, ms: i64) -> impl IntoView {
    move || {
        tick.track();
        say(now_ms() as i64, ms)
    }
}

/// A line across the list above a message (the day, or where new messages start).
fn line(
    shown: bool,
    name: &'static str,
    tick: RwSignal<bool>,
    say: fn(i64, i64) -> String,
    ms: i64,
) -> impl IntoView {
    shown.then(|| view! { <div class=name data-testid=name>{ticking(tick, say, ms)}</div> })
}

#[component]
fn MessageRow(
    row: Row,
    me: Memo<String>,
    tick: RwSignal<bool>,
    act: Callback<Act>,
    on_jump: Callback<u64>,
) -> impl IntoView {
    let Row {
        day_line,
        new_line,
        head,
        message,
        ..
    } = row;
    let sent = message.sent_at_ms;
    let full = when::full_time(sent);
    let username = message.username.clone();
    let mine = move || me.with(|me| *me == username);
    // Only an account's own messages can be changed (a guest name may be someone else's).
    let own = !message.guest && me.with_untracked(|me| *me == message.username);
    let editing = RwSignal::new(false);
    // The reader's name as mentions match it; none in their own messages.
    let me_key = me.with_untracked(|me| match *me == message.username {
        true => String::new(),
        false => mention::fold(me),
    });
    let mentioned = !message.deleted && mention::mentions(&message.text, &me_key);
    // A run's later messages show no time; the exact one is on hover all the same.
    let meta = head.then(|| {
        view! {
            <div class="meta">
                <span class="user" data-testid="message-user">{message.username.clone()}</span>
                {message.guest.then(|| view! { <span class="tag" data-testid="message-guest">"guest"</span> })}
                <time class="time" data-testid="message-time">
                    {ticking(tick, when::short_time, sent)}
                </time>
            </div>
        }
    });
    let id = message.id;
    let quote = message.quote.clone().map(|q| {
        let to = message.reply_to;
        let line = match q.deleted {
            true => "original deleted".to_owned(),
            false => format!("{}: {}", q.username, q.text),
        };
        view! {
            <button type="button" class="quote" data-testid="message-quote" on:click=h(move |_| on_jump.run(to))>{line}</button>
        }
    });
    let body = if message.deleted {
        Either::Left(
            view! { <p class="text deleted" data-testid="message-deleted">"message deleted"</p> },
        )
    } else {
        let edited = (message.edited_at_ms > 0).then(|| {
            view! { <span class="edited" data-testid="message-edited" title=when::full_time(message.edited_at_ms)>" (edited)"</span> }
        });
        let text = message.text.clone();
        let actions_for = message.clone();
        // A memo: a second click on Edit does not reset the editor.
        let editing_now = Memo::new(move |_| editing.get());
        Either::Right(view! {
            {move || match editing_now.get() {
                true => Either::Left(editor(id, message.text.clone(), editing, act)),
                false => Either::Right(view! { <p class="text" data-testid="message-text">{message_text(&text, &me_key)}{edited.clone()}</p> }),
            }}
            {reactions(id, message.reactions.clone(), me, act)}
            <Actions message=actions_for mine=own editing act />
        })
    };
    view! {
        <li class="message" class:mine=mine class:mention=mentioned data-testid="message" data-id=message.id.to_string()>
            {line(day_line, "day", tick, when::day_label, sent)}
            {line(new_line, "new-messages", tick, when::new_messages, sent)}
            <div class=if head { "bubble head" } else { "bubble" } title=full>
                {meta}
                {quote}
                {body}
            </div>
        </li>
    }
}
