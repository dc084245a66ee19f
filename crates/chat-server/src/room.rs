//! One chat room: assigns ids, keeps a bounded buffer of recent messages, and fans new
//! messages out to subscribers.
//!
//! Posting and subscribing take the same short std-mutex section, so a subscriber's
//! replay snapshot and its live receiver meet exactly: no gap, no duplicate. The lock is
//! per room (never global) and never held across an await. Fan-out goes through a tokio
//! broadcast channel: one shared ring of `Arc`ed messages, so a slow subscriber costs no
//! memory of its own and never blocks the sender; when it falls a full ring behind it is
//! told so and cut off, and resumes from its last id.
use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use chat_proto::MessageResponse;
use futures::Stream;
use tokio::sync::broadcast;

use crate::{error::ChatError, shutdown::Shutdown};

/// A posted message, shared by the history buffer and every subscriber.
pub type Message = Arc<MessageResponse>;

pub struct Room {
    name: Arc<str>,
    state: Mutex<RoomState>,
    live: broadcast::Sender<Message>,
    queue_len: usize,
}

struct RoomState {
    last_id: u64,
    history: VecDeque<Message>,
    history_cap: usize,
}

/// What a new subscriber gets: the messages it missed, then the live feed.
pub struct Subscription {
    /// Newest id in the room when the subscription started.
    pub last_id: u64,
    pub replay: Vec<Message>,
    live: broadcast::Receiver<Message>,
    queue_len: usize,
}

/// A page of history, oldest first.
pub struct HistoryPage {
    pub messages: Vec<Message>,
    pub has_more: bool,
}

impl Room {
    pub fn new(name: &str, history_cap: usize, queue_len: usize) -> Self {
        let (live, _) = broadcast::channel(queue_len.max(1));
        Room {
            name: name.into(),
            state: Mutex::new(RoomState {
                last_id: 0,
                history: VecDeque::with_capacity(history_cap.min(1024)),
                history_cap: history_cap.max(1),
            }),
            live,
            queue_len: queue_len.max(1),
        }
    }

    /// Assigns the next id, records the message and fans it out. Text and name must
    /// already be validated.
    pub fn post(&self, username: &str, text: &str) -> Message {
        let sent_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let mut state = self.state.lock().unwrap();
        state.last_id += 1;
        let msg = Arc::new(MessageResponse {
            message: format!("[{username}]: {text}"),
            id: state.last_id,
            username: username.to_owned(),
            room: self.name.to_string(),
            text: text.to_owned(),
            sent_at_ms,
        });
        if state.history.len() == state.history_cap {
            state.history.pop_front();
        }
        state.history.push_back(msg.clone());
        // Sent under the lock so ids reach the channel in order. An error only means
        // nobody is listening right now.
        let _ = self.live.send(msg.clone());
        msg
    }

