//! Reads: history pages and replays, each on tokio's blocking pool over a pooled
//! connection of its own, a bounded number at a time: a flood of History or catch-up
//! requests queues for a permit instead of taking every blocking thread (and the memory
//! each read builds up).
//!
//! WAL gives every read a snapshot of what was committed when it began, without waiting
//! for the writer or making it wait. Connections are kept for reuse (opening one costs a
//! file open and a schema parse), but only a few: a burst of reads opens more and closes
//! them afterwards.
use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use chat_proto::{Change, MessageResponse, Quote, Reaction};
use rusqlite::{params, Connection, Row};
use tokio::sync::Semaphore;

use super::schema;
use crate::message_changes::QUOTE_CHARS;
use crate::store::{display_form, SentId, StoreError};

/// Idle read connections kept open between reads.
const IDLE_READERS: usize = 4;

pub(in crate::store) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// One permit per read allowed to run.
    running: Arc<Semaphore>,
}

impl Readers {
    pub fn new(path: &Path, max_reads: usize) -> Self {
        Readers {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            running: Arc::new(Semaphore::new(max_reads.max(1))),
        }
    }

    /// Runs `query` on the blocking pool with a connection from the pool, once one of the
    /// `max_reads` permits is free.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let readers = Arc::clone(self);
        // The permit goes with the query: a caller that stops waiting does not stop the
        // read, so the read keeps its permit until it is really done.
        let read = move || {
            let _permit = permit;
            readers.with_connection(query)
        };
        match tokio::task::spawn_blocking(read).await {
            Ok(result) => result,
            // A panic in a query is a bug; let it surface as one.
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // The runtime is shutting down.
            Err(_) => Err(StoreError::Closed),
        }
    }

    fn with_connection<T>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => schema::open_reader(&self.path).map_err(StoreError::sqlite)?,
        };
        let result = query(&conn).map_err(StoreError::sqlite);
        // A connection that just failed may be in a bad state; let it close.
        if result.is_ok() {
            let mut idle = self.idle.lock().unwrap();
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        }
        result
    }
}

/// SQLite integers are signed; ids past `i64::MAX` are never stored, so clamping a bound
/// there changes no answer.
pub(super) fn bound(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// Whether `room` is in the database.
pub(in crate::store) fn room_exists(conn: &Connection, room: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM rooms WHERE name = ?1")?
        .exists([room])
}

/// Every column a message is read back with: its row (`m`), and the row it replies to
/// (`q`, none when `reply_to` is 0, since ids start at 1). See `message`.
pub(super) const COLUMNS: &str =
    "m.room, m.id, m.username, m.text, m.sent_at_ms, m.guest, m.reply_to,
    m.edited_at_ms, m.deleted, m.change_kind, m.target, m.emoji, m.react_on,
    q.username, q.text, q.deleted
    FROM messages m LEFT JOIN messages q ON q.room = m.room AND q.id = m.reply_to";

/// Stops at `limit` messages or once the rows read hold `max_bytes` of text (past the
/// first row); `has_more` then says older ones exist. Messages as they are now (edited,
/// deleted, with their reactions); change events are left out and not counted.
pub(in crate::store) fn history(
    conn: &Connection,
    room: &str,
    before_id: u64,
    limit: usize,
    max_bytes: usize,
) -> rusqlite::Result<(Vec<MessageResponse>, bool)> {
    let before = if before_id == 0 {
        i64::MAX
    } else {
        bound(before_id)
    };
    // One row more than asked tells whether older ones exist, without a second query.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS}
         WHERE m.room = ?1 AND m.id < ?2 AND m.change_kind IS NULL ORDER BY m.id DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![room, before, limit as i64 + 1], message)?;
    let (mut newest_first, mut bytes, mut has_more) = (Vec::new(), 0, false);
    for row in rows {
        if newest_first.len() == limit || bytes >= max_bytes {
            has_more = true;
            break;
        }
        let msg = row?;
        bytes += msg.message.len() + msg.text.len();
        newest_first.push(msg);
    }
    newest_first.reverse();
    add_reactions(conn, room, &mut newest_first)?;
    Ok((newest_first, has_more))
}

