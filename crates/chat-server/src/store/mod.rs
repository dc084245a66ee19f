//! The durable message store: every accepted message is committed to SQLite before anyone
//! hears of it, so a restart, or a SIGKILL, loses nothing that was acknowledged.
//!
//! One writer thread owns the messages' write connection and commits whatever is queued as one
//! transaction (group commit): under load one disk sync covers many messages, so durability
//! does not cap throughput. It hands each committed batch, in queue order, to `on_commit`
//! (the hub's fan-out) and only then answers the appends, so nobody sees a message that a
//! crash could take back. Reads run on tokio's blocking pool over their own connections, a
//! bounded number at a time; WAL lets them proceed beside the writer. Accounts and stored
//! sessions (`accounts`) are written over a connection of their own.
use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc, Arc,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use chat_proto::MessageResponse;
use tokio::sync::oneshot;

pub mod accounts;
mod changes;
pub mod maintenance;
mod reader;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

pub use accounts::{Account, AccountStore, StoredSession};
use reader::Readers;
use writer::{Command, Writer};

/// A room as the database held it at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoom {
    pub name: String,
    /// Its newest message id; 0 = no messages.
    pub last_id: u64,
    /// Its newest message's time, or when it was created if later (ms since the epoch).
    pub last_active_ms: u64,
}

/// A committed message, shared by `on_commit` and the append that posted it.
pub type Committed = Arc<MessageResponse>;

/// A message's id chosen by its sender (`MessageRequest.client_msg_id`), with the key of
/// the sender's name: stored with the message, so a repeat of the pair finds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SentId {
    pub sender_key: String,
    pub client_msg_id: String,
}

/// Most rows one read returns, whatever the caller asks: a read holds a blocking thread,
/// so it stays short. Callers page.
pub const MAX_READ_ROWS: usize = 1000;

/// Most text (display form and text, in bytes) one History page returns, past its first
/// row: the page is held in memory until the client has read it, so it stays small
/// whatever the row limit. `has_more` says the rest is there.
pub const MAX_HISTORY_BYTES: usize = 128 * 1024;

/// Most appends waiting for the writer at once; one more is refused with `Busy`. Four
/// full batches: while one commit is on its way to disk the next batches fill, and past
/// that the disk is the bottleneck, so a longer queue would add only latency and memory
/// (a queued 4 KiB message holds about 9 KiB) and nothing to throughput.
pub const MAX_QUEUED_APPENDS: usize = 4 * writer::MAX_BATCH;

/// What a refused append is told to wait: about one group commit.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_millis(200);

/// How hard each commit tries to reach the disk before the append is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// `synchronous=FULL`: every commit is synced to disk first; survives power loss.
    Full,
    /// `synchronous=NORMAL`: commits reach the OS, synced at checkpoints; survives a crash
    /// or SIGKILL of the server, but a power loss may take the last commits.
    Normal,
}

/// What the writer has done since the store opened, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Transactions committed; below `messages` when group commit batched.
    pub batches: u64,
    pub messages: u64,
    /// Transactions that failed; every append in them got the error.
    pub failed_batches: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not open the message database {path}: {source}")]
    Open {
        path: PathBuf,
        source: Arc<rusqlite::Error>,
    },
    #[error("the message database {path} cannot use WAL (journal mode {mode:?}); is it on a network filesystem or in memory?")]
    NoWal { path: PathBuf, mode: String },
    #[error("the message database was written by a newer chat-server (schema version {0}); this one knows {known}", known = schema::VERSION)]
    NewerSchema(i64),
    #[error("message database error: {0}")]
    Sqlite(Arc<rusqlite::Error>),
    #[error("could not start the message store's writer thread: {0}")]
    Spawn(Arc<std::io::Error>),
    #[error("the message store is closed")]
    Closed,
    #[error("the message store has {MAX_QUEUED_APPENDS} writes waiting already")]
    Busy(Duration),
}

impl StoreError {
    fn sqlite(err: rusqlite::Error) -> Self {
        StoreError::Sqlite(Arc::new(err))
    }
}

