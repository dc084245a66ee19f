//! The durable message store: every accepted message is committed before anyone hears of
//! it, so a restart, or a SIGKILL, loses nothing that was acknowledged.
//!
//! One handle, two engines (`--db`): SQLite (`sqlite`), embedded, for one server; or
//! PostgreSQL (`postgres`), which several servers share. Either way one writer takes the
//! queued appends off a channel and commits them as one transaction (group commit), hands
//! the batch to `on_commit` (the hub's fan-out) and only then answers the appends. With
//! SQLite the room assigns ids before queueing; with PostgreSQL the writer takes them from
//! the room's counter row inside the transaction, so servers sharing a room agree.
use std::{
    future::Future,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use chat_proto::MessageResponse;
use tokio::sync::oneshot;

use crate::search::SearchQuery;

mod accounts;
mod database;
pub mod postgres;
pub mod sqlite;

pub use accounts::{Account, AccountStore, StoredSession};
pub use database::Database;
pub use sqlite::maintenance;

/// A room as the database held it at open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoom {
    pub name: String,
    /// Its newest message id; 0 = no messages.
    pub last_id: u64,
    /// Its newest message's time, or when it was created if later (ms since the epoch).
    pub last_active_ms: u64,
}

/// What asking to create a room under the cap did (see `MessageStore::create_room_within`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomCreated {
    Created,
    /// Made already, through this server or another.
    Existed,
    /// The cap's worth of rooms exist; nothing was recorded.
    Full,
}

/// A committed message, shared by `on_commit` and the append that posted it.
pub type Committed = Arc<MessageResponse>;

/// A message's id chosen by its sender (`MessageRequest.client_msg_id`), with the key of
/// the sender's name: stored with the message, so a repeat of the pair finds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SentId {
    pub sender_key: String,
    pub client_msg_id: String,
}

/// Most rows one read returns, whatever the caller asks: a read holds a blocking thread
/// (SQLite) or a pooled connection (PostgreSQL), so it stays short. Callers page.
pub const MAX_READ_ROWS: usize = 1000;

/// Most text (display form and text, in bytes) one History page returns, past its first
/// row: the page is held in memory until the client has read it, so it stays small
/// whatever the row limit. `has_more` says the rest is there.
pub const MAX_HISTORY_BYTES: usize = 128 * 1024;

/// Most messages in one transaction, so one commit (and the wait of its first message)
/// stays bounded however deep the queue gets.
const MAX_BATCH: usize = 1024;

/// Most appends waiting for the writer at once; one more is refused with `Busy`. Four
/// full batches: while one commit is on its way to disk the next batches fill, and past
/// that the disk is the bottleneck, so a longer queue would add only latency and memory
/// (a queued 4 KiB message holds about 9 KiB) and nothing to throughput.
pub const MAX_QUEUED_APPENDS: usize = 4 * MAX_BATCH;

/// What a refused append is told to wait: about one group commit.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_millis(200);

/// How hard each SQLite commit tries to reach the disk before the append is answered.
/// (PostgreSQL commits by its own `synchronous_commit`.)
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

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("could not open the message database {path}: {source}")]
    Open {
        path: PathBuf,
        source: Arc<rusqlite::Error>,
    },
    #[error("the message database {path} cannot use WAL (journal mode {mode:?}); is it on a network filesystem or in memory?")]
    NoWal { path: PathBuf, mode: String },
    #[error("the message database was written by a newer chat-server (schema version {0}); this one knows {known}", known = sqlite::SCHEMA_VERSION)]
    NewerSchema(i64),
    #[error("message database error: {0}")]
    Sqlite(Arc<rusqlite::Error>),
    #[error("could not open the message database {database}: {reason}")]
    PgOpen { database: String, reason: String },
    #[error("the PostgreSQL database was set up by a newer chat-server (schema version {0}); this one knows {known}", known = postgres::SCHEMA_VERSION)]
    PgNewerSchema(i32),
    /// The statement reached PostgreSQL and was refused.
    #[error("message database error: {0}")]
    Postgres(Arc<tokio_postgres::Error>),
    /// PostgreSQL could not be reached (down, restarting, connection lost): nothing of
    /// the request was saved, and the same request later may well succeed.
    #[error("the message database cannot be reached ({0})")]
    Unreachable(Arc<str>),
    #[error("could not start the message store's writer thread: {0}")]
    Spawn(Arc<std::io::Error>),
    /// A sent id's record names a message that is not there; the layout allows it, the
    /// writer never leaves it so.
    #[error("client_msg_id {0:?} is recorded as sent, but its message is missing")]
    SentWithoutMessage(String),
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

