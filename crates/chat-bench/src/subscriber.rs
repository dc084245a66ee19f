//! One subscriber: connects, waits for its Welcome, then checks and times every message
//! until the run stops it or the server ends its stream.
//!
//! Three links reach a fan-out: grpc-web over HTTP/1.1 (the default, as browsers do),
//! native gRPC over HTTP/2 (tonic), and the raw-TCP baseline, which sends the very same
//! frames with no HTTP around them. grpc-web and raw share one read loop: read a big
//! buffer, take every complete frame out, stamp them all with one clock reading.
use std::{
    cell::RefCell,
    io,
    sync::{atomic::Ordering::Relaxed, Arc},
};

use chat_proto::SubscribeRequest;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};
use tokio_util::sync::CancellationToken;
use tonic::codegen::http::uri::PathAndQuery;

use crate::{
    baseline,
    checker::StreamCheck,
    http1::{self, Dechunker, HeadError},
    latency::Recorder,
    raw_codec::RawCodec,
    stamp::Clock,
    tally::Tally,
    wire::{self, Event, FrameBuf},
};

/// Big enough that a subscriber that fell behind catches up in few reads.
const READ_BUF: usize = 32 * 1024;

thread_local! {
    /// One read buffer per worker thread, shared by every subscriber the thread runs: it
    /// stays in cache, where thousands of per-subscriber buffers would not. Only borrowed
    /// inside a synchronous `try_read`, never across an await.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF]);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    GrpcWeb,
    Native,
    /// The baseline's protocol: a frame (flag `baseline::SUBSCRIBE`, payload = room
    /// name), then grpc-web frames of ChatEvents straight on the socket.
    Raw,
}

/// Why a subscriber's stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The run stopped it: the normal end.
    Stopped,
    /// grpc-status ABORTED: the server cut it off for falling too far behind.
    CutOff(String),
    /// The server ended the stream some other way (status, or the connection closed).
    Closed(String),
}

pub struct Outcome {
    pub room: usize,
    pub check: StreamCheck,
    pub end: End,
    /// When the last first delivery arrived, on the run's clock.
    pub last_delivery_ns: u64,
}

/// What a subscriber needs from the run.
pub struct Subscriber {
    pub room: usize,
    pub room_name: String,
    pub link: Link,
    pub clock: Clock,
    pub tally: Arc<Tally>,
    pub recorder: Recorder,
    pub cancel: CancellationToken,
    /// Told once: Ok at the Welcome, or why it never came.
    pub ready: mpsc::Sender<Result<(), String>>,
}

impl Subscriber {
    pub async fn run(self, addr: std::net::SocketAddr) -> Outcome {
        let mut feed = Feed {
            check: StreamCheck::default(),
            last_delivery_ns: 0,
            ready: Some(self.ready),
            recorder: self.recorder,
            tally: self.tally.clone(),
            clock: self.clock,
        };
        let (link, room_name) = (self.link, self.room_name);
        let end = {
            let stream = async {
                match link {
                    Link::GrpcWeb | Link::Raw => framed(addr, link, &room_name, &mut feed).await,
                    Link::Native => native(addr, &room_name, &mut feed).await,
                }
            };
            tokio::select! {
                end = stream => end,
                _ = self.cancel.cancelled() => Ok(End::Stopped),
            }
        };
        let end = end.unwrap_or_else(End::Closed);
        if let (Some(ready), End::Closed(why) | End::CutOff(why)) = (feed.ready.take(), &end) {
            let _ = ready.send(Err(why.clone())).await;
        }
        feed.recorder.flush();
        self.tally.ended.fetch_add(1, Relaxed);
        Outcome {
            room: self.room,
            check: feed.check,
            end,
            last_delivery_ns: feed.last_delivery_ns,
        }
    }
}

