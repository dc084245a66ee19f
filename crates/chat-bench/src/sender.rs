//! One sender: posts stamped messages round-robin over the rooms, keeping up to a window
//! of requests in flight, either as fast as the server accepts or paced to a rate.
//!
//! In paced runs a message is stamped with the time it was *due*, not the time it went
//! out: a sender held back by a full window then shows as latency, instead of quietly
//! sending less (the "coordinated omission" that makes slow servers look fast).
use std::{
    collections::VecDeque,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{atomic::Ordering::Relaxed, Arc, Mutex},
};

use chat_proto::{chat_service_client::ChatServiceClient, MessageRequest};
use futures::{stream::FuturesUnordered, StreamExt};
use prost::Message;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{mpsc, oneshot},
    time::{sleep_until, Duration, Instant},
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::{
    baseline,
    stamp::{Clock, Stamp},
    tally::Tally,
    wire::{self, FrameBuf},
};

type Posted = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// How a sender reaches the fan-out.
pub enum Poster {
    /// SendMessage over native gRPC (HTTP/2): many requests share one connection.
    Grpc(ChatServiceClient<Channel>),
    /// The baseline's protocol: MessageRequest frames pipelined on one socket, one
    /// acknowledgement frame back per message, in order.
    Raw(RawPoster),
}

impl Poster {
    pub async fn grpc(addr: SocketAddr) -> Result<Poster, String> {
        Ok(Poster::Grpc(ChatServiceClient::new(channel(addr).await?)))
    }

    fn post(&self, req: MessageRequest) -> Posted {
        match self {
            Poster::Grpc(client) => {
                let mut client = client.clone();
                Box::pin(async move {
                    client
                        .send_message(req)
                        .await
                        .map(drop)
                        .map_err(|s| format!("SendMessage: {:?}: {}", s.code(), s.message()))
                })
            }
            Poster::Raw(raw) => raw.post(req),
        }
    }
}

/// A native gRPC connection (HTTP/2, cleartext) to `addr`.
pub async fn channel(addr: SocketAddr) -> Result<Channel, String> {
    Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))
}

/// Pending acknowledgements in send order; the queue and the write channel are touched
/// under one lock so their orders always match.
pub struct RawPoster {
    queue: Arc<Mutex<RawQueue>>,
}

struct RawQueue {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    acks: VecDeque<oneshot::Sender<Result<(), String>>>,
}

impl RawPoster {
    pub async fn connect(addr: SocketAddr) -> Result<Poster, String> {
        let sock = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("sender connect: {e}"))?;
        let _ = sock.set_nodelay(true);
        let (mut rd, mut wr) = sock.into_split();
        let (frames, mut to_write) = mpsc::unbounded_channel::<Vec<u8>>();
        let queue = Arc::new(Mutex::new(RawQueue {
            frames,
            acks: VecDeque::new(),
        }));
        // Writer: everything queued since the last write goes out in one write.
        tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut out = Vec::new();
            while to_write.recv_many(&mut batch, 1024).await > 0 {
                out.clear();
                batch.drain(..).for_each(|f| out.extend_from_slice(&f));
                if wr.write_all(&out).await.is_err() {
                    break;
                }
            }
        });
        let acks = queue.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut frames = FrameBuf::default();
            let why = loop {
                match rd.read(&mut buf).await {
                    Ok(0) => break "the baseline closed the connection".to_owned(),
                    Err(e) => break e.to_string(),
                    Ok(n) => frames.extend(&buf[..n]),
                }
                let mut q = acks.lock().unwrap();
                while let Some((flag, payload)) = frames.next_frame() {
                    let result = match flag {
                        wire::DATA => Ok(()),
                        _ => Err(String::from_utf8_lossy(payload).into_owned()),
                    };
                    if let Some(ack) = q.acks.pop_front() {
                        let _ = ack.send(result);
                    }
                }
                drop(q);
                frames.compact();
            };
            for ack in acks.lock().unwrap().acks.drain(..) {
                let _ = ack.send(Err(why.clone()));
            }
        });
        Ok(Poster::Raw(RawPoster { queue }))
    }

    fn post(&self, req: MessageRequest) -> Posted {
        let (tx, rx) = oneshot::channel();
        {
            let mut q = self.queue.lock().unwrap();
            q.acks.push_back(tx);
            let _ = q
                .frames
                .send(wire::frame(baseline::POST, &req.encode_to_vec()));
        }
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err("the baseline connection is gone".into()))
        })
    }
}

pub struct Sender {
    pub index: u32,
    pub rooms: Arc<Vec<String>>,
    pub size: usize,
    pub window: usize,
    /// Messages per second for this sender; None = as fast as accepted.
    pub rate: Option<f64>,
    /// At most this many messages.
    pub budget: u64,
    pub until: Instant,
    pub clock: Clock,
    pub tally: Arc<Tally>,
    pub cancel: CancellationToken,
}

#[derive(Debug, Default)]
pub struct SenderOutcome {
    /// Messages the server accepted, per room.
    pub accepted: Vec<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Sender {
    pub async fn run(self, poster: Poster) -> SenderOutcome {
        let rooms = self.rooms.len();
        let username = format!("bench-s{}", self.index);
        let mut out = SenderOutcome {
            accepted: vec![0; rooms],
            ..Default::default()
        };
        let mut seq = vec![0u64; rooms];
        let mut inflight = FuturesUnordered::new();
        let start = Instant::now();
        let start_ns = self.clock.now_ns();
        let mut k: u64 = 0;
        loop {
            let now = Instant::now();
            let sending = k < self.budget && now < self.until && !self.cancel.is_cancelled();
            if !sending && inflight.is_empty() {
                break;
            }
            let due = self.rate.map(|r| Duration::from_secs_f64(k as f64 / r));
            let room_free = sending && inflight.len() < self.window;
            if room_free && due.is_none_or(|d| start + d <= now) {
                let room = (self.index as usize + k as usize) % rooms;
                let stamp = Stamp {
                    sender: self.index,
                    seq: seq[room],
                    sent_ns: match due {
                        Some(d) => start_ns + d.as_nanos() as u64,
                        None => self.clock.now_ns(),
                    },
                };
                seq[room] += 1;
                k += 1;
                let posted = poster.post(MessageRequest {
                    username: username.clone(),
                    message: stamp.text(self.size),
                    room: self.rooms[room].clone(),
                    ..Default::default()
                });
                inflight.push(async move { (room, posted.await) });
                continue;
            }
            // With the window full only a reply (or the end) can let the next one out.
            let wake = match (room_free, due) {
                (true, Some(d)) => (start + d).min(self.until),
                _ => self.until,
            };
            tokio::select! {
                Some((room, result)) = inflight.next(), if !inflight.is_empty() => {
                    self.account(&mut out, room, result);
                }
                _ = sleep_until(wake), if sending => {}
                _ = self.cancel.cancelled(), if sending => {}
            }
        }
        out
    }

    fn account(&self, out: &mut SenderOutcome, room: usize, result: Result<(), String>) {
        match result {
            Ok(()) => {
                out.accepted[room] += 1;
                self.tally.sent.fetch_add(1, Relaxed);
            }
            Err(e) => {
                out.errors += 1;
                self.tally.send_errors.fetch_add(1, Relaxed);
                out.first_error.get_or_insert(e);
            }
        }
    }
}
