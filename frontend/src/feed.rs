//! The live feed of the room on screen: loads its latest page, keeps one Subscribe stream
//! open and reconnects with backoff when it ends, resuming after the last id seen in the
//! known epoch so the server replays exactly what was missed. Switching rooms stops that
//! run (dropping the stream aborts its fetch, which tells the server the person left the
//! room) and starts one for the next room. Components only read its signals.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Poll, Waker};

use chat_proto::MessageResponse;
use leptos::logging::warn;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::backoff;
use crate::client::{ApiError, ChatClient, ErrorKind, EventStream, FeedEvent};
use crate::members::Members;
use crate::mention;
use crate::network::{self, WentOffline};
use crate::notify::{Alert, Notifier};
use crate::reader::Reader;
use crate::room_name;
use crate::rows::Key;
use crate::timeline::Timeline;
use crate::timer::{now_ms, sleep_ms};
use crate::typing::Typists;
use crate::unread::Unread;

/// Most history pages a jump to a reply's original loads before giving up.
const JUMP_PAGES: usize = 40;

/// How many of the latest messages' senders `@` completion offers beside who is here.
const RECENT_SENDERS: usize = 100;

/// How many messages the page shows straight away on entering.
const HISTORY_PAGE: u32 = 50;
/// Silence that ends a stream before its Welcome has said how often heartbeats come.
const WELCOME_TIMEOUT_MS: u32 = 30_000;
/// Heartbeats that may go missing before the stream is taken for dead.
const MISSED_HEARTBEATS: u32 = 3;
/// "Never" for a server that sends no heartbeats.
const NO_WATCHDOG_MS: u32 = u32::MAX / 2;

/// What the connection badge shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// First attempt, nothing shown from the server yet.
    Connecting,
    /// Stream open and welcomed: new messages arrive as they are posted.
    Live,
    /// The stream failed; `retry_in_s` counts down to the next try, `None` while trying.
    Reconnecting {
        attempt: u32,
        retry_in_s: Option<u32>,
    },
    /// The browser says there is no network; we retry as soon as it comes back.
    Offline,
}

/// Handle on the feed's state; `Copy`, so components capture it freely.
#[derive(Clone, Copy)]
pub struct Feed {
    client: StoredValue<ChatClient, LocalStorage>,
    room: RwSignal<String>,
    timeline: RwSignal<Timeline>,
    state: RwSignal<ConnState>,
    members: RwSignal<Members>,
    typists: RwSignal<Typists>,
    /// Why the server refuses this room (bad name, too many rooms), in its words.
    problem: RwSignal<Option<String>>,
    loading_older: RwSignal<bool>,
    /// What the person had read of the room on entering it, when its first page holds more.
    read_before: RwSignal<Option<Key>>,
    /// "NAME: text" of the last message from someone else heard live on the stream (not
    /// loaded as history), for screen readers.
    live: RwSignal<Option<String>>,
    /// Stops the current room's run; None while closed.
    run: StoredValue<Option<Stop>, LocalStorage>,
    /// Told of each message from someone else heard live.
    notifier: Notifier,
}

impl Feed {
    pub fn new(client: ChatClient, notifier: Notifier) -> Self {
        Feed {
            client: StoredValue::new_local(client),
            room: RwSignal::new(String::new()),
            timeline: RwSignal::new(Timeline::default()),
            state: RwSignal::new(ConnState::Connecting),
            members: RwSignal::new(Members::default()),
            typists: RwSignal::new(Typists::default()),
            problem: RwSignal::new(None),
            loading_older: RwSignal::new(false),
            read_before: RwSignal::new(None),
            live: RwSignal::new(None),
            run: StoredValue::new_local(None),
            notifier,
        }
    }

    pub fn state(&self) -> Reader<ConnState> {
        self.state.into()
    }

    /// The room on screen.
    pub fn room(&self) -> Reader<String> {
        self.room.into()
    }

    pub fn members(&self) -> Reader<Members> {
        self.members.into()
    }

    /// Who is here, then who spoke lately (newest first; repeats left in): the names `@`
    /// completes. Worked out at each call, only while a completion asks (a callback, not a
    /// derived `Signal`: no `Signal` in the page, BENCHMARKS.md says why).
    pub fn people(&self) -> Callback<(), Vec<String>> {
        let (members, timeline) = (self.members, self.timeline);
        Callback::new(move |()| {
            let mut names = members.with(|m| m.names().to_vec());
            timeline.with(|t| {
                let recent = t.messages().iter().rev().take(RECENT_SENDERS);
                names.extend(recent.map(|m| m.username.clone()));
            });
            names
        })
    }

