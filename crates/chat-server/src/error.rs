//! Domain errors, and the one place where each becomes a gRPC status with a message a
//! person can act on.
use tonic::Status;

use crate::validate::{MAX_NAME_CHARS, MAX_ROOM_CHARS, MAX_TEXT_BYTES};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChatError {
    #[error("username is required")]
    NameMissing,
    #[error("username is too long ({0} characters); at most {MAX_NAME_CHARS} are allowed")]
    NameTooLong(usize),
    #[error("username {0:?} may only contain letters, digits, '_', '-' and '.'")]
    NameInvalid(String),
    #[error("room name is too long ({0} characters); at most {MAX_ROOM_CHARS} are allowed")]
    RoomTooLong(usize),
    #[error("room name {0:?} may only contain letters a-z, A-Z, digits, '_' and '-'")]
    RoomInvalid(String),
    #[error("message is empty")]
    TextEmpty,
    #[error("message is too long ({0} bytes); at most {MAX_TEXT_BYTES} bytes are allowed")]
    TextTooLong(usize),
    #[error("message contains control characters; only text, newlines and tabs are allowed")]
    TextControlChars,
    #[error("a Broadcast stream stays in the room it joined ({joined:?}); open another stream for room {asked:?}")]
    BroadcastRoomChanged { joined: String, asked: String },
    #[error("a Broadcast stream keeps the username it joined with ({joined:?}), got {asked:?}")]
    BroadcastNameChanged { joined: String, asked: String },
    #[error("you fell more than {0} messages behind and were disconnected; subscribe again with after_id set to the last id you received")]
    SubscriberLagged(usize),
    #[error("the server is shutting down; reconnect in a moment")]
    ShuttingDown,
}

impl From<ChatError> for Status {
    fn from(err: ChatError) -> Status {
        use ChatError::*;
        let msg = err.to_string();
        match err {
            NameMissing | NameTooLong(_) | NameInvalid(_) | RoomTooLong(_) | RoomInvalid(_)
            | TextEmpty | TextTooLong(_) | TextControlChars => Status::invalid_argument(msg),
            BroadcastRoomChanged { .. } | BroadcastNameChanged { .. } => {
                Status::failed_precondition(msg)
            }
            // ABORTED: the operation was cut short and the client should retry it (from
            // its last id), which is exactly what resuming means.
            SubscriberLagged(_) => Status::aborted(msg),
            ShuttingDown => Status::unavailable(msg),
        }
    }
}