/// Two errors are equal when they are the same failure: one SQLite error shared by every
/// append of a failed batch equals itself, never another error with the same text.
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        use StoreError::*;
        match (self, other) {
            (Open { path: a, source: x }, Open { path: b, source: y }) => {
                a == b && Arc::ptr_eq(x, y)
            }
            (NoWal { path: a, mode: x }, NoWal { path: b, mode: y }) => a == b && x == y,
            (NewerSchema(a), NewerSchema(b)) => a == b,
            (Sqlite(a), Sqlite(b)) => Arc::ptr_eq(a, b),
            (Spawn(a), Spawn(b)) => Arc::ptr_eq(a, b),
            (Closed, Closed) => true,
            (Busy(a), Busy(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for StoreError {}

/// The display form the original protocol sends, derived rather than stored twice.
pub fn display_form(username: &str, text: &str) -> String {
    format!("[{username}]: {text}")
}

/// A cheap-to-clone handle on the store. When the last handle drops, the writer commits
/// what is still queued and exits; `close` does the same and waits for it.
#[derive(Clone)]
pub struct MessageStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` only while dropping, so the writer sees the queue end.
    queue: Option<mpsc::Sender<Command>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<Readers>,
    counters: Arc<Counters>,
    epoch: u64,
    rooms: Vec<StoredRoom>,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    messages: AtomicU64,
    failed_batches: AtomicU64,
    /// Appends sent to the writer and not yet taken off its queue.
    queued: AtomicUsize,
}

impl MessageStore {
    /// Opens (or creates) the database at `path` and starts the writer thread. At most
    /// `max_reads` reads run at once (each holds a blocking thread); more wait their turn.
    /// `on_commit` runs on that thread after each commit with the batch's messages in
    /// queue order; it must be quick and must not wait on an append. It should not own a
    /// handle on this store either (hold a `Weak` to whatever owns it), or the store never
    /// drops.
    pub fn open(
        path: &Path,
        durability: Durability,
        max_reads: usize,
        on_commit: impl Fn(&[Committed]) + Send + 'static,
    ) -> Result<Self, StoreError> {
        let opened = schema::open(path, durability)?;
        let counters = Arc::new(Counters::default());
        let (queue, commands) = mpsc::channel();
        let writer = Writer::new(
            opened.conn,
            &opened.rooms,
            Box::new(on_commit),
            Arc::clone(&counters),
        );
        let writer = thread::Builder::new()
            .name("message-store-writer".into())
            .spawn(move || writer.run(commands))
            .map_err(|err| StoreError::Spawn(Arc::new(err)))?;
        Ok(MessageStore {
            inner: Arc::new(Inner {
                queue: Some(queue),
                writer: Some(writer),
                readers: Arc::new(Readers::new(path, max_reads)),
                counters,
                epoch: opened.epoch,
                rooms: opened.rooms,
            }),
        })
    }

    /// Random and non-zero, chosen when the database was created and kept forever: ids
    /// from another epoch belong to another database.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// Every room as the database held it at open, so the hub can recreate its rooms and
    /// continue their ids.
    pub fn rooms(&self) -> &[StoredRoom] {
        &self.inner.rooms
    }

    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        StoreStats {
            batches: c.batches.load(Ordering::Relaxed),
            messages: c.messages.load(Ordering::Relaxed),
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
        }
    }

    /// Queues `msg` for the next commit, now, before returning: call it under the room's
    /// lock with ids strictly increasing per room, and queue order is id order. The future
    /// resolves once the message is committed and `on_commit` has seen it, with the
    /// message as stored. An empty `message` field is filled with the display form; it is
    /// never stored, reads derive it again.
    pub fn append(
        &self,
        msg: MessageResponse,
    ) -> impl Future<Output = Result<Committed, StoreError>> + Send + 'static {
        let queued = self.try_append(msg);
        async move { queued?.await }
    }

    /// `append`, telling at once whether the message was queued: refused with `Busy`
    /// when `MAX_QUEUED_APPENDS` are waiting already (nothing is queued then, so the
    /// caller can take back the id it assigned), or `Closed`.
    pub fn try_append(
        &self,
        msg: MessageResponse,
    ) -> Result<impl Future<Output = Result<Committed, StoreError>> + Send + 'static, StoreError>
    {
        self.try_append_sent(msg, None)
    }

    /// `try_append`, recording `sent` (if any) in the same transaction, replacing an older
    /// record of the same pair, for `find_sent`.
    pub fn try_append_sent(
        &self,
        msg: MessageResponse,
        sent: Option<SentId>,
    ) -> Result<impl Future<Output = Result<Committed, StoreError>> + Send + 'static, StoreError>
    {
        let queued = &self.inner.counters.queued;
        queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_QUEUED_APPENDS).then_some(n + 1)
            })
            .map_err(|_| StoreError::Busy(BUSY_RETRY_AFTER))?;
        let (done, answer) = oneshot::channel();
        if let Err(err) = self.send(Command::Append(msg, sent, done)) {
            queued.fetch_sub(1, Ordering::AcqRel);
            return Err(err);
        }
        Ok(async move { answer.await.map_err(|_| StoreError::Closed)? })
    }

    /// Records a room, created now, so it outlives a restart even with no messages.
    /// Queued now, like `append`.
    pub fn create_room(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let (done, answer) = oneshot::channel();
        let created_at_ms = crate::wall_clock::unix_ms();
        let queued = self.send(Command::CreateRoom(name.to_owned(), created_at_ms, done));
        async move {
            queued?;
            answer.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// Forgets a room that never got a message. Queued now, like `append`; a room that
    /// has messages by the time the writer gets to it is kept.
    pub fn delete_empty_room(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let (done, answer) = oneshot::channel();
        let queued = self.send(Command::DeleteEmptyRoom(name.to_owned(), done));
        async move {
            queued?;
            answer.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// Forgets the sent ids of messages sent before `before_ms` (ms since the Unix epoch),
    /// in a transaction of its own once what is queued ahead is committed; resolves with
    /// how many were forgotten.
    pub fn prune_sent(
        &self,
        before_ms: i64,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send + 'static {
        let (done, answer) = oneshot::channel();
        let queued = self.send(Command::PruneSent(before_ms, done));
        async move {
            queued?;
            answer.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// The message recorded with `sent` (see `try_append_sent`), if it was sent at
    /// `since_ms` or later.
    pub async fn find_sent(
        &self,
        sent: &SentId,
        since_ms: i64,
    ) -> Result<Option<MessageResponse>, StoreError> {
        let sent = sent.clone();
        self.inner
            .readers
            .read(move |conn| reader::sent(conn, &sent, since_ms))
            .await
    }

    /// Commits everything queued so far, then stops the writer: later appends fail with
    /// `Closed`. For a graceful shutdown, once no request can append any more.
    pub fn close(&self) -> impl Future<Output = ()> + Send + 'static {
        let (done, answer) = oneshot::channel();
        let queued = self.send(Command::Close(done));
        async move {
            if queued.is_ok() {
                // An error means the writer is already gone, which is what we wanted.
                let _ = answer.await;
            }
        }
    }

    /// Up to `limit` messages of `room` with id < `before_id` (0 = the newest), oldest
    /// first, fewer once they hold `MAX_HISTORY_BYTES`, and whether older ones exist.
    pub async fn history(
        &self,
        room: &str,
        before_id: u64,
        limit: usize,
    ) -> Result<(Vec<MessageResponse>, bool), StoreError> {
        let room = room.to_owned();
        let limit = limit.min(MAX_READ_ROWS);
        self.inner
            .readers
            .read(move |conn| reader::history(conn, &room, before_id, limit, MAX_HISTORY_BYTES))
            .await
    }

    /// Message `id` of `room` as it is now (text, edit time, deleted mark, reactions);
    /// `None` if there is none, or if `id` is a change event's.
    pub async fn message(
        &self,
        room: &str,
        id: u64,
    ) -> Result<Option<MessageResponse>, StoreError> {
        let room = room.to_owned();
        self.inner
            .readers
            .read(move |conn| reader::one(conn, &room, id))
            .await
    }

    /// Up to `limit` events of `room` (messages and change events) with id > `after_id`,
    /// oldest first, fewer once they hold `max_bytes` of text (at least one): one page of
    /// a replay, however far back it starts.
    pub async fn after(
        &self,
        room: &str,
        after_id: u64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<MessageResponse>, StoreError> {
        let room = room.to_owned();
        let limit = limit.min(MAX_READ_ROWS);
        self.inner
            .readers
            .read(move |conn| reader::after(conn, &room, after_id, limit, max_bytes))
            .await
    }

    fn send(&self, cmd: Command) -> Result<(), StoreError> {
        let queue = self.inner.queue.as_ref().ok_or(StoreError::Closed)?;
        queue.send(cmd).map_err(|_| StoreError::Closed)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Ending the queue lets the writer commit what is left and exit; waiting for it
        // means a process that drops its store and then exits loses nothing.
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            // `on_commit` may hold the last handle, so the writer can be the one dropping.
            if writer.thread().id() != thread::current().id() {
                let _ = writer.join();
            }
        }
    }
}
