//! The FTS5 index of messages (`message_search`, see `schema::V4`), kept in step with
//! them inside the writer's transactions, and the search read.
//!
//! A row's rowid is `search_key << ID_BITS | id`: one room's messages are one contiguous
//! rowid range in id order, so "this room, older than X, newest first" is a rowid range
//! scanned backwards, which FTS5 does by seeking in each word's posting list and stopping
//! after a page, never visiting other rooms' postings nor the older matches of this one.
use chat_proto::MessageResponse;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::reader::{bound, message, COLUMNS};
use crate::search::SearchQuery;

/// Bits of a rowid for the message id (the `<< 40` in the statements below): 2^40
/// messages per room, leaving 2^23 room keys. Rooms are numbered from 1 as they are
/// recorded (`writer`), and capped far below that (`--max-rooms`).
const ID_BITS: u32 = 40;
const ID_MASK: i64 = (1 << ID_BITS) - 1;

/// Adds message `id` of `room` (text as it is now) to the index.
pub(super) fn index(tx: &Transaction<'_>, room: &str, id: u64, text: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO message_search (rowid, text)
         SELECT (search_key << 40) | ?2, ?3 FROM rooms WHERE name = ?1",
    )?
    .execute(params![room, id, text])?;
    Ok(())
}

/// Takes message `id` of `room` out of the index (nothing if it is not there: a deleted
/// message, or a change event). Call it before the message's text changes: a contentless
/// index finds the entries to remove from the text they were made from.
pub(super) fn unindex(tx: &Transaction<'_>, room: &str, id: u64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO message_search (message_search, rowid, text)
         SELECT 'delete', (r.search_key << 40) | m.id, m.text
         FROM messages m JOIN rooms r ON r.name = m.room
         WHERE m.room = ?1 AND m.id = ?2 AND m.change_kind IS NULL AND m.deleted = 0",
    )?
    .execute(params![room, id])?;
    Ok(())
}

/// Up to `limit` messages of `room` with id < `before_id` (0 = the newest) holding every
/// word of `query`, newest first, and whether older ones exist.
pub(in crate::store) fn search(
    conn: &Connection,
    room: &str,
    query: &SearchQuery,
    before_id: u64,
    limit: usize,
) -> rusqlite::Result<(Vec<MessageResponse>, bool)> {
    let key: Option<i64> = conn
        .prepare_cached("SELECT search_key FROM rooms WHERE name = ?1")?
        .query_row([room], |row| row.get(0))
        .optional()?;
    let Some(key) = key else {
        return Ok((Vec::new(), false));
    };
    let newest = match before_id {
        0 => ID_MASK,
        id => (bound(id) - 1).min(ID_MASK),
    };
    let (low, high) = (key << ID_BITS, (key << ID_BITS) | newest);
    // One row more than asked tells whether older ones exist.
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT rowid FROM message_search
             WHERE message_search MATCH ?1 AND rowid BETWEEN ?2 AND ?3
             ORDER BY rowid DESC LIMIT ?4",
        )?
        .query_map(params![query.fts5(), low, high, limit as i64 + 1], |row| {
            row.get(0)
        })?
        .collect::<Result<_, _>>()?;
    let has_more = ids.len() > limit;
    let mut read = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} WHERE m.room = ?1 AND m.id = ?2 AND m.change_kind IS NULL"
    ))?;
    let mut hits = Vec::with_capacity(limit.min(ids.len()));
    for rowid in ids.into_iter().take(limit) {
        // The index and the messages change in one transaction, so the row is there.
        if let Some(msg) = read
            .query_row(params![room, rowid & ID_MASK], message)
            .optional()?
        {
            hits.push(msg);
        }
    }
    Ok((hits, has_more))
}
