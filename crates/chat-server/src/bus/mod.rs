//! The bus between servers sharing one database: NATS, through `async-nats`.
//!
//! Best effort by design. The database is the truth and the bus only says what changed:
//! a publish is dropped rather than waited for when NATS is slow or away, and receivers
//! repair what they missed from the database (`order`), or from the next heartbeat
//! (`peers`). So nothing here can hold up a commit, and a restart of NATS costs latency,
//! never messages. Every subject sits under `chat.<epoch>`, so only servers of one
//! database hear each other, even on a shared NATS.
use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use prost::Message;
use tokio::sync::mpsc;

use crate::store::Committed;

pub mod order;
pub mod peers;
pub mod wire;

use wire::{CommittedBatch, Heartbeat, Revoke, Typing};

/// Publishes waiting for the NATS connection; past it they are dropped (and repaired).
const OUTBOX: usize = 4096;

/// What a server hears from the others.
#[derive(Debug)]
pub enum Incoming {
    Committed(CommittedBatch),
    Heartbeat(Heartbeat),
    Typing(Typing),
    Revoke(Revoke),
    /// The connection to NATS came back: whatever was published meanwhile is lost to us.
    Reconnected,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("could not reach NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
}

/// A cheap-to-clone handle on this server's NATS connection.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    server: u64,
    outbox: mpsc::Sender<Outgoing>,
    stats: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    published_bytes: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
    received_bytes: AtomicU64,
}

/// What the bus carried since it connected, for tests and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// NATS messages published and their payload bytes.
    pub published: u64,
    pub published_bytes: u64,
    /// Publishes dropped because NATS was away or did not take them in time.
    pub dropped: u64,
    pub received: u64,
    pub received_bytes: u64,
}

/// What the forwarder hands to NATS.
enum Outgoing {
    Publish(Kind, Bytes),
    /// Answered once everything queued before it reached the NATS client.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The subjects, one per kind of news, under the cluster's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Committed,
    Heartbeat,
    Typing,
    Revoke,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Committed, Kind::Heartbeat, Kind::Typing, Kind::Revoke];

    fn name(self) -> &'static str {
        match self {
            Kind::Committed => "committed",
            Kind::Heartbeat => "heartbeat",
            Kind::Typing => "typing",
            Kind::Revoke => "revoke",
        }
    }

    fn decode(self, payload: Bytes) -> Result<Incoming, prost::DecodeError> {
        Ok(match self {
            Kind::Committed => Incoming::Committed(CommittedBatch::decode(payload)?),
            Kind::Heartbeat => Incoming::Heartbeat(Heartbeat::decode(payload)?),
            Kind::Typing => Incoming::Typing(Typing::decode(payload)?),
            Kind::Revoke => Incoming::Revoke(Revoke::decode(payload)?),
        })
    }
}

/// What the bus delivers to this server, in the order NATS delivered it.
pub struct Inbox {
    messages: async_nats::Subscriber,
    events: mpsc::UnboundedReceiver<async_nats::Event>,
    prefix: String,
    bus: Bus,
    /// Set by a disconnect, so only a connection after one counts as a reconnection.
    disconnected: bool,
}

