//! The database layout, and how each connection is set up.
//!
//! Messages are keyed by (room, id) in a WITHOUT ROWID table, so a room's messages sit
//! together in id order and every read is one range scan of the primary key. `rooms` is
//! kept apart so a room outlives a restart before its first message, and so finding each
//! room's newest id at open is one index probe per room, not a scan of every message.
//!
//! The layout grows by numbered steps (`MIGRATIONS`): a database is brought from its
//! `user_version` to `VERSION` in place, inside the transaction that opens it, so an
//! older file is upgraded and never misread.
use std::{path::Path, time::Duration};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::store::{Durability, StoreError, StoredRoom};

/// Bumped when the layout changes; a database from a newer server is refused rather than
/// misread.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a connection waits on another's lock (a checkpoint, a second process) before
/// reporting an error instead.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Step `i` takes a database from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The first layout. `IF NOT EXISTS`, because files from before versioning have the tables
/// at version 0.
pub(super) const V1: &str = "
    CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS rooms (
        name TEXT PRIMARY KEY
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS messages (
        room TEXT NOT NULL,
        id INTEGER NOT NULL,
        username TEXT NOT NULL,
        text TEXT NOT NULL,
        sent_at_ms INTEGER NOT NULL,
        PRIMARY KEY (room, id)
    ) WITHOUT ROWID;
";

/// Accounts, stored sessions, whether a message came from a guest, and when each room was
/// created (rooms from before get 0: unknown, so they sort as least recently active).
///
/// `accounts.name_key` and `sessions.name_key` are the name in `name_key` form (the one
/// every name comparison uses); `name` keeps it as registered. A session row holds only
/// the SHA-256 of its token (see `sessions::token`), never the token.
/// `sent_ids`: which message a sender's own id (`client_msg_id`, with the sender's
/// `name_key`) posted, so a repeat gets it back (see `idempotency`); kept a day, pruned
/// by time, hence the index.
const V2: &str = "
    ALTER TABLE messages ADD COLUMN guest INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE accounts (
        name_key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE sessions (
        token_hash BLOB PRIMARY KEY,
        name TEXT NOT NULL,
        name_key TEXT NOT NULL,
        account INTEGER NOT NULL,
        last_active_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_by_name ON sessions (name_key);
    CREATE TABLE sent_ids (
        sender_key TEXT NOT NULL,
        client_msg_id TEXT NOT NULL,
        room TEXT NOT NULL,
        id INTEGER NOT NULL,
        sent_at_ms INTEGER NOT NULL,
        PRIMARY KEY (sender_key, client_msg_id)
    ) WITHOUT ROWID;
    CREATE INDEX sent_ids_by_time ON sent_ids (sent_at_ms);
    ALTER TABLE rooms ADD COLUMN created_at_ms INTEGER NOT NULL DEFAULT 0;
";

/// Replies, edits, deletes and reactions (see `message_changes`). A change event is a
/// row of `messages` with `change_kind` set (a `chat_proto::change::Kind`) naming its
/// `target`; a message has it NULL. The store applies each change to its target's row in
/// the transaction that stores it (see `changes`). `reactions` holds who reacted with
/// what, keyed by the reactor's name key; `event` is the change that added it, so
/// reactions list in the order they were first given.
const V3: &str = "
    ALTER TABLE messages ADD COLUMN reply_to INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN edited_at_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN change_kind INTEGER;
    ALTER TABLE messages ADD COLUMN target INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN emoji TEXT NOT NULL DEFAULT '';
    ALTER TABLE messages ADD COLUMN react_on INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_by_target ON messages (room, target) WHERE change_kind IS NOT NULL;
    CREATE TABLE reactions (
        room TEXT NOT NULL,
        message INTEGER NOT NULL,
        emoji TEXT NOT NULL,
        reactor_key TEXT NOT NULL,
        reactor TEXT NOT NULL,
        event INTEGER NOT NULL,
        PRIMARY KEY (room, message, emoji, reactor_key)
    ) WITHOUT ROWID;
";

/// Full-text search (see `search`): an FTS5 index of every message's text as it is now,
/// contentless (it keeps the words' positions, never the text, which `messages` has
/// already). A message leaves it by the `delete` command, given the text it was indexed
/// with, and `secure-delete` makes that take the words out of the index's pages rather
/// than mask them. A row's rowid is its room's `search_key` and its id together; the
/// index is built here for the messages already stored.
const V4: &str = "
    ALTER TABLE rooms ADD COLUMN search_key INTEGER;
    UPDATE rooms SET search_key = k.n
        FROM (SELECT name, row_number() OVER (ORDER BY name) AS n FROM rooms) k
        WHERE k.name = rooms.name;
    CREATE UNIQUE INDEX rooms_by_search_key ON rooms (search_key);
    CREATE VIRTUAL TABLE message_search USING fts5 (
        text, content = '',
        tokenize = 'unicode61 remove_diacritics 0'
    );
    INSERT INTO message_search (message_search, rank) VALUES ('secure-delete', 1);
    INSERT INTO message_search (rowid, text)
        SELECT (r.search_key << 40) | m.id, m.text
        FROM messages m JOIN rooms r ON r.name = m.room
        WHERE m.change_kind IS NULL AND m.deleted = 0;
";

/// The write connection, ready, with what the store reads once at open.
pub(super) struct Opened {
    pub conn: Connection,
    pub epoch: u64,
    pub rooms: Vec<StoredRoom>,
}

pub(super) fn open(path: &Path, durability: Durability) -> Result<Opened, StoreError> {
    let failed = |source| StoreError::Open {
        path: path.to_owned(),
        source: std::sync::Arc::new(source),
    };
    let mut conn = Connection::open(path).map_err(failed)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(failed)?;
    // WAL: readers never wait for the writer, and a commit is one append to the log.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))
        .map_err(failed)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal {
            path: path.to_owned(),
            mode,
        });
    }
    conn.pragma_update(None, "synchronous", synchronous(durability))
        .map_err(failed)?;
    // Freed bytes are zeroed, so a deleted message's text is not left in free space.
    conn.pragma_update(None, "secure_delete", true)
        .map_err(failed)?;

    // IMMEDIATE: two servers opening a new file at once agree on one epoch.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(failed)?;
    if version > VERSION {
        return Err(StoreError::NewerSchema(version));
    }
    // A negative version is not ours to read; SQLite files start at 0.
    for step in &MIGRATIONS[usize::try_from(version).unwrap_or(0)..] {
        tx.execute_batch(step).map_err(failed)?;
    }
    tx.pragma_update(None, "user_version", VERSION)
        .map_err(failed)?;
    let epoch = epoch(&tx).map_err(failed)?;
    let rooms = rooms(&tx).map_err(failed)?;
    tx.commit().map_err(failed)?;
    Ok(Opened { conn, epoch, rooms })
}

/// A second writing connection beside the message writer's (accounts and sessions), on
/// a database `open` has already set up.
pub(super) fn open_side_writer(
    path: &Path,
    durability: Durability,
) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", synchronous(durability))?;
    Ok(conn)
}

