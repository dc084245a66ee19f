//! Changes to messages already posted (edits, deletes, reactions) and the check a reply
//! makes. Each change is an event with its own id in the room's sequence, naming the
//! message it changes (as Matrix relations do), so ordering, resuming after an id, the
//! fan-out ring, the bus between servers and its gap fill all carry it exactly as they
//! carry messages; the store applies it to its target in the transaction that stores it.
//!
//! Who may change what is decided in one place, `may_modify`, so a moderator role later
//! is one more arm there.
use chat_proto::{change::Kind, reactions, Change, MessageResponse, Quote};

use crate::{
    error::ChatError,
    hub::RoomHub,
    room::{Reply, Room},
    sessions::{name_key, Sender, Session},
    store::Committed,
};

/// Most characters of the original a reply quotes.
pub const QUOTE_CHARS: usize = 120;

/// Whether `actor` may edit or delete `message`: only its author, signed in to the
/// account that posted it. A guest's message cannot be changed by anyone, since the
/// store does not know which session posted it and a guest name may later be another
/// person's.
pub fn may_modify(actor: &Session, message: &MessageResponse) -> Result<(), ChatError> {
    if message.guest {
        return Err(ChatError::GuestMessage(message.id));
    }
    if actor.is_guest() || name_key(actor.name()) != name_key(&message.username) {
        return Err(ChatError::NotYourMessage {
            id: message.id,
            author: message.username.clone(),
        });
    }
    Ok(())
}

/// The message `id` of `room` as it is now; NOT_FOUND if the room has no such message
/// (a change event's id is not a message either).
async fn target(hub: &RoomHub, room: &str, id: u64) -> Result<MessageResponse, ChatError> {
    hub.store()
        .message(room, id)
        .await?
        .ok_or_else(|| ChatError::NoSuchMessage {
            room: room.to_owned(),
            id,
        })
}

/// Replaces the text of message `id` with `text` (validated already).
pub async fn edit(
    hub: &RoomHub,
    room: &Room,
    actor: &Session,
    id: u64,
    text: &str,
) -> Result<Committed, ChatError> {
    let message = target(hub, room.name(), id).await?;
    may_modify(actor, &message)?;
    if message.deleted {
        return Err(ChatError::MessageDeleted(id));
    }
    actor.check_message_rate()?;
    let change = Change {
        target_id: id,
        kind: Kind::Edit.into(),
        ..Change::default()
    };
    let posted = room.post_change(hub.store(), by(actor), text, change)?;
    Ok(posted.await?)
}

/// Deletes message `id`: the store erases its text. Deleting a deleted message again
/// succeeds and changes nothing.
pub async fn delete(hub: &RoomHub, room: &Room, actor: &Session, id: u64) -> Result<(), ChatError> {
    let message = target(hub, room.name(), id).await?;
    may_modify(actor, &message)?;
    if message.deleted {
        return Ok(());
    }
    actor.check_message_rate()?;
    let change = Change {
        target_id: id,
        kind: Kind::Delete.into(),
        ..Change::default()
    };
    room.post_change(hub.store(), by(actor), "", change)?
        .await?;
    Ok(())
}

/// Adds `actor`'s reaction `emoji` to message `id`, or takes it back if it is there;
/// returns whether it is there now. Two toggles racing from one person both see the
/// same state and post the same change, which the store applies idempotently.
pub async fn react(
    hub: &RoomHub,
    room: &Room,
    actor: &Session,
    id: u64,
    emoji: &str,
) -> Result<bool, ChatError> {
    if !reactions::is_reaction(emoji) {
        return Err(ChatError::NoSuchReaction {
            asked: emoji.to_owned(),
            offered: reactions::REACTIONS.join(" "),
        });
    }
    let message = target(hub, room.name(), id).await?;
    if message.deleted {
        return Err(ChatError::MessageDeleted(id));
    }
    actor.check_message_rate()?;
    let had = message
        .reactions
        .iter()
        .find(|r| r.emoji == emoji)
        .is_some_and(|r| {
            let key = name_key(actor.name());
            r.usernames.iter().any(|n| name_key(n) == key)
        });
    let change = Change {
        target_id: id,
        kind: Kind::React.into(),
        emoji: emoji.to_owned(),
        on: !had,
    };
    room.post_change(hub.store(), by(actor), "", change)?
        .await?;
    Ok(!had)
}

/// Checks that message `id` is in `room` and returns what a reply to it shows.
pub async fn reply(hub: &RoomHub, room: &str, id: u64) -> Result<Reply, ChatError> {
    let original = target(hub, room, id).await?;
    Ok(Reply {
        to: id,
        quote: quote(&original),
    })
}

/// The line of `original` a reply shows: its author and first line, shortened.
pub fn quote(original: &MessageResponse) -> Quote {
    let first_line = original.text.lines().next().unwrap_or_default();
    Quote {
        username: original.username.clone(),
        text: first_line.chars().take(QUOTE_CHARS).collect(),
        deleted: original.deleted,
    }
}

fn by(actor: &Session) -> Sender<'_> {
    Sender {
        name: actor.name().into(),
        guest: actor.is_guest(),
    }
}