impl Inbox {
    /// The next piece of news; `None` once the connection is closed for good. Payloads
    /// that do not decode (another version's server?) are logged and skipped.
    pub async fn next(&mut self) -> Option<Incoming> {
        loop {
            tokio::select! {
                message = self.messages.next() => {
                    let message = message?;
                    let counters = &self.bus.inner.stats;
                    counters.received.fetch_add(1, Ordering::Relaxed);
                    counters
                        .received_bytes
                        .fetch_add(message.payload.len() as u64, Ordering::Relaxed);
                    let kind = message
                        .subject
                        .strip_prefix(self.prefix.as_str())
                        .and_then(|rest| rest.strip_prefix('.'))
                        .and_then(|name| Kind::ALL.into_iter().find(|k| k.name() == name));
                    let Some(kind) = kind else { continue };
                    match kind.decode(message.payload) {
                        Ok(incoming) => return Some(incoming),
                        Err(err) => {
                            tracing::warn!(subject = %message.subject, %err, "undecodable bus message skipped")
                        }
                    }
                }
                Some(event) = self.events.recv() => {
                    tracing::info!(%event, "NATS");
                    match event {
                        async_nats::Event::Disconnected => self.disconnected = true,
                        async_nats::Event::Connected if self.disconnected => {
                            self.disconnected = false;
                            return Some(Incoming::Reconnected);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

impl Bus {
    /// Connects to NATS at `url` for the servers of the database whose epoch is `epoch`,
    /// and subscribes to what they say. Reconnects by itself when the connection drops.
    pub async fn connect(url: &str, epoch: u64) -> Result<(Bus, Inbox), BusError> {
        let (events_tx, events) = mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::new()
            .name("chat-server")
            // Our own publishes are known already; not hearing them halves the traffic.
            .no_echo()
            .max_reconnects(None)
            .event_callback(move |event| {
                let _ = events_tx.send(event);
                async {}
            })
            .connect(url)
            .await
            .map_err(|err| BusError::Connect {
                url: url.to_owned(),
                reason: err.to_string(),
            })?;
        let prefix = format!("chat.{epoch:016x}");
        let messages = client
            .subscribe(format!("{prefix}.>"))
            .await
            .map_err(|err| BusError::Connect {
                url: url.to_owned(),
                reason: err.to_string(),
            })?;
        let (outbox, queued) = mpsc::channel(OUTBOX);
        let stats = Arc::new(Counters::default());
        let bus = Bus {
            inner: Arc::new(Inner {
                client: client.clone(),
                server: rand::random::<u64>() | 1,
                outbox,
                stats: Arc::clone(&stats),
            }),
        };
        tokio::spawn(forward(client, prefix.clone(), queued, stats));
        let inbox = Inbox {
            messages,
            events,
            prefix,
            bus: bus.clone(),
            disconnected: false,
        };
        Ok((bus, inbox))
    }

    /// This server's id on the bus: random per run, so a restarted server is a new one.
    pub fn server_id(&self) -> u64 {
        self.inner.server
    }

    /// Publishes the messages one commit produced. Callable from any thread, never waits.
    pub fn publish_committed(&self, batch: &[Committed]) {
        if batch.is_empty() {
            return;
        }
        // Encoded field by field, the same bytes as a `CommittedBatch`, without cloning
        // each message into one first.
        let len = batch
            .iter()
            .map(|m| prost::encoding::message::encoded_len(2, m.as_ref()))
            .sum::<usize>()
            + 11;
        let mut buf = BytesMut::with_capacity(len);
        prost::encoding::uint64::encode(1, &self.inner.server, &mut buf);
        for message in batch {
            prost::encoding::message::encode(2, message.as_ref(), &mut buf);
        }
        self.send(Kind::Committed, buf.freeze());
    }

    /// Publishes this server's heartbeat (see `wire::Heartbeat`).
    pub fn publish_heartbeat(&self, mut heartbeat: Heartbeat) {
        heartbeat.server = self.inner.server;
        self.send(Kind::Heartbeat, heartbeat.encode_to_vec().into());
    }

    /// Tells the others someone is typing in `room`.
    pub fn publish_typing(&self, room: &str, event: chat_proto::TypingEvent) {
        let typing = Typing {
            server: self.inner.server,
            room: room.to_owned(),
            event: Some(event),
        };
        self.send(Kind::Typing, typing.encode_to_vec().into());
    }

    /// Tells the others to end sessions (see `wire::Revoke`).
    pub fn publish_revoke(&self, mut revoke: Revoke) {
        revoke.server = self.inner.server;
        self.send(Kind::Revoke, revoke.encode_to_vec().into());
    }

    /// Waits until what was published so far reached NATS (at shutdown, so the last
    /// heartbeat is not lost with the process).
    pub async fn flush(&self) {
        let (done, flushed) = tokio::sync::oneshot::channel();
        if self.inner.outbox.send(Outgoing::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
        if let Err(err) = self.inner.client.flush().await {
            tracing::warn!(%err, "could not flush the bus");
        }
    }

    pub fn stats(&self) -> BusStats {
        let c = &self.inner.stats;
        BusStats {
            published: c.published.load(Ordering::Relaxed),
            published_bytes: c.published_bytes.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            received_bytes: c.received_bytes.load(Ordering::Relaxed),
        }
    }

    fn send(&self, kind: Kind, payload: Bytes) {
        let counters = &self.inner.stats;
        let len = payload.len() as u64;
        match self.inner.outbox.try_send(Outgoing::Publish(kind, payload)) {
            Ok(()) => {
                counters.published.fetch_add(1, Ordering::Relaxed);
                counters.published_bytes.fetch_add(len, Ordering::Relaxed);
            }
            Err(_) => {
                // Once per thousand, not per message: NATS away under load drops many.
                if counters
                    .dropped
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(1000)
                {
                    tracing::warn!(
                        kind = kind.name(),
                        "bus publish dropped: NATS is not keeping up (receivers repair from the database)"
                    );
                }
            }
        }
    }
}

/// Hands queued publishes to the NATS client, one at a time, in order.
async fn forward(
    client: async_nats::Client,
    prefix: String,
    mut queued: mpsc::Receiver<Outgoing>,
    stats: Arc<Counters>,
) {
    let subjects: Vec<String> = Kind::ALL
        .iter()
        .map(|k| format!("{prefix}.{}", k.name()))
        .collect();
    while let Some(outgoing) = queued.recv().await {
        let (kind, payload) = match outgoing {
            Outgoing::Publish(kind, payload) => (kind, payload),
            Outgoing::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        // Not buffered for later while NATS is away: news that old is repaired from the
        // database anyway, and a backlog would only arrive late and cost memory.
        if client.connection_state() != async_nats::connection::State::Connected {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let subject = &subjects[Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)];
        if let Err(err) = client.publish(subject.clone(), payload).await {
            tracing::warn!(%err, "bus publish failed");
        }
    }
}
