//! Domain errors, and the one place where each becomes a gRPC status with a message a
//! person can act on.
use chat_proto::names::NameError;
use tonic::Status;

use crate::{
    guessing::Guesser,
    limits::{Action, RetryAfter, RETRY_AFTER_METADATA},
    metrics_endpoint::{code_name, CUT_OFF, REFUSALS},
    passwords::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS},
    search::{MAX_QUERY_CHARS, MAX_QUERY_WORDS},
    store::StoreError,
    validate::{MAX_CLIENT_MSG_ID_CHARS, MAX_ROOM_CHARS, MAX_TEXT_BYTES},
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChatError {
    /// Not a name by the shared rule (`chat_proto::names`), which words the message.
    #[error(transparent)]
    Name(#[from] NameError),
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
    #[error(
        "client_msg_id is too long ({0} characters); at most {MAX_CLIENT_MSG_ID_CHARS} are allowed"
    )]
    ClientMsgIdTooLong(usize),
    #[error("client_msg_id may only contain printable ASCII characters (space to '~')")]
    ClientMsgIdInvalid,
    #[error("client_msg_id {client_msg_id:?} was already used for another message (id {id} in room {room:?}); use a new id for a new message")]
    ClientMsgIdReused {
        client_msg_id: String,
        room: String,
        id: u64,
    },
    #[error("a Broadcast stream stays in the room it joined ({joined:?}); open another stream for room {asked:?}")]
    BroadcastRoomChanged { joined: String, asked: String },
    #[error("a Broadcast stream keeps the username it joined with ({joined:?}), got {asked:?}")]
    BroadcastNameChanged { joined: String, asked: String },
    #[error("you fell too far behind (the room keeps at most {queue_len} events, fewer when they are large) and were disconnected; subscribe again with after_id = {last_id} (the last id you received) to get the rest")]
    SubscriberLagged { queue_len: usize, last_id: u64 },
    #[error("there are already {0} rooms, the most this server allows; use an existing room")]
    TooManyRooms(usize),
    #[error("there are already {0} conversations, the most this server allows; try again later")]
    TooManyConversations(usize),
    /// Also every conversation the caller may not read (see `room_access`): the words
    /// depend on the name asked only.
    #[error("there is no room named {0:?}{hint}", hint = direct_hint(.0))]
    NoSuchRoom(String),
    #[error(
        "{0} needs a session: call Join and send its token as `authorization: Bearer <token>`"
    )]
    SignInRequired(&'static str),
    #[error("you are signed in as {signed_in:?}; you cannot send as {asked:?}")]
    NameMismatch { signed_in: String, asked: String },
    #[error(
        "could not save or read messages ({0}); a message you were sending was not sent, try again"
    )]
    Store(StoreError),
    /// The database (PostgreSQL) is down or out of reach; the error says why, for logs.
    #[error("the message database cannot be reached right now; nothing was saved, try again")]
    StoreUnreachable(StoreError),
    #[error("the server is busy, try again in {0}")]
    Busy(RetryAfter),
    #[error("the server is shutting down; reconnect in a moment")]
    ShuttingDown,
    #[error("the name {0:?} is in use by someone signed in; pick another")]
    NameTaken(String),
    #[error("{0:?} is signed in; send with that session's token (authorization: Bearer ...)")]
    NameHeld(String),
    #[error("your session has expired or is unknown; join again")]
    Unauthenticated,
    #[error(
        "your session was ended (signed out, or the account's password changed); sign in again"
    )]
    SessionEnded,
    #[error("the authorization metadata must be \"Bearer <token>\", with the token Join returned")]
    AuthorizationMalformed,
    #[error("you already have {limit} streams open; close one first")]
    TooManyStreams { limit: usize },
    #[error("you are sending {what} too fast; try again in {retry_after}")]
    RateLimited {
        what: Action,
        retry_after: RetryAfter,
    },
    #[error("too many joins and sign-ins from your network address; try again in {0}")]
    TooManySignIns(RetryAfter),
    #[error("messages sent without signing in share one allowance per network address, and yours is used up; try again in {0}, or Join to get your own")]
    AnonymousPostsTooFast(RetryAfter),
    #[error("there is no room named {0:?}; rooms are created by people who are signed in (call Join first), or pick an existing room")]
    RoomNeedsSignIn(String),
    #[error("you have created as many rooms as allowed for now; try again in {0}, or use an existing room")]
    TooManyNewRooms(RetryAfter),
    #[error("the name {0:?} is registered; sign in with its password, or pick another name")]
    NameRegistered(String),
    #[error("{0:?} is a registered name; sign in to post as it")]
    NameRegisteredBare(String),
    #[error("password is required")]
    PasswordMissing,
    #[error("password is too short ({0} characters); use at least {MIN_PASSWORD_CHARS}")]
    PasswordTooShort(usize),
    #[error("password is too long ({0} bytes); at most {MAX_PASSWORD_BYTES} bytes are allowed")]
    PasswordTooLong(usize),
    #[error("wrong name or password")]
    WrongPassword,
    #[error("your current password is wrong; the password was not changed")]
    WrongCurrentPassword,
    #[error("too many password attempts {who}; try again in {retry_after}")]
    Guessing {
        who: Guesser,
        retry_after: RetryAfter,
    },
    #[error("{0} is for accounts, and you are signed in as a guest; register the name first")]
    GuestNotAccount(&'static str),
    #[error(
        "the server already has {limit} sessions, the most it allows; try again in {retry_after}"
    )]
    TooManySessions {
        limit: usize,
        retry_after: RetryAfter,
    },
    #[error("the server already has {limit} streams open, the most it allows; try again in {retry_after}")]
    ServerStreamsFull {
        limit: usize,
        retry_after: RetryAfter,
    },
    #[error("your network address already has {limit} streams open, the most one address may hold; close one, or try again in {retry_after}")]
    AddressStreamsFull {
        limit: usize,
        retry_after: RetryAfter,
    },
    #[error("the server is busy checking other passwords; try again in {retry_after}")]
    PasswordsBusy { retry_after: RetryAfter },
    #[error("could not read or save accounts and sessions ({0}); try again")]
    AccountStore(StoreError),
    #[error("native gRPC (content type {0:?}) needs HTTP/2; over HTTP/1.1 send grpc-web (application/grpc-web)")]
    GrpcNeedsHttp2(String),
    #[error("there is no message {id} in room {room:?}")]
    NoSuchMessage { room: String, id: u64 },
    #[error("message {id} is {author:?}'s; only its author may edit or delete it")]
    NotYourMessage { id: u64, author: String },
    #[error("message {0} was posted by a guest, and a guest name may later be someone else's, so it cannot be edited or deleted")]
    GuestMessage(u64),
    #[error("message {0} was deleted; it cannot be edited or reacted to")]
    MessageDeleted(u64),
    #[error("{asked:?} is not a reaction this server offers; pick one of {offered}")]
    NoSuchReaction { asked: String, offered: String },
    #[error("search for at least one word (letters or digits)")]
    SearchEmpty,
    #[error("search query is too long ({0} characters); at most {MAX_QUERY_CHARS} are allowed")]
    SearchTooLong(usize),
    #[error("search query has too many words ({0}); at most {MAX_QUERY_WORDS} are allowed")]
    SearchTooManyWords(usize),
}

