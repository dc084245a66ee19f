//! The room as the CLI sees it: a feed of its messages, and a way to post to it.
//!
//! Signed in, the feed is `Subscribe`, whose `Welcome` proves we are subscribed before
//! anything is posted (so every line we send comes back to us), and each line is its own
//! `SendMessage`, so a rate limit costs a pause and a resend instead of the stream: a
//! pasted file goes through at the server's pace. Without a session it is the original
//! protocol: lines go up the `Broadcast` stream that brings the room's messages down.
use std::{pin::Pin, time::Duration};

use chat_proto::{chat_event::Event, ChatEvent, MessageRequest, MessageResponse, SubscribeRequest};
use tokio::sync::mpsc;
use tokio_stream::{wrappers::ReceiverStream, Stream, StreamExt};
use tonic::{Code, Status};

use crate::session::{Client, Session};

/// The server's rate-limit refusals say in this metadata how many milliseconds to wait.
const RETRY_AFTER_METADATA: &str = "retry-after-ms";

pub type Feed = Pin<Box<dyn Stream<Item = Result<MessageResponse, Status>> + Send>>;

pub enum Poster {
    /// Requests on the Broadcast stream; holding the sender keeps the stream open.
    Stream(mpsc::Sender<MessageRequest>),
    Unary(Client),
}

/// Opens the room's feed and the way to post there; `join` is the request with our name
/// and no text, which for Broadcast is the join.
pub async fn open(session: &Session, join: MessageRequest) -> Result<(Feed, Poster), String> {
    let mut client = session.client.clone();
    let could_not = |status: Status| format!("could not open the room: {}", describe(&status));
    if !session.signed_in() {
        let (outbound, requests) = mpsc::channel(64);
        outbound.send(join).await.expect("receiver alive");
        let feed = client
            .broadcast(ReceiverStream::new(requests))
            .await
            .map_err(could_not)?
            .into_inner();
        return Ok((Box::pin(feed), Poster::Stream(outbound)));
    }
    let mut events = client
        .subscribe(SubscribeRequest {
            room: join.room,
            after_id: 0,
            epoch: 0,
        })
        .await
        .map_err(could_not)?
        .into_inner();
    match events.message().await.map_err(could_not)? {
        Some(ChatEvent {
            event: Some(Event::Welcome(_)),
        }) => {}
        _ => return Err("the server did not start the room's feed with a Welcome".into()),
    }
    let feed = events.filter_map(|event| match event {
        Ok(ChatEvent {
            event: Some(Event::Message(msg) | Event::Change(msg)),
        }) => Some(Ok(msg)),
        // Heartbeats, presence and typing have no line to print (see `line` for changes).
        Ok(_) => None,
        Err(status) => Some(Err(status)),
    });
    Ok((Box::pin(feed), Poster::Unary(client)))
}

impl Poster {
    /// Posts one line. `Err(None)` means the Broadcast stream is gone, and the feed will
    /// say why; `Err(Some(reason))` is a refusal that waiting would not cure.
    pub async fn post(&mut self, request: MessageRequest) -> Result<(), Option<String>> {
        match self {
            Poster::Stream(outbound) => outbound.send(request).await.map_err(|_| None),
            Poster::Unary(client) => {
                let mut unavailable = 0;
                loop {
                    match client.send_message(request.clone()).await {
                        Ok(_) => return Ok(()),
                        Err(status) => match retry_after(&status) {
                            Some(wait) => tokio::time::sleep(wait).await,
                            // The answer may be what was lost, not the message: the same
                            // request (same client_msg_id) cannot post it twice.
                            None if status.code() == Code::Unavailable
                                && unavailable < UNAVAILABLE_RETRIES =>
                            {
                                unavailable += 1;
                                tokio::time::sleep(UNAVAILABLE_BACKOFF * unavailable).await;
                            }
                            None => return Err(Some(describe(&status))),
                        },
                    }
                }
            }
        }
    }
}

/// A line the server could not be reached for is sent again this many times, waiting
/// this long times the attempt in between.
const UNAVAILABLE_RETRIES: u32 = 3;
const UNAVAILABLE_BACKOFF: Duration = Duration::from_millis(500);

/// The wait a refusal asks for (too fast, or the server busy); `None` for any other error.
fn retry_after(status: &Status) -> Option<Duration> {
    if !matches!(status.code(), Code::ResourceExhausted | Code::Unavailable) {
        return None;
    }
    let millis = status.metadata().get(RETRY_AFTER_METADATA)?.to_str().ok()?;
    millis.parse().ok().map(Duration::from_millis)
}

pub fn describe(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}
