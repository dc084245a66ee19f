//! A Subscribe feed that outlives its server: when the stream breaks (the server restarted
//! or was killed, or nginx lost the upstream it was on), it subscribes again after the
//! last id it handed out, with backoff, so the server replays what came meanwhile and
//! nothing is missed or printed twice. Behind a balancer the new stream lands on whichever
//! server answers; the session's token holds there too.
use std::{collections::VecDeque, time::Duration};

use chat_proto::{
    chat_event::Event, ChatEvent, HistoryRequest, MessageResponse, SubscribeRequest, Welcome,
};
use tonic::{codec::Streaming, Code, Status};

use crate::{room::describe, session::Client};

/// Attempts in a row before the feed gives up: with the backoff below, about half a
/// minute without a server.
const MAX_ATTEMPTS: u32 = 8;
const FIRST_WAIT: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(5);

pub struct Resuming {
    client: Client,
    room: String,
    /// The history the ids belong to (`Welcome.epoch`).
    epoch: u64,
    /// The newest id handed out, or the room's newest when we subscribed.
    last_id: u64,
    /// `None` while the server is lost.
    events: Option<Streaming<ChatEvent>>,
    /// Failed attempts since the stream broke.
    attempts: u32,
    /// Why the stream broke, for the error if we give up.
    lost: Option<Status>,
    /// A resume had no id to resume after: the messages up to this id are read through
    /// History.
    unread: Option<u64>,
    /// Read through History, not handed out yet.
    missed: VecDeque<MessageResponse>,
}

impl Resuming {
    /// Follows `events`, opened live (after id 0) and welcomed by `welcome`.
    pub fn new(
        client: Client,
        room: String,
        welcome: &Welcome,
        events: Streaming<ChatEvent>,
    ) -> Self {
        Resuming {
            client,
            room,
            epoch: welcome.epoch,
            last_id: welcome.last_id,
            events: Some(events),
            attempts: 0,
            lost: None,
            unread: None,
            missed: VecDeque::new(),
        }
    }

    /// The next message or change, in id order, each once; `None` or an error once the
    /// server ends the feed for good, or none answers for `MAX_ATTEMPTS` tries.
    pub async fn next(&mut self) -> Option<Result<MessageResponse, Status>> {
        loop {
            if let Some(newest) = self.unread {
                if let Err(status) = self.read_missed(newest).await {
                    return Some(Err(status));
                }
            }
            if let Some(msg) = self.missed.pop_front() {
                return Some(Ok(msg));
            }
            let Some(events) = &mut self.events else {
                if let Err(status) = self.resubscribe().await {
                    return Some(Err(status));
                }
                continue;
            };
            let status = match events.message().await {
                Ok(Some(ChatEvent { event: Some(event) })) => match event {
                    Event::Message(msg) | Event::Change(msg) => {
                        // Already printed before the stream broke.
                        if msg.id <= self.last_id {
                            continue;
                        }
                        self.last_id = msg.id;
                        return Some(Ok(msg));
                    }
                    Event::Welcome(welcome) => {
                        self.welcomed(&welcome);
                        continue;
                    }
                    // Heartbeats, presence and typing have no line to print.
                    _ => continue,
                },
                Ok(Some(ChatEvent { event: None })) => continue,
                Ok(None) => Status::unavailable("the server closed the stream"),
                Err(status) if resumable(&status) => status,
                Err(status) => return Some(Err(status)),
            };
            eprintln!(
                "chat-cli: lost the room's feed ({}); reconnecting",
                describe(&status)
            );
            self.events = None;
            self.lost = Some(status);
        }
    }

    /// One attempt to subscribe again, after the backoff: Ok whether or not it worked
    /// (the next call tries again), an error once there is no point.
    async fn resubscribe(&mut self) -> Result<(), Status> {
        if self.attempts >= MAX_ATTEMPTS {
            return Err(self
                .lost
                .take()
                .unwrap_or_else(|| Status::unavailable("the server cannot be reached")));
        }
        tokio::time::sleep(wait(self.attempts)).await;
        self.attempts += 1;
        let asked = self
            .client
            .subscribe(SubscribeRequest {
                room: self.room.clone(),
                after_id: self.last_id,
                epoch: self.epoch,
            })
            .await;
        match asked {
            Ok(events) => self.events = Some(events.into_inner()),
            Err(status) if resumable(&status) => self.lost = Some(status),
            Err(status) => return Err(status),
        }
        Ok(())
    }

    /// A resumed stream's Welcome: we are back.
    fn welcomed(&mut self, welcome: &Welcome) {
        if self.attempts > 0 {
            eprintln!("chat-cli: reconnected");
        }
        self.attempts = 0;
        self.lost = None;
        if welcome.reset {
            // Another history (the database was restored): its ids start over, and the
            // server sends its newest page next.
            eprintln!("chat-cli: the server's history is not the one we had; showing it from its newest page");
            self.last_id = 0;
        } else if self.last_id == 0 && welcome.last_id > 0 {
            // After id 0 means "live only": what came while we were away is read
            // through History.
            self.unread = Some(welcome.last_id);
        }
        self.epoch = welcome.epoch;
    }

    /// Queues the messages up to `newest` that arrived while we had none to resume after:
    /// the newest History page of them (a server's default page; older ones stay in History).
    /// Changes nothing until the answer is in, so a call dropped mid-way is made again.
    async fn read_missed(&mut self, newest: u64) -> Result<(), Status> {
        let page = self
            .client
            .history(HistoryRequest {
                room: self.room.clone(),
                before_id: newest + 1,
                limit: 0,
            })
            .await?
            .into_inner();
        self.missed.extend(page.messages);
        self.last_id = newest;
        self.unread = None;
        Ok(())
    }
}

/// Failures a new stream may cure: the server gone, restarting or shutting down, the
/// connection (or the balancer's to the server) broken, or this subscriber cut off for
/// falling behind (ABORTED: resume from the last id).
fn resumable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled | Code::Aborted
    )
}

/// Exponential from `FIRST_WAIT`, capped at `MAX_WAIT`, between half and all of each step
/// so restarted clients do not all come back at once.
fn wait(attempt: u32) -> Duration {
    let step = FIRST_WAIT
        .saturating_mul(1 << attempt.min(16))
        .min(MAX_WAIT);
    step / 2 + step.mul_f64(rand::random::<f64>() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_then_stays_under_the_cap() {
        let w0 = wait(0);
        assert!(w0 >= FIRST_WAIT / 2 && w0 <= FIRST_WAIT, "{w0:?}");
        let w1 = wait(1);
        assert!(w1 >= FIRST_WAIT && w1 <= FIRST_WAIT * 2, "{w1:?}");
        for attempt in [4, 20, 100] {
            let w = wait(attempt);
            assert!(w >= MAX_WAIT / 2 && w <= MAX_WAIT, "{attempt}: {w:?}");
        }
    }

    #[test]
    fn only_failures_a_new_stream_may_cure_resume() {
        for code in [
            Code::Unavailable,
            Code::Internal,
            Code::Aborted,
            Code::Unknown,
        ] {
            assert!(resumable(&Status::new(code, "")), "{code:?}");
        }
        for code in [
            Code::Unauthenticated,
            Code::NotFound,
            Code::InvalidArgument,
            Code::ResourceExhausted,
        ] {
            assert!(!resumable(&Status::new(code, "")), "{code:?}");
        }
    }
}