    /// What tells the person of messages while the tab is hidden.
    pub fn notifier(&self) -> Notifier {
        self.notifier
    }

    pub fn typists(&self) -> Reader<Typists> {
        self.typists.into()
    }

    pub fn problem(&self) -> Reader<Option<String>> {
        self.problem.into()
    }

    pub fn has_older(&self) -> Memo<bool> {
        let timeline = self.timeline;
        Memo::new(move |_| timeline.with(Timeline::has_older))
    }

    pub fn loading_older(&self) -> Reader<bool> {
        self.loading_older.into()
    }

    pub fn read_before(&self) -> Reader<Option<Key>> {
        self.read_before.into()
    }

    pub fn live(&self) -> Reader<Option<String>> {
        self.live.into()
    }

    /// (epoch, newest id) of what is shown, i.e. what the person has seen of the room;
    /// read tracked, so an effect calling it runs again when messages come.
    pub fn seen(&self) -> (u64, u64) {
        self.timeline.with(|t| (t.epoch(), t.last_id()))
    }

    /// The shown messages, each paired with its key: ids restart in a new epoch, so the
    /// list must key rows by (epoch, id) or it would keep an old row for a reused id.
    pub fn messages(&self) -> Memo<Vec<((u64, u64), MessageResponse)>> {
        let timeline = self.timeline;
        Memo::new(move |_| {
            timeline.with(|t| {
                t.messages()
                    .iter()
                    .map(|m| ((t.epoch(), m.id), m.clone()))
                    .collect()
            })
        })
    }

    /// Shows `room`: ends the current room's stream (if any) and starts following this one
    /// from its latest page. Opening the room already shown restarts it (e.g. after a
    /// new sign-in, so the stream carries the new session).
    pub fn open(self, room: String) {
        self.close();
        self.room.set(room.clone());
        self.timeline.set(Timeline::default());
        self.members.set(Members::default());
        self.typists.set(Typists::default());
        self.problem.set(None);
        self.loading_older.set(false);
        self.read_before.set(None);
        self.live.set(None);
        self.state.set(ConnState::Connecting);
        // Read before the room list marks this room read, which it does once it is shown.
        let seen = Unread::load().seen(&room);
        let stop = Stop::default();
        self.run.set_value(Some(stop.clone()));
        spawn_local(stop.guard(self.follow_room(room, seen)));
    }

    /// Stops following (signed out). What is shown stays until the next `open`.
    pub fn close(self) {
        if let Some(stop) = self.run.try_update_value(Option::take).flatten() {
            stop.stop();
        }
    }

    /// Pages in the messages before the oldest shown (the reader scrolled up). One page at
    /// a time; a room switch discards a page still on its way.
    pub fn load_older(self) {
        let Some(stop) = self.run.get_value() else {
            return;
        };
        let (epoch, before_id, has_older) = self
            .timeline
            .with_untracked(|t| (t.epoch(), t.oldest_id(), t.has_older()));
        if !has_older || before_id == 0 || self.loading_older.get_untracked() {
            return;
        }
        self.loading_older.set(true);
        let room = self.room.get_untracked();
        let client = self.client.get_value();
        spawn_local(stop.guard(async move {
            match client.history(&room, before_id, HISTORY_PAGE).await {
                // A page from another epoch would replace the view; the stream's next
                // Welcome sorts that out instead.
                Ok(page) if page.epoch == epoch => self
                    .timeline
                    .update(|t| t.load_history(page.epoch, page.messages, page.has_more)),
                Ok(_) => {}
                Err(e) => warn!("older history failed: {}", e.message),
            }
            self.loading_older.set(false);
        }));
    }

    /// Scrolls to message `id` (a reply's original), paging older history in until it is
    /// shown, at most `JUMP_PAGES` pages back.
    pub fn jump_to(self, id: u64) {
        spawn_local(async move {
            for _ in 0..JUMP_PAGES {
                let (shown, older) = self
                    .timeline
                    .with_untracked(|t| (t.messages().iter().any(|m| m.id == id), t.has_older()));
                if shown || !older {
                    break;
                }
                self.load_older();
                sleep_ms(50).await;
                while self.loading_older.get_untracked() {
                    sleep_ms(50).await;
                }
            }
            // Drawn by the next frame.
            sleep_ms(50).await;
            let row = document()
                .query_selector(&format!("[data-testid=message][data-id=\"{id}\"]"))
                .ok()
                .flatten();
            if let Some(row) = row {
                row.scroll_into_view();
                let _ = row.class_list().add_1("found");
            }
        });
    }

