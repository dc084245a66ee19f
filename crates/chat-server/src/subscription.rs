//! One Subscribe stream, from its Welcome to its end, as a hand-written `Stream`.
//!
//! Order of events: the Welcome; then the messages the client missed that have already
//! left the room's ring, read from the store page by page (any size of gap); then the
//! ring from the resume point on, live. Ids the store replay already delivered are
//! skipped when the ring repeats them, so the seam has no gap and no duplicate.
//!
//! The live path is the hot one (every delivery to every subscriber goes through it), so
//! it is a plain state machine rather than an async block: a poll pops an already
//! encoded event from the reader's local batch, nothing else. Heartbeats use one timer
//! per stream that is never touched while events flow: each tick only checks whether
//! anything was sent since the previous one.
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use chat_proto::{chat_event::Event, encode_message, ChatEvent, Encoded, Heartbeat};
use futures::{stream::BoxStream, Stream, StreamExt};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::{
    client_stream::ClientStream,
    error::ChatError,
    fanout::{ReadError, Reader},
    room::{MemberGuard, Room},
    sessions::StreamGuard,
    store::{Committed, MessageStore, StoreError},
};

/// Rows per store read while catching up, and the text bytes at which a page stops early:
/// a stream that stops reading mid catch-up holds one page at most.
const CATCH_UP_PAGE: usize = 500;
const CATCH_UP_PAGE_BYTES: usize = 64 * 1024;

pub struct Subscription {
    welcome: Option<Encoded<ChatEvent>>,
    catch_up: Option<BoxStream<'static, Result<Committed, StoreError>>>,
    /// False until the first event after a catch-up came from the ring: a reader that
    /// lags while the store replay runs is moved on and catches up again, since the
    /// client is not slow, the replay is just long.
    caught_up: bool,
    reader: Reader,
    room: Arc<Room>,
    store: MessageStore,
    client: Option<ClientStream>,
    queue_len: usize,
    /// The newest message id sent on this stream.
    last_id: u64,
    heartbeat: Option<HeartbeatTimer>,
    finished: bool,
    /// Held for the stream's life: membership of the room, the session's stream slot.
    _member: Option<MemberGuard>,
    slot: Option<StreamGuard>,
    /// Resolves when the signed-in subscriber's session ends; the stream ends with it.
    session_ended: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

/// The parts a Subscribe stream is made of; see `RoomHub::subscribe`.
pub struct SubscriptionParts {
    pub welcome: Encoded<ChatEvent>,
    pub reader: Reader,
    pub queue_len: usize,
    /// Resume point: messages with id > after_id are sent.
    pub after_id: u64,
    /// Messages up to this id come from the store (0 = none needed).
    pub catch_up_to: u64,
    pub store: MessageStore,
    pub room: Arc<Room>,
    pub heartbeat: Option<Duration>,
    pub member: Option<MemberGuard>,
    pub slot: Option<StreamGuard>,
    pub client: Option<ClientStream>,
}

impl Subscription {
    pub fn new(parts: SubscriptionParts) -> Self {
        let catch_up = (parts.catch_up_to > parts.after_id).then(|| {
            catch_up(
                parts.store.clone(),
                parts.room.name().to_owned(),
                parts.after_id,
                parts.catch_up_to,
            )
            .boxed()
        });
        Subscription {
            welcome: Some(parts.welcome),
            caught_up: catch_up.is_none(),
            catch_up,
            reader: parts.reader,
            room: parts.room,
            store: parts.store,
            client: parts.client,
            queue_len: parts.queue_len,
            last_id: parts.after_id,
            heartbeat: parts.heartbeat.map(HeartbeatTimer::new),
            finished: false,
            _member: parts.member,
            session_ended: parts
                .slot
                .as_ref()
                .map(|slot| Box::pin(slot.session().ended())),
            slot: parts.slot,
        }
    }

    fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Encoded<ChatEvent>, ChatError>>> {
        if let Some(welcome) = self.welcome.take() {
            return Poll::Ready(Some(Ok(welcome)));
        }
        if let Some(catch_up) = &mut self.catch_up {
            // The stall sweeper hears of every step, so a long catch-up is not mistaken
            // for a stream that stopped reading (its ring cursor is behind meanwhile).
            let step = catch_up.poll_next_unpin(cx);
            self.reader.store_progress(step.is_pending());
            match step {
                Poll::Ready(Some(Ok(msg))) => {
                    self.last_id = msg.id;
                    return Poll::Ready(Some(Ok(encode_message(&msg).0)));
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err.into()))),
                Poll::Ready(None) => self.catch_up = None,
                Poll::Pending => return Poll::Pending,
            }
        }
        loop {
            match self.reader.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(entry))) => {
                    self.caught_up = true;
                    if entry.id != 0 {
                        if entry.id <= self.last_id {
                            continue; // already sent by the store replay
                        }
                        self.last_id = entry.id;
                    }
                    return Poll::Ready(Some(Ok(entry.event.clone())));
                }
                Poll::Ready(Some(Err(ReadError::Lagged))) if !self.caught_up => {
                    self.catch_up_again();
                    return self.poll_event(cx);
                }
                Poll::Ready(Some(Err(ReadError::Lagged))) => {
                    return Poll::Ready(Some(Err(ChatError::SubscriberLagged {
                        queue_len: self.queue_len,
                        last_id: self.last_id,
                    })))
                }
                // Rooms close their rings only when the server shuts down.
                Poll::Ready(None) => return Poll::Ready(Some(Err(ChatError::ShuttingDown))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Stream for Subscription {
    type Item = Result<Encoded<ChatEvent>, tonic::Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        // An atomic load per poll; the waker is registered only when the stream goes idle.
        if this.slot.as_ref().is_some_and(|s| s.session().is_ended()) {
            this.finished = true;
            return Poll::Ready(Some(Err(ChatError::SessionEnded.into())));
        }
        match this.poll_event(cx) {
            Poll::Ready(Some(Ok(event))) => {
                if let Some(heartbeat) = &mut this.heartbeat {
                    heartbeat.sent = true;
                }
                Poll::Ready(Some(Ok(event)))
            }
            Poll::Ready(Some(Err(err))) => {
                this.finished = true;
                Poll::Ready(Some(Err(err.into())))
            }
            Poll::Ready(None) => {
                this.finished = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some(ended) = &mut this.session_ended {
                    if ended.as_mut().poll(cx).is_ready() {
                        this.finished = true;
                        return Poll::Ready(Some(Err(ChatError::SessionEnded.into())));
                    }
                }
                let due = this.heartbeat.as_mut().is_some_and(|h| h.poll_due(cx));
                if due {
                    Poll::Ready(Some(Ok(Encoded::event(Event::Heartbeat(Heartbeat {})))))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl Subscription {
    /// Moves the reader to the ring's oldest message past what was sent, and fills the
    /// stretch before it from the store. Presence and typing events published meanwhile
    /// are skipped: they left the ring unseen.
    fn catch_up_again(&mut self) {
        let (reader, first_queued) = self.room.reader_after(self.last_id, self.client.clone());
        let until = first_queued.map_or_else(|| self.room.last_id(), |first| first - 1);
        self.reader = reader;
        self.catch_up = Some(
            catch_up(
                self.store.clone(),
                self.room.name().to_owned(),
                self.last_id,
                until,
            )
            .boxed(),
        );
    }
}

/// The store part of a replay: messages in (after_id, until], oldest first.
fn catch_up(
    store: MessageStore,
    room: String,
    after_id: u64,
    until: u64,
) -> impl Stream<Item = Result<Committed, StoreError>> + Send + 'static {
    async_stream::try_stream! {
        let mut last = after_id;
        while last < until {
            let page = store.after(&room, last, CATCH_UP_PAGE, CATCH_UP_PAGE_BYTES).await?;
            if page.is_empty() {
                break;
            }
            for msg in page {
                if msg.id > until {
                    return;
                }
                last = msg.id;
                yield Arc::new(msg);
            }
        }
    }
}

/// Fires a heartbeat when half a period passed with nothing sent, checked every half
/// period: the timer is never reset per event, a stream is never silent for longer than
/// `every`, and a quiet stream gets one heartbeat per `every`.
struct HeartbeatTimer {
    tick: Pin<Box<Sleep>>,
    half: Duration,
    sent: bool,
}

impl HeartbeatTimer {
    fn new(every: Duration) -> Self {
        let half = (every / 2).max(Duration::from_millis(1));
        HeartbeatTimer {
            tick: Box::pin(tokio::time::sleep(half)),
            half,
            sent: false,
        }
    }

    /// True when a heartbeat must go out now.
    fn poll_due(&mut self, cx: &mut Context<'_>) -> bool {
        while self.tick.as_mut().poll(cx).is_ready() {
            self.tick.as_mut().reset(Instant::now() + self.half);
            // The heartbeat itself counts as sent, so silence gets one per period.
            if !std::mem::replace(&mut self.sent, false) {
                self.sent = true;
                return true;
            }
        }
        false
    }
}