/// Per-stream bookkeeping shared by every link.
struct Feed {
    check: StreamCheck,
    last_delivery_ns: u64,
    ready: Option<mpsc::Sender<Result<(), String>>>,
    recorder: Recorder,
    tally: Arc<Tally>,
    clock: Clock,
}

impl Feed {
    async fn welcome(&mut self) {
        if let Some(ready) = self.ready.take() {
            self.tally.connected.fetch_add(1, Relaxed);
            let _ = ready.send(Ok(())).await;
        }
    }

    /// Returns true for a first delivery.
    fn message(&mut self, id: u64, text: &[u8], now_ns: u64) -> bool {
        match self.check.record(id, text) {
            Some(stamp) => {
                self.recorder
                    .record_ns(now_ns.saturating_sub(stamp.sent_ns));
                self.last_delivery_ns = now_ns;
                true
            }
            None => false,
        }
    }
}

/// grpc-web over HTTP/1.1, or the raw baseline: frames read in bulk.
async fn framed(
    addr: std::net::SocketAddr,
    link: Link,
    room: &str,
    feed: &mut Feed,
) -> Result<End, String> {
    let mut sock = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = sock.set_nodelay(true);
    let request = match link {
        Link::Raw => wire::frame(baseline::SUBSCRIBE, room.as_bytes()),
        _ => http1::request(
            &addr.to_string(),
            "Subscribe",
            &SubscribeRequest {
                room: room.to_owned(),
                after_id: 0,
                epoch: 0,
            },
        ),
    };
    sock.write_all(&request)
        .await
        .map_err(|e| format!("send request: {e}"))?;

    let mut frames = FrameBuf::default();
    let mut dechunker = match link {
        Link::Raw => None,
        _ => Some(Dechunker::default()),
    };
    if let Some(dechunker) = &mut dechunker {
        let body_start = read_head(&mut sock).await?;
        dechunker
            .feed(&body_start, &mut frames)
            .map_err(|_| "bad chunked encoding".to_owned())?;
    }
    loop {
        let now = feed.clock.now_ns();
        let mut first = 0;
        while let Some((flag, payload)) = frames.next_frame() {
            if flag & wire::TRAILERS != 0 {
                feed.tally.add_delivered(first);
                let (status, message) = http1::trailer_status(payload);
                return Ok(status_end(status.as_deref(), message));
            }
            match wire::decode_event(payload) {
                Ok(Event::Message { id, text }) => {
                    first += u64::from(feed.message(id, text, now));
                }
                Ok(Event::Welcome { .. }) => feed.welcome().await,
                Ok(Event::Other) => {}
                Err(_) => return Err("malformed ChatEvent".into()),
            }
        }
        feed.tally.add_delivered(first);
        frames.compact();
        if read_into(&sock, dechunker.as_mut(), &mut frames).await? == 0 {
            return Ok(End::Closed(
                "the connection closed without a grpc-status".into(),
            ));
        }
        if dechunker.as_ref().is_some_and(|d| d.is_done()) && frames.pending() == 0 {
            return Ok(End::Closed("the response ended without trailers".into()));
        }
    }
}