    async fn follow_room(self, room: String, seen: Option<Key>) {
        let client = self.client.get_value();
        let mut attempt: u32 = 0;
        let mut have_history = false;
        loop {
            if !have_history {
                match client.history(&room, 0, HISTORY_PAGE).await {
                    Ok(page) => {
                        let newest = page.messages.last().map(|m| (page.epoch, m.id));
                        if seen.is_some_and(|seen| seen.0 == page.epoch && newest > Some(seen)) {
                            self.read_before.set(seen);
                        }
                        self.timeline
                            .update(|t| t.load_history(page.epoch, page.messages, page.has_more));
                        have_history = true;
                    }
                    Err(e) => self.failed("history", e),
                }
            }
            if have_history {
                self.follow(&client, &room, &mut attempt).await;
            }
            attempt += 1;
            self.wait_before_retry(attempt).await;
        }
    }

    /// Logs a failure; one the server explains (not a transport hiccup) is shown too.
    fn failed(&self, what: &str, e: ApiError) {
        warn!("{what} failed: {}", e.message);
        if e.kind == ErrorKind::Refused {
            self.problem.set(Some(e.message));
        }
    }

    /// One Subscribe stream, read until it ends or fails.
    async fn follow(&self, client: &ChatClient, room: &str, attempt: &mut u32) {
        let (after_id, epoch) = self.timeline.with_untracked(|t| (t.last_id(), t.epoch()));
        let mut stream = match client.subscribe(room, after_id, epoch).await {
            Ok(stream) => stream,
            Err(e) => return self.failed("subscribe", e),
        };
        let mut offline = pin!(WentOffline::new());
        // Any event, heartbeats included, proves the stream alive; silence longer than the
        // limit means a dead connection that no error will ever report.
        let last_heard = Cell::new(now_ms());
        let mut silent = Box::pin(silence(&last_heard, WELCOME_TIMEOUT_MS));
        loop {
            let event = match next_event(&mut stream, offline.as_mut(), silent.as_mut()).await {
                Next::Event(event) => event,
                Next::Offline => return warn!("browser went offline; dropping the feed"),
                Next::Silent => return warn!("feed went silent; reconnecting"),
            };
            last_heard.set(now_ms());
            match event {
                Ok(Some(FeedEvent::Welcome(w))) => {
                    // Re-armed, not adjusted: the pending timer may be set for far longer.
                    let limit = match w.heartbeat_ms {
                        0 => NO_WATCHDOG_MS,
                        ms => ms.saturating_mul(MISSED_HEARTBEATS),
                    };
                    silent = Box::pin(silence(&last_heard, limit));
                    self.timeline.update(|t| t.welcome(w.epoch, w.reset));
                    self.members
                        .set(Members::welcome(w.members, w.member_count));
                    self.problem.set(None);
                    // after_id 0 means "live only" to the server, so with nothing seen yet
                    // (empty room at load, or emptied by a reset) whatever was posted
                    // before this stream began would be skipped: fetch it explicitly.
                    if !w.reset && after_id == 0 && w.last_id > 0 {
                        match client.history(room, w.last_id + 1, HISTORY_PAGE).await {
                            Ok(page) => self.timeline.update(|t| {
                                t.load_history(page.epoch, page.messages, page.has_more)
                            }),
                            Err(e) => return warn!("history after welcome failed: {}", e.message),
                        }
                    }
                    self.state.set(ConnState::Live);
                    *attempt = 0;
                }
                Ok(Some(FeedEvent::Message(m))) => {
                    self.typists.maybe_update(|t| t.spoke(&m.username));
                    let me = client.who().map(|me| mention::fold(&me.name));
                    let others = me
                        .as_ref()
                        .is_none_or(|me| *me != mention::fold(&m.username));
                    let heard = others.then(|| format!("{}: {}", m.username, m.text));
                    // In a conversation every message is for the reader.
                    let for_me = room.starts_with('@')
                        || me.is_some_and(|me| mention::mentions(&m.text, &me));
                    let alert = (others && for_me).then(|| self.mention_alert(room, &m));
                    let mut new = false;
                    self.timeline.maybe_update(|t| {
                        new = t.push(m);
                        new
                    });
                    if new && heard.is_some() {
                        self.live.set(heard);
                        self.notifier.arrived(alert);
                    }
                }
                Ok(Some(FeedEvent::Change(c))) => self.timeline.maybe_update(|t| t.apply(c)),
                Ok(Some(FeedEvent::Presence(p))) => self
                    .members
                    .update(|m| m.changed(&p.username, p.joined, p.member_count)),
                Ok(Some(FeedEvent::Typing(t))) => self.someone_typing(t.username, t.expires_ms),
                Ok(Some(FeedEvent::Heartbeat)) => {}
                Ok(None) => return warn!("feed ended by the server"),
                Err(e) => return warn!("feed broke: {}", e.message),
            }
        }
    }

