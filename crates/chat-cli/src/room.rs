//! The room as the CLI sees it: a feed of its messages, and a way to post to it.
//!
//! Signed in, the feed is `Subscribe`, whose `Welcome` proves we are subscribed before
//! anything is posted (so every line we send comes back to us), and each line is its own
//! `SendMessage`, so a rate limit costs a pause and a resend instead of the stream: a
//! pasted file goes through at the server's pace. Without a session it is the original
//! protocol: lines go up the `Broadcast` stream that brings the room's messages down.
//! A Subscribe feed that loses its server (restarted, killed, or one of several behind a
//! balancer) subscribes again after the last id it printed (see `resume`), so nothing is
//! missed or printed twice; a Broadcast feed ends with its stream.
use std::time::Duration;

use chat_proto::{chat_event::Event, MessageRequest, MessageResponse, SubscribeRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{codec::Streaming, Code, Status};

use crate::{
    resume::Resuming,
    session::{Client, Session},
};

/// The server's rate-limit refusals say in this metadata how many milliseconds to wait.
const RETRY_AFTER_METADATA: &str = "retry-after-ms";

/// The room's messages and changes, in id order. One per process, so the variants'
/// sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Feed {
    Broadcast(Streaming<MessageResponse>),
    Subscribe(Resuming),
}

impl Feed {
    /// The next message or change; `None` once the server ended the stream for good.
    /// Cancel-safe: a call dropped mid-way (while reconnecting, say) loses nothing.
    pub async fn next(&mut self) -> Option<Result<MessageResponse, Status>> {
        match self {
            Feed::Broadcast(stream) => stream.message().await.transpose(),
            Feed::Subscribe(resuming) => resuming.next().await,
        }
    }
}

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
        return Ok((Feed::Broadcast(feed), Poster::Stream(outbound)));
    }
    let mut events = client
        .subscribe(SubscribeRequest {
            room: join.room.clone(),
            after_id: 0,
            epoch: 0,
        })
        .await
        .map_err(could_not)?
        .into_inner();
    let welcome = match events.message().await.map_err(could_not)? {
        Some(chat_proto::ChatEvent {
            event: Some(Event::Welcome(welcome)),
        }) => welcome,
        _ => return Err("the server did not start the room's feed with a Welcome".into()),
    };
    let feed = Resuming::new(client.clone(), join.room, &welcome, events);
    Ok((Feed::Subscribe(feed), Poster::Unary(client)))
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