/// Waits for data, reads what the socket has through the thread's scratch buffer and
/// appends it to `frames`, un-chunked when there is a `dechunker`. 0 = closed.
async fn read_into(
    sock: &TcpStream,
    mut dechunker: Option<&mut Dechunker>,
    frames: &mut FrameBuf,
) -> Result<usize, String> {
    loop {
        sock.readable().await.map_err(|e| format!("read: {e}"))?;
        let read = SCRATCH.with_borrow_mut(|buf| match sock.try_read(buf) {
            Ok(n) => {
                match dechunker.as_deref_mut() {
                    Some(d) => d
                        .feed(&buf[..n], frames)
                        .map_err(|_| "bad chunked encoding".to_owned())?,
                    None => frames.extend(&buf[..n]),
                }
                Ok(Some(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(format!("read: {e}")),
        })?;
        if let Some(n) = read {
            return Ok(n);
        }
    }
}

/// Reads up to the end of the response head; returns the body bytes read past it.
/// A failed call (trailers-only response, or an HTTP error) is an error here.
async fn read_head(sock: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut buf = [0u8; 4096];
    let mut head = Vec::new();
    loop {
        let n = sock
            .read(&mut buf)
            .await
            .map_err(|e| format!("read head: {e}"))?;
        if n == 0 {
            return Err("the connection closed before a response".into());
        }
        head.extend_from_slice(&buf[..n]);
        match http1::parse_head(&head) {
            Ok(h) if h.status != 200 => return Err(format!("HTTP status {}", h.status)),
            Ok(h) if h.grpc_status.is_some() => {
                return Err(format!(
                    "grpc-status {}: {}",
                    h.grpc_status.unwrap_or_default(),
                    h.grpc_message.unwrap_or_default()
                ))
            }
            Ok(h) if !h.chunked => return Err("the response is not chunked".into()),
            Ok(h) => return Ok(head.split_off(h.len)),
            Err(HeadError::Partial) if head.len() < 64 * 1024 => {}
            Err(HeadError::Partial) => return Err("response head too long".into()),
            Err(HeadError::Invalid(e)) => return Err(format!("bad response head: {e}")),
        }
    }
}

fn status_end(status: Option<&str>, message: Option<String>) -> End {
    let message = message.unwrap_or_default();
    match status {
        Some("10") => End::CutOff(message),
        Some(code) => End::Closed(format!("grpc-status {code}: {message}")),
        None => End::Closed("trailers without grpc-status".into()),
    }
}

/// Native gRPC over HTTP/2, through tonic: one connection per subscriber, as separate
/// clients would have. Messages come undecoded (`RawCodec`) and are read like grpc-web's.
async fn native(addr: std::net::SocketAddr, room: &str, feed: &mut Feed) -> Result<End, String> {
    let mut grpc = tonic::client::Grpc::new(crate::sender::channel(addr).await?);
    grpc.ready().await.map_err(|e| format!("connect: {e}"))?;
    let request = SubscribeRequest {
        room: room.to_owned(),
        after_id: 0,
        epoch: 0,
    };
    let mut stream = grpc
        .server_streaming(
            tonic::Request::new(request),
            PathAndQuery::from_static("/grpcchat.ChatService/Subscribe"),
            RawCodec::<SubscribeRequest>::default(),
        )
        .await
        .map_err(|s| format!("Subscribe: {:?}: {}", s.code(), s.message()))?
        .into_inner();
    loop {
        match stream.message().await {
            Ok(Some(event)) => match wire::decode_event(&event) {
                Ok(Event::Message { id, text }) => {
                    let now = feed.clock.now_ns();
                    if feed.message(id, text, now) {
                        feed.tally.add_delivered(1);
                    }
                }
                Ok(Event::Welcome { .. }) => feed.welcome().await,
                Ok(Event::Other) => {}
                Err(_) => return Err("malformed ChatEvent".into()),
            },
            Ok(None) => return Ok(End::Closed("the server ended the stream".into())),
            Err(s) if s.code() == tonic::Code::Aborted => {
                return Ok(End::CutOff(s.message().to_owned()))
            }
            Err(s) => return Ok(End::Closed(format!("{:?}: {}", s.code(), s.message()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aborted_is_a_cut_off_and_anything_else_a_closed_stream() {
        assert_eq!(
            status_end(Some("10"), Some("fell behind".into())),
            End::CutOff("fell behind".into())
        );
        assert_eq!(
            status_end(Some("14"), Some("shutting down".into())),
            End::Closed("grpc-status 14: shutting down".into())
        );
        assert_eq!(
            status_end(Some("0"), None),
            End::Closed("grpc-status 0: ".into())
        );
        assert!(matches!(status_end(None, None), End::Closed(_)));
    }
}