    /// Live feed, preceded by every buffered message with id > `replay_after` if given.
    pub fn subscribe(&self, replay_after: Option<u64>) -> Subscription {
        let state = self.state.lock().unwrap();
        let replay = match replay_after {
            Some(after) => state
                .history
                .iter()
                .filter(|m| m.id > after)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        Subscription {
            last_id: state.last_id,
            replay,
            live: self.live.subscribe(),
            queue_len: self.queue_len,
        }
    }

    pub fn last_id(&self) -> u64 {
        self.state.lock().unwrap().last_id
    }

    /// Up to `limit` messages with id < `before_id` (0 = newest), oldest first.
    pub fn history(&self, before_id: u64, limit: usize) -> HistoryPage {
        let state = self.state.lock().unwrap();
        let end = match before_id {
            0 => state.history.len(),
            b => state.history.partition_point(|m| m.id < b),
        };
        let start = end.saturating_sub(limit);
        HistoryPage {
            messages: state.history.range(start..end).cloned().collect(),
            has_more: start > 0 || state.history.front().is_some_and(|m| m.id > 1),
        }
    }
}

impl Subscription {
    /// The replay, then live messages, until the room goes away or shutdown. A subscriber
    /// that lagged past the queue gets `SubscriberLagged` and the stream ends.
    pub fn into_stream(
        self,
        shutdown: Shutdown,
    ) -> impl Stream<Item = Result<Message, ChatError>> + Send + 'static {
        let Subscription {
            replay,
            mut live,
            queue_len,
            ..
        } = self;
        async_stream::stream! {
            for msg in replay {
                yield Ok(msg);
            }
            let stop = shutdown.wait_owned();
            tokio::pin!(stop);
            loop {
                // `yield` cannot sit inside select!'s arms, so pick first, then act.
                let received = tokio::select! {
                    biased;
                    received = live.recv() => Some(received),
                    _ = &mut stop => None,
                };
                match received {
                    Some(Ok(msg)) => yield Ok(msg),
                    Some(Err(broadcast::error::RecvError::Lagged(_))) => {
                        yield Err(ChatError::SubscriberLagged(queue_len));
                        break;
                    }
                    Some(Err(broadcast::error::RecvError::Closed)) => break,
                    None => {
                        yield Err(ChatError::ShuttingDown);
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn ids_increase_and_history_is_bounded() {
        let room = Room::new("general", 3, 16);
        for i in 1..=5 {
            assert_eq!(room.post("a", &format!("m{i}")).id, i);
        }
        let page = room.history(0, 10);
        assert_eq!(
            page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        assert!(
            page.has_more,
            "ids 1-2 were evicted, so older messages exist"
        );
        let page = room.history(5, 1);
        assert_eq!(page.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [4]);
        assert_eq!(room.history(0, 10).messages[0].message, "[a]: m3");
    }

    #[test]
    fn history_has_more_is_false_at_the_start() {
        let room = Room::new("general", 10, 16);
        room.post("a", "x");
        room.post("a", "y");
        assert!(!room.history(0, 10).has_more);
        assert!(room.history(0, 1).has_more);
        assert!(room.history(3, 2).messages.len() == 2);
    }

    #[tokio::test]
    async fn replay_then_live_without_gap_or_duplicate() {
        let room = Room::new("general", 100, 16);
        room.post("a", "1");
        room.post("a", "2");
        let sub = room.subscribe(Some(1));
        assert_eq!(sub.last_id, 2);
        room.post("b", "3");
        let mut stream = Box::pin(sub.into_stream(Shutdown::new()));
        let mut ids = Vec::new();
        for _ in 0..2 {
            ids.push(stream.next().await.unwrap().unwrap().id);
        }
        assert_eq!(ids, [2, 3]);
    }

    #[tokio::test]
    async fn lagging_subscriber_is_cut_off_and_others_are_not() {
        let room = Room::new("general", 100, 4);
        let slow = room.subscribe(None);
        let fast = room.subscribe(None);
        let mut fast = Box::pin(fast.into_stream(Shutdown::new()));
        for i in 0..10 {
            room.post("a", &i.to_string());
            assert_eq!(fast.next().await.unwrap().unwrap().id, i + 1);
        }
        let mut slow = Box::pin(slow.into_stream(Shutdown::new()));
        assert_eq!(
            slow.next().await.unwrap(),
            Err(ChatError::SubscriberLagged(4))
        );
        assert!(slow.next().await.is_none());
        // Resuming from the last id it saw (none) replays everything still buffered.
        let resumed = room.subscribe(Some(0));
        assert_eq!(resumed.replay.len(), 10);
    }

    #[tokio::test]
    async fn shutdown_ends_streams() {
        let room = Room::new("general", 10, 4);
        let shutdown = Shutdown::new();
        let mut stream = Box::pin(room.subscribe(None).into_stream(shutdown.clone()));
        shutdown.trigger();
        assert_eq!(stream.next().await.unwrap(), Err(ChatError::ShuttingDown));
        assert!(stream.next().await.is_none());
    }
}