/// What `@NAME` means, for whoever asked for one they cannot have.
fn direct_hint(asked: &str) -> &'static str {
    match crate::direct::is_direct(asked) {
        true => "; @NAME is your conversation with the account NAME, and only registered accounts (signed in) have conversations",
        false => "",
    }
}

impl From<StoreError> for ChatError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Busy(wait) => ChatError::Busy(RetryAfter(wait)),
            err @ StoreError::Unreachable(_) => ChatError::StoreUnreachable(err),
            err => ChatError::Store(err),
        }
    }
}

/// A refusal that waiting cures: the wait goes in metadata too, so a program can pause
/// exactly that long.
fn with_retry_after(mut status: Status, retry_after: RetryAfter) -> Status {
    status
        .metadata_mut()
        .insert(RETRY_AFTER_METADATA, retry_after.as_millis_ceil().into());
    status
}

/// Every refusal passes here, so this is where they are counted (`chat_refusals_total`).
impl From<ChatError> for Status {
    fn from(err: ChatError) -> Status {
        let status = to_status(err);
        metrics::counter!(REFUSALS, "code" => code_name(status.code())).increment(1);
        status
    }
}

fn to_status(err: ChatError) -> Status {
    use ChatError::*;
    let msg = err.to_string();
    match err {
        Name(_)
        | RoomTooLong(_)
        | RoomInvalid(_)
        | TextEmpty
        | TextTooLong(_)
        | TextControlChars
        | ClientMsgIdTooLong(_)
        | ClientMsgIdInvalid => Status::invalid_argument(msg),
        // The id is fine; what it was used for before makes this request wrong.
        BroadcastRoomChanged { .. } | BroadcastNameChanged { .. } | ClientMsgIdReused { .. } => {
            Status::failed_precondition(msg)
        }
        // ABORTED: the operation was cut short and the client should retry it (from
        // its last id), which is exactly what resuming means.
        SubscriberLagged { .. } => {
            metrics::counter!(CUT_OFF, "reason" => "lagged").increment(1);
            Status::aborted(msg)
        }
        TooManyRooms(_) | TooManyConversations(_) => Status::resource_exhausted(msg),
        NoSuchRoom(_) => Status::not_found(msg),
        SignInRequired(_) => Status::unauthenticated(msg),
        NameMismatch { .. } => Status::permission_denied(msg),
        // The disk or the store's writer failed, or is closing: nothing was saved,
        // and trying again later is exactly right.
        Store(_) => Status::unavailable(msg),
        // Nothing was saved, and the same request succeeds once the database is back.
        StoreUnreachable(_) => Status::unavailable(msg),
        ShuttingDown => Status::unavailable(msg),
        NameTaken(_) => Status::already_exists(msg),
        // The name exists and is fine; this caller is just not the one holding it.
        NameHeld(_) => Status::permission_denied(msg),
        Unauthenticated | AuthorizationMalformed | SessionEnded => Status::unauthenticated(msg),
        TooManyStreams { .. } => Status::resource_exhausted(msg),
        RateLimited { retry_after, .. }
        | TooManySignIns(retry_after)
        | AnonymousPostsTooFast(retry_after)
        | TooManyNewRooms(retry_after)
        | Guessing { retry_after, .. }
        | TooManySessions { retry_after, .. }
        | ServerStreamsFull { retry_after, .. }
        | AddressStreamsFull { retry_after, .. } => {
            with_retry_after(Status::resource_exhausted(msg), retry_after)
        }
        // Nothing was queued; the same request shortly after is exactly right.
        Busy(retry_after) => with_retry_after(Status::unavailable(msg), retry_after),
        // The room is missing, not the caller's rights: it could exist, and a
        // signed-in caller would have created it.
        RoomNeedsSignIn(_) => Status::not_found(msg),
        // The name exists and is not this caller's: a guest cannot have it.
        NameRegistered(_) => Status::already_exists(msg),
        NameRegisteredBare(_) => Status::permission_denied(msg),
        PasswordMissing | PasswordTooShort(_) | PasswordTooLong(_) => Status::invalid_argument(msg),
        WrongPassword => Status::unauthenticated(msg),
        // The caller is signed in; UNAUTHENTICATED would tell a client its session
        // is gone.
        WrongCurrentPassword => Status::permission_denied(msg),
        GuestNotAccount(_) => Status::failed_precondition(msg),
        // The server is overloaded for a moment, nothing is wrong with the request.
        PasswordsBusy { retry_after } => with_retry_after(Status::unavailable(msg), retry_after),
        AccountStore(_) => Status::unavailable(msg),
        // This server does not speak gRPC over HTTP/1.1, only grpc-web there.
        GrpcNeedsHttp2(_) => Status::unimplemented(msg),
        NoSuchMessage { .. } => Status::not_found(msg),
        // The caller is known; the message is just not theirs to change.
        NotYourMessage { .. } | GuestMessage(_) => Status::permission_denied(msg),
        // The message exists, but its state rules the change out.
        MessageDeleted(_) => Status::failed_precondition(msg),
        NoSuchReaction { .. } => Status::invalid_argument(msg),
        SearchEmpty | SearchTooLong(_) | SearchTooManyWords(_) => Status::invalid_argument(msg),
    }
}