/// Two errors are equal when they are the same failure: one database error shared by
/// every append of a failed batch equals itself, never another error with the same text.
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
            (
                PgOpen {
                    database: a,
                    reason: x,
                },
                PgOpen {
                    database: b,
                    reason: y,
                },
            ) => a == b && x == y,
            (PgNewerSchema(a), PgNewerSchema(b)) => a == b,
            (Postgres(a), Postgres(b)) => Arc::ptr_eq(a, b),
            (Unreachable(a), Unreachable(b)) => Arc::ptr_eq(a, b),
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

/// What the writer is asked to do, in queue order. Nearly every command is an Append:
/// boxing it to shrink the rare others would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Command {
    Append(
        MessageResponse,
        Option<SentId>,
        oneshot::Sender<Result<Committed, StoreError>>,
    ),
    /// A room and its creation time (ms since the Unix epoch).
    CreateRoom(String, i64, oneshot::Sender<Result<(), StoreError>>),
    DeleteEmptyRoom(String, oneshot::Sender<Result<(), StoreError>>),
    /// Commit what was queued before this, then forget sent ids older than this time.
    PruneSent(i64, oneshot::Sender<Result<usize, StoreError>>),
    /// Commit what was queued before this, then stop.
    Close(oneshot::Sender<()>),
}

/// The writer's queue: a thread's for SQLite (its commits block), a task's for
/// PostgreSQL (its commits are network round trips).
enum Queue {
    Thread(std::sync::mpsc::Sender<Command>),
    Task(tokio::sync::mpsc::UnboundedSender<Command>),
}

impl Queue {
    fn send(&self, cmd: Command) -> Result<(), StoreError> {
        match self {
            Queue::Thread(queue) => queue.send(cmd).map_err(|_| StoreError::Closed),
            Queue::Task(queue) => queue.send(cmd).map_err(|_| StoreError::Closed),
        }
    }
}

/// Where reads go.
enum Reads {
    Sqlite(Arc<sqlite::Readers>),
    Postgres(postgres::Pool),
}

