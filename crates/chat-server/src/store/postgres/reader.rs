//! Reads: history pages, replays and sent-id lookups, each on a pooled connection, at
//! most `max_reads` at a time (see `Pool::read`). Each statement sees what was committed
//! when it began, so a page never shows a message whose transaction is still open.
use chat_proto::{Change, MessageResponse, Quote, Reaction};
use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::{before_bound, bound, error, Pool};
use crate::{
    message_changes::QUOTE_CHARS,
    search::SearchQuery,
    store::{display_form, SentId, StoreError},
};

/// Whether `room` is in the database (made through any server).
pub(in crate::store) async fn room_exists(pool: &Pool, room: &str) -> Result<bool, StoreError> {
    let (_permit, conn) = pool.read().await?;
    let stmt = conn
        .prepare_cached("SELECT 1 FROM rooms WHERE name = $1")
        .await
        .map_err(error)?;
    Ok(!conn.query(&stmt, &[&room]).await.map_err(error)?.is_empty())
}

/// Every column a message is read back with: its row (`m`), and the row it replies to
/// (`q`, none when `reply_to` is 0, since ids start at 1). See `message`.
const COLUMNS: &str = "m.room, m.id, m.username, m.text, m.sent_at_ms, m.guest, m.reply_to,
    m.edited_at_ms, m.deleted, m.change_kind, m.target, m.emoji, m.react_on,
    q.username, q.text, q.deleted
    FROM messages m LEFT JOIN messages q ON q.room = m.room AND q.id = m.reply_to";

/// Stops at `limit` messages or once the rows read hold `max_bytes` of text (past the
/// first row); `has_more` then says older ones exist. Messages as they are now (edited,
/// deleted, with their reactions); change events are left out and not counted.
pub(in crate::store) async fn history(
    pool: &Pool,
    room: &str,
    before_id: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<(Vec<MessageResponse>, bool), StoreError> {
    let before = before_bound(before_id);
    let (_permit, conn) = pool.read().await?;
    // One row more than asked tells whether older ones exist, without a second query.
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS}
             WHERE m.room = $1 AND m.id < $2 AND m.change_kind IS NULL
             ORDER BY m.id DESC LIMIT $3"
        ))
        .await
        .map_err(error)?;
    let rows = conn
        .query(&stmt, &[&room, &before, &(limit as i64 + 1)])
        .await
        .map_err(error)?;
    let (mut newest_first, mut bytes, mut has_more) = (Vec::new(), 0, false);
    for row in &rows {
        if newest_first.len() == limit || bytes >= max_bytes {
            has_more = true;
            break;
        }
        let msg = message(row);
        bytes += msg.message.len() + msg.text.len();
        newest_first.push(msg);
    }
    newest_first.reverse();
    add_reactions(&conn, room, &mut newest_first).await?;
    Ok((newest_first, has_more))
}

/// Stops at `limit` rows or once the rows read hold `max_bytes` of text (past the first
/// row), whichever comes first. Change events included: a replay is the room's sequence.
pub(in crate::store) async fn after(
    pool: &Pool,
    room: &str,
    after_id: u64,
    limit: usize,
    max_bytes: usize,
) -> Result<Vec<MessageResponse>, StoreError> {
    let (_permit, conn) = pool.read().await?;
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} WHERE m.room = $1 AND m.id > $2 ORDER BY m.id LIMIT $3"
        ))
        .await
        .map_err(error)?;
    let rows = conn
        .query(&stmt, &[&room, &bound(after_id), &(limit as i64)])
        .await
        .map_err(error)?;
    let (mut page, mut bytes) = (Vec::new(), 0);
    for row in &rows {
        if bytes >= max_bytes {
            break;
        }
        let msg = message(row);
        bytes += msg.message.len() + msg.text.len();
        page.push(msg);
    }
    Ok(page)
}

/// Up to `limit` messages of `room` with id < `before_id` (0 = the newest) holding every
/// word of `query`, newest first, and whether older ones exist (see `schema::V4`). The
/// planner picks between the word index (rare words) and walking the room's ids
/// backwards, testing each row's words (common ones).
pub(in crate::store) async fn search(
    pool: &Pool,
    room: &str,
    query: &SearchQuery,
    before_id: u64,
    limit: usize,
) -> Result<(Vec<MessageResponse>, bool), StoreError> {
    let before = before_bound(before_id);
    let (_permit, conn) = pool.read().await?;
    // Prepared afresh on every call, not cached: the right plan depends on the words, and
    // a statement executed many times may be switched to one generic plan, which walks
    // the whole room for a rare word (0.6 to 1 s on a million messages, against a few
    // milliseconds). One extra round trip buys a plan made for these words every time.
    let sql = format!(
        "SELECT {COLUMNS}
         WHERE m.room = $1 AND m.id < $2 AND m.change_kind IS NULL
           AND m.search @@ plainto_tsquery('simple', $3)
         ORDER BY m.id DESC LIMIT $4"
    );
    let rows = conn
        .query(
            sql.as_str(),
            &[&room, &before, &query.plain(), &(limit as i64 + 1)],
        )
        .await
        .map_err(error)?;
    let has_more = rows.len() > limit;
    Ok((rows.iter().take(limit).map(message).collect(), has_more))
}