fn synchronous(durability: Durability) -> &'static str {
    match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    }
}

/// A connection for reads only; `query_only` makes a slip into writing an error.
pub(super) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// The database's epoch, chosen at random (never 0, which clients send for "unknown")
/// the first time and read back ever after.
fn epoch(conn: &Connection) -> rusqlite::Result<u64> {
    let stored: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |row| {
            row.get(0)
        })
        .optional()?;
    if let Some(epoch) = stored {
        // Stored as the same 64 bits in SQLite's signed integer.
        return Ok(epoch as u64);
    }
    let epoch = rand::random_range(1..=u64::MAX);
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('epoch', ?1)",
        [epoch as i64],
    )?;
    Ok(epoch)
}

fn rooms(conn: &Connection) -> rusqlite::Result<Vec<StoredRoom>> {
    let rooms: Vec<(String, u64)> = conn
        .prepare("SELECT name, created_at_ms FROM rooms ORDER BY name")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut newest = conn
        .prepare("SELECT id, sent_at_ms FROM messages WHERE room = ?1 ORDER BY id DESC LIMIT 1")?;
    rooms
        .into_iter()
        .map(|(name, created_at_ms)| {
            let last: Option<(u64, u64)> = newest
                .query_row([&name], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let (last_id, last_sent_ms) = last.unwrap_or((0, 0));
            Ok(StoredRoom {
                name,
                last_id,
                last_active_ms: last_sent_ms.max(created_at_ms),
            })
        })
        .collect()
}