/// A cheap-to-clone handle on the store. When the last handle drops, the writer commits
/// what is still queued and exits; `close` does the same and waits for it.
#[derive(Clone)]
pub struct MessageStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` only while dropping, so the writer sees the queue end.
    queue: Option<Queue>,
    /// The SQLite writer thread, joined on drop.
    writer: Option<JoinHandle<()>>,
    reads: Reads,
    counters: Arc<Counters>,
    epoch: u64,
    rooms: Vec<StoredRoom>,
    /// For `accounts`: SQLite opens a connection of its own there.
    database: Database,
    durability: Durability,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    messages: AtomicU64,
    failed_batches: AtomicU64,
    /// Appends sent to the writer and not yet taken off its queue.
    queued: AtomicUsize,
}

/// Sync too: the PostgreSQL writer is a task that holds it across awaits.
type OnCommit = Box<dyn Fn(&[Committed]) + Send + Sync>;

impl MessageStore {
    /// Opens (or creates) the database and starts the writer. At most `max_reads` reads
    /// run at once (each holds a blocking thread, or a pooled PostgreSQL connection); more
    /// wait their turn. `on_commit` runs on the writer after each commit with the batch's
    /// messages, each room's in id order; it must be quick and must not wait on an
    /// append. It should not own a handle on this store either (hold a `Weak` to whatever
    /// owns it), or the store never drops.
    pub async fn open(
        database: &Database,
        durability: Durability,
        max_reads: usize,
        on_commit: impl Fn(&[Committed]) + Send + Sync + 'static,
    ) -> Result<Self, StoreError> {
        let counters = Arc::new(Counters::default());
        let on_commit: OnCommit = Box::new(on_commit);
        let (queue, writer, reads, epoch, rooms) = match database {
            Database::Sqlite(path) => {
                let opened = sqlite::open(path, durability, max_reads, on_commit, &counters)?;
                let (commands, writer) = opened.writer;
                let writer = thread::Builder::new()
                    .name("message-store-writer".into())
                    .spawn(move || writer.run(commands))
                    .map_err(|err| StoreError::Spawn(Arc::new(err)))?;
                (
                    Queue::Thread(opened.queue),
                    Some(writer),
                    Reads::Sqlite(opened.readers),
                    opened.epoch,
                    opened.rooms,
                )
            }
            Database::Postgres(url) => {
                let opened = postgres::open(url, max_reads, on_commit, &counters).await?;
                (
                    Queue::Task(opened.queue),
                    None,
                    Reads::Postgres(opened.pool),
                    opened.epoch,
                    opened.rooms,
                )
            }
        };
        Ok(MessageStore {
            inner: Arc::new(Inner {
                queue: Some(queue),
                writer,
                reads,
                counters,
                epoch,
                rooms,
                database: database.clone(),
                durability,
            }),
        })
    }

    /// Whether the database assigns message ids (PostgreSQL: servers share its rooms'
    /// counters); otherwise the caller does, under the room's lock (SQLite).
    pub fn assigns_ids(&self) -> bool {
        matches!(self.inner.reads, Reads::Postgres(_))
    }

    /// The store of accounts and sessions in the same database.
    pub fn accounts(&self) -> Result<AccountStore, StoreError> {
        match (&self.inner.reads, &self.inner.database) {
            (Reads::Postgres(pool), _) => Ok(AccountStore::postgres(pool.clone())),
            (Reads::Sqlite(_), Database::Sqlite(path)) => {
                AccountStore::sqlite(path, self.inner.durability)
            }
            (Reads::Sqlite(_), Database::Postgres(_)) => unreachable!("opened as SQLite"),
        }
    }

    /// Whether the database answers now: always for SQLite (a file), a round trip to
    /// PostgreSQL within `timeout`. For the health check.
    pub async fn reachable(&self, timeout: Duration) -> bool {
        match &self.inner.reads {
            Reads::Sqlite(_) => true,
            Reads::Postgres(pool) => postgres::reachable(pool, timeout).await,
        }
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
    /// lock, so queue order is the room's order. With SQLite the caller sets ids, strictly
    /// increasing per room; with PostgreSQL (`assigns_ids`) the id is left 0 and the
    /// writer assigns it. The future resolves once the message is committed and
    /// `on_commit` has seen it, with the message as stored. An empty `message` field is
    /// filled with the display form; it is never stored, reads derive it again.
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
    /// record of the same pair, for `find_sent`. On PostgreSQL a record another server
    /// committed within `SENT_ID_TTL` is kept instead: the message is not stored, and the
    /// answer is the one that record stands for.
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
        let created_at_ms = crate::wall_clock::unix_ms();
        let name = name.to_owned();
        self.ask(move |done| Command::CreateRoom(name, created_at_ms, done))
    }

    /// With PostgreSQL: records `name` now, in a transaction of its own, unless `cap` rooms
    /// (for a conversation, `cap` conversations) exist already, counted in the database, so servers sharing it keep one cap between
    /// them. (SQLite's one server keeps its cap in memory, see `RoomHub::get_or_create`.)
    pub async fn create_room_within(
        &self,
        name: &str,
        cap: usize,
    ) -> Result<RoomCreated, StoreError> {
        match &self.inner.reads {
            Reads::Postgres(pool) => {
                let now = crate::wall_clock::unix_ms();
                postgres::rooms::create_within(pool, name, now, cap).await
            }
            Reads::Sqlite(_) => unreachable!("only servers sharing PostgreSQL count rooms there"),
        }
    }

    /// With PostgreSQL: the `limit` most recently active rooms in the database, whichever
    /// server made them, most recent first, and how many there are.
    pub async fn room_page(&self, limit: usize) -> Result<(Vec<StoredRoom>, usize), StoreError> {
        match &self.inner.reads {
            Reads::Postgres(pool) => postgres::rooms::page(pool, limit).await,
            Reads::Sqlite(_) => unreachable!("SQLite's one server lists the rooms it holds"),
        }
    }

    /// Forgets a room that never got a message. Queued now, like `append`; a room that
    /// has messages by the time the writer gets to it is kept.
    pub fn delete_empty_room(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let name = name.to_owned();
        self.ask(move |done| Command::DeleteEmptyRoom(name, done))
    }

    /// Forgets the sent ids of messages sent before `before_ms` (ms since the Unix epoch),
    /// in a transaction of its own once what is queued ahead is committed; resolves with
    /// how many were forgotten.
    pub fn prune_sent(
        &self,
        before_ms: i64,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send + 'static {
        self.ask(move |done| Command::PruneSent(before_ms, done))
    }

    /// Queues the command `make` builds around its answer channel; resolves with the answer.
    fn ask<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + 'static {
        let (done, answer) = oneshot::channel();
        let queued = self.send(make(done));
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
        match &self.inner.reads {
            Reads::Sqlite(readers) => {
                let sent = sent.clone();
                readers
                    .read(move |conn| sqlite::reader::sent(conn, &sent, since_ms))
                    .await
            }
            Reads::Postgres(pool) => postgres::reader::sent(pool, sent, since_ms).await,
        }
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

    /// Whether `room` is in the database: with servers sharing it, one made through
    /// another server that this one has not heard of yet.
    pub async fn room_exists(&self, room: &str) -> Result<bool, StoreError> {
        match &self.inner.reads {
            Reads::Sqlite(readers) => {
                let room = room.to_owned();
                readers
                    .read(move |conn| sqlite::reader::room_exists(conn, &room))
                    .await
            }
            Reads::Postgres(pool) => postgres::reader::room_exists(pool, room).await,
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
        let limit = limit.min(MAX_READ_ROWS);
        match &self.inner.reads {
            Reads::Sqlite(readers) => {
                let room = room.to_owned();
                readers
                    .read(move |conn| {
                        sqlite::reader::history(conn, &room, before_id, limit, MAX_HISTORY_BYTES)
                    })
                    .await
            }
            Reads::Postgres(pool) => {
                postgres::reader::history(pool, room, before_id, limit, MAX_HISTORY_BYTES).await
            }
        }
    }

    /// Up to `limit` messages of `room` with id < `before_id` (0 = the newest) that hold
    /// every word of `query`, as they are now (without reactions), newest first, and
    /// whether older ones exist. Deleted messages are not in the index.
    pub async fn search(
        &self,
        room: &str,
        query: &SearchQuery,
        before_id: u64,
        limit: usize,
    ) -> Result<(Vec<MessageResponse>, bool), StoreError> {
        let limit = limit.min(MAX_READ_ROWS);
        match &self.inner.reads {
            Reads::Sqlite(readers) => {
                let (room, query) = (room.to_owned(), query.clone());
                readers
                    .read(move |conn| sqlite::search::search(conn, &room, &query, before_id, limit))
                    .await
            }
            Reads::Postgres(pool) => {
                postgres::reader::search(pool, room, query, before_id, limit).await
            }
        }
    }

    /// Message `id` of `room` as it is now (text, edit time, deleted mark, reactions);
    /// `None` if there is none, or if `id` is a change event's.
    pub async fn message(
        &self,
        room: &str,
        id: u64,
    ) -> Result<Option<MessageResponse>, StoreError> {
        match &self.inner.reads {
            Reads::Sqlite(readers) => {
                let room = room.to_owned();
                readers
                    .read(move |conn| sqlite::reader::one(conn, &room, id))
                    .await
            }
            Reads::Postgres(pool) => postgres::reader::one(pool, room, id).await,
        }
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
        let limit = limit.min(MAX_READ_ROWS);
        match &self.inner.reads {
            Reads::Sqlite(readers) => {
                let room = room.to_owned();
                readers
                    .read(move |conn| {
                        sqlite::reader::after(conn, &room, after_id, limit, max_bytes)
                    })
                    .await
            }
            Reads::Postgres(pool) => {
                postgres::reader::after(pool, room, after_id, limit, max_bytes).await
            }
        }
    }

    fn send(&self, cmd: Command) -> Result<(), StoreError> {
        let queue = self.inner.queue.as_ref().ok_or(StoreError::Closed)?;
        queue.send(cmd)
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