pub(in crate::store) async fn sent(
    pool: &Pool,
    sent: &SentId,
    since_ms: i64,
) -> Result<Option<MessageResponse>, StoreError> {
    let (_permit, conn) = pool.read().await?;
    let stmt = conn.prepare_cached(&sent_query()).await.map_err(error)?;
    let row = conn
        .query_opt(&stmt, &[&sent.sender_key, &sent.client_msg_id, &since_ms])
        .await
        .map_err(error)?;
    Ok(row.as_ref().map(message))
}

/// The message `sent` stands for, as the writer's transaction `tx` sees it: its own rows
/// and what other servers committed before the statement began.
pub(super) async fn sent_in(
    tx: &deadpool_postgres::Transaction<'_>,
    sent: &SentId,
) -> Result<Option<MessageResponse>, tokio_postgres::Error> {
    let stmt = tx.prepare_cached(&sent_query()).await?;
    let row = tx
        .query_opt(&stmt, &[&sent.sender_key, &sent.client_msg_id, &0i64])
        .await?;
    Ok(row.as_ref().map(message))
}

/// The message a sent id stands for, if recorded at or after `$3`.
fn sent_query() -> String {
    format!(
        "SELECT {COLUMNS} JOIN sent_ids s ON m.room = s.room AND m.id = s.id
         WHERE s.sender_key = $1 AND s.client_msg_id = $2 AND s.sent_at_ms >= $3"
    )
}

/// Message `id` of `room` as it is now, with its reactions; `None` for a change event.
pub(in crate::store) async fn one(
    pool: &Pool,
    room: &str,
    id: u64,
) -> Result<Option<MessageResponse>, StoreError> {
    let (_permit, conn) = pool.read().await?;
    let stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} WHERE m.room = $1 AND m.id = $2 AND m.change_kind IS NULL"
        ))
        .await
        .map_err(error)?;
    let row = conn
        .query_opt(&stmt, &[&room, &bound(id)])
        .await
        .map_err(error)?;
    let mut found: Vec<_> = row.as_ref().map(message).into_iter().collect();
    add_reactions(&conn, room, &mut found).await?;
    Ok(found.pop())
}

/// Fills the reactions of `messages` (oldest first, one room): who gave each emoji, in
/// the order they gave it, emoji in the order first given.
async fn add_reactions(
    conn: &Object,
    room: &str,
    messages: &mut [MessageResponse],
) -> Result<(), StoreError> {
    let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
        return Ok(());
    };
    let stmt = conn
        .prepare_cached(
            "SELECT message, emoji, reactor FROM reactions
             WHERE room = $1 AND message BETWEEN $2 AND $3 ORDER BY message, event",
        )
        .await
        .map_err(error)?;
    let rows = conn
        .query(&stmt, &[&room, &bound(first.id), &bound(last.id)])
        .await
        .map_err(error)?;
    for row in rows {
        let (id, emoji, reactor): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
        let Ok(at) = messages.binary_search_by_key(&(id as u64), |m| m.id) else {
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

fn message(row: &Row) -> MessageResponse {
    let username: String = row.get(2);
    let text: String = row.get(3);
    let deleted: bool = row.get(8);
    let change_kind: Option<i32> = row.get(9);
    let quote = row.get::<_, Option<String>>(13).map(|username| Quote {
        username,
        text: quoted_line(&row.get::<_, String>(14)),
        deleted: row.get(15),
    });
    MessageResponse {
        message: match deleted {
            true => String::new(),
            false => display_form(&username, &text),
        },
        room: row.get(0),
        id: row.get::<_, i64>(1) as u64,
        username,
        text,
        sent_at_ms: row.get(4),
        guest: row.get(5),
        reply_to: row.get::<_, i64>(6) as u64,
        quote,
        edited_at_ms: row.get(7),
        deleted,
        reactions: Vec::new(),
        change: change_kind.map(|kind| Change {
            kind,
            target_id: row.get::<_, i64>(10) as u64,
            emoji: row.get(11),
            on: row.get(12),
        }),
    }
}

/// The line of a message a reply quotes (see `message_changes::quote`).
fn quoted_line(text: &str) -> String {
    let first_line = text.lines().next().unwrap_or_default();
    first_line.chars().take(QUOTE_CHARS).collect()
}
