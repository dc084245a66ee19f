//! The live feed of one room: loads recent history, keeps a Subscribe stream open and
//! reconnects with backoff when it ends, resuming after the last id seen in the known
//! epoch so the server replays exactly what was missed. It runs for the page's lifetime;
//! components only read its two signals.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;

use chat_proto::MessageResponse;
use leptos::logging::warn;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::backoff;
use crate::client::{ApiError, ChatClient, EventStream, FeedEvent};
use crate::network::{self, WentOffline};
use crate::timeline::Timeline;

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
    timeline: RwSignal<Timeline>,
    state: RwSignal<ConnState>,
    started: StoredValue<bool>,
}

impl Feed {
    pub fn new() -> Self {
        Feed {
            timeline: RwSignal::new(Timeline::default()),
            state: RwSignal::new(ConnState::Connecting),
            started: StoredValue::new(false),
        }
    }

    pub fn state(&self) -> Signal<ConnState> {
        self.state.into()
    }

    /// The shown messages, each paired with its key: ids restart in a new epoch, so the
    /// list must key rows by (epoch, id) or it would keep an old row for a reused id.
    pub fn messages(&self) -> Signal<Vec<((u64, u64), MessageResponse)>> {
        let timeline = self.timeline;
        Signal::derive(move || {
            timeline.with(|t| {
                t.messages()
                    .iter()
                    .map(|m| ((t.epoch(), m.id), m.clone()))
                    .collect()
            })
        })
    }

    /// Starts the feed once; later calls (e.g. after a name change) are no-ops.
    pub fn start(self, client: ChatClient, room: &'static str) {
        if self.started.get_value() {
            return;
        }
        self.started.set_value(true);
        spawn_local(self.run(client, room));
    }

    async fn run(self, client: ChatClient, room: &'static str) {
        let mut attempt: u32 = 0;
        let mut have_history = false;
        loop {
            if !have_history {
                match client.history(room, 0, HISTORY_PAGE).await {
                    Ok(page) => {
                        self.timeline
                            .update(|t| t.load_history(page.epoch, page.messages));
                        have_history = true;
                    }
                    Err(e) => warn!("history failed: {}", e.message),
                }
            }
            if have_history {
                self.follow(&client, room, &mut attempt).await;
            }
            attempt += 1;
            self.wait_before_retry(attempt).await;
        }
    }

    /// One Subscribe stream, read until it ends or fails.
    async fn follow(&self, client: &ChatClient, room: &str, attempt: &mut u32) {
        let (after_id, epoch) = self.timeline.with_untracked(|t| (t.last_id(), t.epoch()));
        let mut stream = match client.subscribe(room, after_id, epoch).await {
            Ok(stream) => stream,
            Err(e) => return warn!("subscribe failed: {}", e.message),
        };
        let mut offline = pin!(WentOffline::new());
        // Any event, heartbeats included, proves the stream alive; silence longer than the
        // limit means a dead connection that no error will ever report.
        let last_heard = Cell::new(js_sys::Date::now());
        let mut silent = Box::pin(silence(&last_heard, WELCOME_TIMEOUT_MS));
        loop {
            let event = match next_event(&mut stream, offline.as_mut(), silent.as_mut()).await {
                Next::Event(event) => event,
                Next::Offline => return warn!("browser went offline; dropping the feed"),
                Next::Silent => return warn!("feed went silent; reconnecting"),
            };
            last_heard.set(js_sys::Date::now());
            match event {
                Ok(Some(FeedEvent::Welcome(w))) => {
                    // Re-armed, not adjusted: the pending timer may be set for far longer.
                    let limit = match w.heartbeat_ms {
                        0 => NO_WATCHDOG_MS,
                        ms => ms.saturating_mul(MISSED_HEARTBEATS),
                    };
                    silent = Box::pin(silence(&last_heard, limit));
                    self.timeline.update(|t| t.welcome(w.epoch, w.reset));
                    // after_id 0 means "live only" to the server, so with nothing seen yet
                    // (empty room at load, or emptied by a reset) whatever was posted
                    // before this stream began would be skipped: fetch it explicitly.
                    if !w.reset && after_id == 0 && w.last_id > 0 {
                        match client.history(room, w.last_id + 1, HISTORY_PAGE).await {
                            Ok(page) => self
                                .timeline
                                .update(|t| t.load_history(page.epoch, page.messages)),
                            Err(e) => return warn!("history after welcome failed: {}", e.message),
                        }
                    }
                    self.state.set(ConnState::Live);
                    *attempt = 0;
                }
                Ok(Some(FeedEvent::Message(m))) => {
                    self.timeline.maybe_update(|t| t.push(m));
                }
                Ok(Some(FeedEvent::Heartbeat)) => {}
                Ok(None) => return warn!("feed ended by the server"),
                Err(e) => return warn!("feed broke: {}", e.message),
            }
        }
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
        let quiet_for = js_sys::Date::now() - last_heard.get();
        let left = f64::from(limit_ms) - quiet_for;
        if left <= 0.0 {
            return;
        }
        sleep_ms(left.ceil() as u32).await;
    }
}

/// A timer as a future (setTimeout wrapped in a Promise), avoiding a timer crate.
async fn sleep_ms(ms: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                resolve.unchecked_ref(),
                ms as i32,
            );
        }
    });
    let _ = JsFuture::from(promise).await;
}
