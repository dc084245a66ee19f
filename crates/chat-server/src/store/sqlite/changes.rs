//! Applies a change event (edit, delete, reaction; see `message_changes`) to the message
//! it names, inside the transaction that stores the event, so the two are never seen
//! apart.
//!
//! A delete erases the text from the message's row, from every edit event of it and from
//! the search index (an edit replaces the message's words there), and
//! the write connection runs with `secure_delete`, so SQLite zeroes the bytes it frees.
//! What can still hold it afterwards is the write-ahead log: its frames keep the old
//! pages until the log is overwritten from its start (SQLite restarts it once a
//! checkpoint has copied all of it back) or removed (the last connection to close
//! checkpoints and deletes it). Until then the text is in the `-wal` file, never in what
//! any read returns.
use chat_proto::{change::Kind, Change, MessageResponse};
use rusqlite::{params, Transaction};

use super::search;
use crate::sessions::name_key;

pub(super) fn apply(
    tx: &Transaction<'_>,
    event: &MessageResponse,
    change: &Change,
) -> rusqlite::Result<()> {
    let (room, target) = (&event.room, change.target_id);
    match change.kind() {
        Kind::Edit => {
            search::unindex(tx, room, target)?;
            let edited = tx
                .prepare_cached(
                    "UPDATE messages SET text = ?3, edited_at_ms = ?4
                     WHERE room = ?1 AND id = ?2 AND change_kind IS NULL AND deleted = 0",
                )?
                .execute(params![room, target, event.text, event.sent_at_ms])?;
            // Deleted while the edit was on its way: its text must not outlive the delete.
            if edited == 0 {
                tx.prepare_cached("UPDATE messages SET text = '' WHERE room = ?1 AND id = ?2")?
                    .execute(params![room, event.id])?;
            } else {
                search::index(tx, room, target, &event.text)?;
            }
        }
        Kind::Delete => {
            search::unindex(tx, room, target)?;
            tx.prepare_cached(
                "UPDATE messages SET text = '', deleted = 1
                 WHERE room = ?1 AND id = ?2 AND change_kind IS NULL",
            )?
            .execute(params![room, target])?;
            tx.prepare_cached(
                "UPDATE messages SET text = '' WHERE room = ?1 AND target = ?2 AND change_kind = ?3",
            )?
            .execute(params![room, target, Kind::Edit as i32])?;
            tx.prepare_cached("DELETE FROM reactions WHERE room = ?1 AND message = ?2")?
                .execute(params![room, target])?;
        }
        Kind::React if change.on => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO reactions (room, message, emoji, reactor_key, reactor, event)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM messages
                     WHERE room = ?1 AND id = ?2 AND change_kind IS NULL AND deleted = 0)",
            )?
            .execute(params![
                room,
                target,
                change.emoji,
                name_key(&event.username),
                event.username,
                event.id
            ])?;
        }
        Kind::React => {
            tx.prepare_cached(
                "DELETE FROM reactions
                 WHERE room = ?1 AND message = ?2 AND emoji = ?3 AND reactor_key = ?4",
            )?
            .execute(params![
                room,
                target,
                change.emoji,
                name_key(&event.username)
            ])?;
        }
    }
    Ok(())
}