    /// The notification for a mention of the reader in `room`: a click opens the room at
    /// the message.
    fn mention_alert(&self, room: &str, m: &MessageResponse) -> Alert {
        let (feed, room, id) = (*self, room.to_owned(), m.id);
        Alert {
            title: format!("{} in {}", m.username, room_name::title(&room)),
            body: m.text.clone(),
            open: Callback::new(move |()| match feed.room.get_untracked() == room {
                true => feed.jump_to(id),
                // The person went elsewhere meanwhile: back to the room (see app's hash).
                false => {
                    let _ = window().location().set_hash(&room);
                }
            }),
        }
    }

    /// Shows `name` as typing and clears it when it expires (one timer per event: at most
    /// one event a second per person, each a few seconds long).
    fn someone_typing(&self, name: String, expires_ms: u32) {
        self.typists
            .update(|t| t.typing(name, expires_ms, now_ms()));
        let typists = self.typists;
        spawn_local(async move {
            sleep_ms(expires_ms.saturating_add(50)).await;
            typists.maybe_update(|t| t.expire(now_ms()));
        });
    }

    /// Sleeps the backoff delay, showing a whole-second countdown; while the browser is
    /// offline it waits for the network instead and then retries at once.
    async fn wait_before_retry(&self, attempt: u32) {
        let mut left = backoff::delay_ms(attempt, js_sys::Math::random());
        loop {
            if !network::online() {
                self.state.set(ConnState::Offline);
                while !network::online() {
                    sleep_ms(1000).await;
                }
                break;
            }
            if left == 0 {
                break;
            }
            self.state.set(ConnState::Reconnecting {
                attempt,
                retry_in_s: Some(left.div_ceil(1000)),
            });
            // Sleep to the next whole second so the countdown ticks on integer values.
            let step = match left % 1000 {
                0 => 1000,
                part => part,
            };
            sleep_ms(step).await;
            left -= step;
        }
        self.state.set(ConnState::Reconnecting {
            attempt,
            retry_in_s: None,
        });
    }
}

enum Next {
    Event(Result<Option<FeedEvent>, ApiError>),
    Offline,
    Silent,
}

/// The stream's next event, unless the browser goes offline or the stream falls silent
/// first.
async fn next_event(
    stream: &mut EventStream,
    mut offline: Pin<&mut WentOffline>,
    mut silent: Pin<&mut impl Future<Output = ()>>,
) -> Next {
    let mut next = pin!(stream.next());
    poll_fn(|cx| {
        if let Poll::Ready(event) = next.as_mut().poll(cx) {
            return Poll::Ready(Next::Event(event));
        }
        if offline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Next::Offline);
        }
        silent.as_mut().poll(cx).map(|()| Next::Silent)
    })
    .await
}

/// Resolves once nothing has been heard for `limit_ms`. One timer at a time, re-armed
/// from the last event, rather than a timer per event.
async fn silence(last_heard: &Cell<f64>, limit_ms: u32) {
    loop {
        let quiet_for = now_ms() - last_heard.get();
        let left = f64::from(limit_ms) - quiet_for;
        if left <= 0.0 {
            return;
        }
        sleep_ms(left.ceil() as u32).await;
    }
}

/// Ends a room's tasks: `guard` runs a future until it finishes or `stop` is called,
/// whichever is first; the future is then dropped (and with it any open stream).
#[derive(Clone, Default)]
struct Stop(Rc<StopState>);

#[derive(Default)]
struct StopState {
    stopped: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Stop {
    fn stop(&self) {
        self.0.stopped.set(true);
        for waker in self.0.wakers.take() {
            waker.wake();
        }
    }

    async fn guard(self, task: impl Future<Output = ()>) {
        let mut task = pin!(task);
        poll_fn(|cx| {
            if self.0.stopped.get() {
                return Poll::Ready(());
            }
            if task.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            let mut wakers = self.0.wakers.borrow_mut();
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}