/// Stops at `limit` rows or once the rows read hold `max_bytes` of text (past the first
/// row), whichever comes first. Change events included: a replay is the room's sequence.
pub(in crate::store) fn after(
    conn: &Connection,
    room: &str,
    after_id: u64,
    limit: usize,
    max_bytes: usize,
) -> rusqlite::Result<Vec<MessageResponse>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} WHERE m.room = ?1 AND m.id > ?2 ORDER BY m.id LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![room, bound(after_id), limit as i64], message)?;
    let (mut page, mut bytes) = (Vec::new(), 0);
    for row in rows {
        if bytes >= max_bytes {
            break;
        }
        let msg = row?;
        bytes += msg.message.len() + msg.text.len();
        page.push(msg);
    }
    Ok(page)
}

/// Message `id` of `room` as it is now, with its reactions; `None` for a change event.
pub(in crate::store) fn one(
    conn: &Connection,
    room: &str,
    id: u64,
) -> rusqlite::Result<Option<MessageResponse>> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} WHERE m.room = ?1 AND m.id = ?2 AND m.change_kind IS NULL"
        ))?
        .query_map(params![room, bound(id)], message)?
        .next()
        .transpose()?;
    let mut found: Vec<_> = found.into_iter().collect();
    add_reactions(conn, room, &mut found)?;
    Ok(found.pop())
}

pub(in crate::store) fn sent(
    conn: &Connection,
    sent: &SentId,
    since_ms: i64,
) -> rusqlite::Result<Option<MessageResponse>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} JOIN sent_ids s ON m.room = s.room AND m.id = s.id
         WHERE s.sender_key = ?1 AND s.client_msg_id = ?2 AND s.sent_at_ms >= ?3"
    ))?
    .query_map(
        params![sent.sender_key, sent.client_msg_id, since_ms],
        message,
    )?
    .next()
    .transpose()
}

/// Fills the reactions of `messages` (oldest first, one room): who gave each emoji, in
/// the order they gave it, emoji in the order first given.
fn add_reactions(
    conn: &Connection,
    room: &str,
    messages: &mut [MessageResponse],
) -> rusqlite::Result<()> {
    let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
        return Ok(());
    };
    let mut stmt = conn.prepare_cached(
        "SELECT message, emoji, reactor FROM reactions
         WHERE room = ?1 AND message BETWEEN ?2 AND ?3 ORDER BY message, event",
    )?;
    let rows = stmt.query_map(params![room, bound(first.id), bound(last.id)], |row| {
        Ok((row.get::<_, u64>(0)?, row.get::<_, String>(1)?, row.get(2)?))
    })?;
    for row in rows {
        let (id, emoji, reactor) = row?;
        let Ok(at) = messages.binary_search_by_key(&id, |m| m.id) else {
            continue;
        };
        let reactions = &mut messages[at].reactions;
        match reactions.iter_mut().find(|r| r.emoji == emoji) {
            Some(reaction) => reaction.usernames.push(reactor),
            None => reactions.push(Reaction {
                emoji,
                usernames: vec![reactor],
            }),
        }
    }
    Ok(())
}

pub(super) fn message(row: &Row<'_>) -> rusqlite::Result<MessageResponse> {
    let username: String = row.get(2)?;
    let text: String = row.get(3)?;
    let deleted: bool = row.get(8)?;
    let change_kind: Option<i32> = row.get(9)?;
    let quote = match row.get::<_, Option<String>>(13)? {
        Some(username) => Some(Quote {
            username,
            text: quoted_line(&row.get::<_, String>(14)?),
            deleted: row.get(15)?,
        }),
        None => None,
    };
    Ok(MessageResponse {
        message: match deleted {
            true => String::new(),
            false => display_form(&username, &text),
        },
        room: row.get(0)?,
        id: row.get(1)?,
        username,
        text,
        sent_at_ms: row.get(4)?,
        guest: row.get(5)?,
        reply_to: row.get(6)?,
        quote,
        edited_at_ms: row.get(7)?,
        deleted,
        reactions: Vec::new(),
        change: match change_kind {
            Some(kind) => Some(Change {
                kind,
                target_id: row.get(10)?,
                emoji: row.get(11)?,
                on: row.get(12)?,
            }),
            None => None,
        },
    })
}

/// The line of a message a reply quotes (see `message_changes::quote`).
fn quoted_line(text: &str) -> String {
    let first_line = text.lines().next().unwrap_or_default();
    first_line.chars().take(QUOTE_CHARS).collect()
}
