//! Sends are idempotent: a message sent with a `client_msg_id` is posted once per
//! (sender, id) within a day, and a repeat gets the original back, so a client that lost
//! the answer can safely send again. The record lives in the store, written in the same
//! transaction as the message, so it holds across restarts; identical sends in flight at
//! the same moment meet here first, in memory: the first one posts, the others wait for
//! its message. Through several servers on one PostgreSQL they meet in the database: the
//! writer that commits second stores nothing and answers with the first one's message. A repeat with another text or room is refused, not answered with a
//! message it did not ask for.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::watch;

use crate::{
    error::ChatError,
    hub::RoomHub,
    room::{Reply, Room},
    sessions::{name_key, Sender},
    shutdown::Shutdown,
    store::{Committed, MessageStore, SentId},
    wall_clock::unix_ms,
};

/// How long a sent id is remembered: a repeat after that is a new message.
pub const SENT_ID_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How often records older than `SENT_ID_TTL` are deleted. Until then they are ignored.
pub const PRUNE_EVERY: Duration = Duration::from_secs(10 * 60);

/// The sends with a client id that are on their way to the store; cheap to clone.
#[derive(Clone, Default)]
pub struct InFlight {
    sends: Arc<Mutex<HashMap<SentId, watch::Receiver<Option<Committed>>>>>,
}

enum Claim {
    /// Nobody else is sending this pair: go ahead, and report through the guard.
    First(FirstSend),
    /// Another send of the pair is in flight: its message arrives here (`None` if it
    /// failed or gave up, and then it is this send's turn to try).
    Wait(watch::Receiver<Option<Committed>>),
}

/// Held by the send that goes first; dropping it lets the waiting ones go on.
struct FirstSend {
    in_flight: InFlight,
    sent: SentId,
    result: watch::Sender<Option<Committed>>,
}

impl FirstSend {
    fn done(&self, msg: &Committed) {
        self.result.send_replace(Some(Arc::clone(msg)));
    }
}

impl Drop for FirstSend {
    fn drop(&mut self) {
        // Gone from the map before the sender drops, so nobody starts waiting on a send
        // that will never report; those already waiting wake when `result` drops.
        self.in_flight.sends.lock().unwrap().remove(&self.sent);
    }
}

impl InFlight {
    fn claim(&self, sent: &SentId) -> Claim {
        let mut sends = self.sends.lock().unwrap();
        if let Some(result) = sends.get(sent) {
            return Claim::Wait(result.clone());
        }
        let (result, waiting) = watch::channel(None);
        sends.insert(sent.clone(), waiting);
        Claim::First(FirstSend {
            in_flight: self.clone(),
            sent: sent.clone(),
            result,
        })
    }
}

/// Posts `text` to `room` as `sender` unless the same person (by `name_key`) already
/// sent `client_msg_id` within `SENT_ID_TTL`; either way resolves with the message that
/// id stands for.
pub async fn post_once(
    hub: &RoomHub,
    room: &Room,
    sender: Sender<'_>,
    text: &str,
    reply: Option<Reply>,
    client_msg_id: &str,
) -> Result<Committed, ChatError> {
    let sent = SentId {
        sender_key: name_key(&sender.name),
        client_msg_id: client_msg_id.to_owned(),
    };
    loop {
        let first = match hub.in_flight().claim(&sent) {
            Claim::First(first) => first,
            Claim::Wait(mut result) => {
                // Err only means the first send is over; what it left says how.
                let _ = result.changed().await;
                let posted = result.borrow().clone();
                match posted {
                    Some(original) => return same_request(original, &sent, room.name(), text),
                    None => continue,
                }
            }
        };
        let since = unix_ms() - SENT_ID_TTL.as_millis() as i64;
        if let Some(original) = hub.store().find_sent(&sent, since).await? {
            let original = Arc::new(original);
            first.done(&original);
            return same_request(original, &sent, room.name(), text);
        }
        let posting = room.post(hub.store(), sender, text, reply, Some(sent.clone()))?;
        // The message is queued now; whatever becomes of this request (its client may go
        // away), the claim is held until the store has answered, so a repeat arriving
        // meanwhile waits for the message instead of posting a second one.
        let task = tokio::spawn(async move {
            let posted = posting.await;
            if let Ok(msg) = &posted {
                first.done(msg);
            }
            posted
        });
        // The store answers with the original instead when another server committed the
        // pair first (the same send racing through both).
        return match task.await {
            Ok(posted) => same_request(posted?, &sent, room.name(), text),
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => Err(ChatError::ShuttingDown),
        };
    }
}

/// The original, if the repeat asked for the same thing.
fn same_request(
    original: Committed,
    sent: &SentId,
    room: &str,
    text: &str,
) -> Result<Committed, ChatError> {
    if original.room == room && original.text == text {
        return Ok(original);
    }
    Err(ChatError::ClientMsgIdReused {
        client_msg_id: sent.client_msg_id.clone(),
        room: original.room.clone(),
        id: original.id,
    })
}

/// Deletes expired records every `PRUNE_EVERY` until shutdown. Lookups ignore them
/// anyway; this only keeps the table from growing.
pub async fn prune_every(store: MessageStore, shutdown: Shutdown) {
    let mut ticks = shutdown.every(PRUNE_EVERY);
    while ticks.next().await {
        let before = unix_ms() - SENT_ID_TTL.as_millis() as i64;
        // A failure is logged by the writer; the next round tries again.
        if let Ok(pruned @ 1..) = store.prune_sent(before).await {
            tracing::debug!(pruned, "forgot sent ids older than a day");
        }
    }
}
