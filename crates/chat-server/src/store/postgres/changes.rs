//! Applies a change event (edit, delete, reaction; see `message_changes`) to the message
//! it names, inside the transaction that stores the event, as the SQLite store does (see
//! `sqlite::changes`): the two are never seen apart. A delete erases the text from the
//! message's row and from every edit event of it, and so from its search words (a column
//! computed from the text); PostgreSQL's old row versions, and their index entries, are
//! reclaimed by its vacuum, and no read ever returns them.
use chat_proto::{change::Kind, Change, MessageResponse};
use tokio_postgres::Transaction;

use crate::sessions::name_key;

pub(super) async fn apply(
    tx: &Transaction<'_>,
    event: &MessageResponse,
    change: &Change,
) -> Result<(), tokio_postgres::Error> {
    let (room, target) = (&event.room, change.target_id as i64);
    match change.kind() {
        Kind::Edit => {
            let edited = tx
                .execute(
                    "UPDATE messages SET text = $3, edited_at_ms = $4
                     WHERE room = $1 AND id = $2 AND change_kind IS NULL AND NOT deleted",
                    &[room, &target, &event.text, &event.sent_at_ms],
                )
                .await?;
            // Deleted while the edit was on its way: its text must not outlive the delete.
            if edited == 0 {
                tx.execute(
                    "UPDATE messages SET text = '' WHERE room = $1 AND id = $2",
                    &[room, &(event.id as i64)],
                )
                .await?;
            }
        }
        Kind::Delete => {
            tx.execute(
                "UPDATE messages SET text = '', deleted = true
                 WHERE room = $1 AND id = $2 AND change_kind IS NULL",
                &[room, &target],
            )
            .await?;
            tx.execute(
                "UPDATE messages SET text = '' WHERE room = $1 AND target = $2 AND change_kind = $3",
                &[room, &target, &(Kind::Edit as i32)],
            )
            .await?;
            tx.execute(
                "DELETE FROM reactions WHERE room = $1 AND message = $2",
                &[room, &target],
            )
            .await?;
        }
        Kind::React if change.on => {
            tx.execute(
                "INSERT INTO reactions (room, message, emoji, reactor_key, reactor, event)
                 SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM messages
                     WHERE room = $1 AND id = $2 AND change_kind IS NULL AND NOT deleted)
                 ON CONFLICT DO NOTHING",
                &[
                    room,
                    &target,
                    &change.emoji,
                    &name_key(&event.username),
                    &event.username,
                    &(event.id as i64),
                ],
            )
            .await?;
        }
        Kind::React => {
            tx.execute(
                "DELETE FROM reactions
                 WHERE room = $1 AND message = $2 AND emoji = $3 AND reactor_key = $4",
                &[room, &target, &change.emoji, &name_key(&event.username)],
            )
            .await?;
        }
    }
    Ok(())
}
