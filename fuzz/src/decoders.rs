//! The request decoders target: the fuzzer's bytes decoded as every request message
//! (prost, as tonic decodes a frame), and whatever decodes run through the server's
//! validation (names, rooms, text, passwords). Decoding and validating must never panic; a decoded message must encode
//! back to itself; an accepted value must obey the rule it passed; and a refusal must
//! become a gRPC error status that tonic can put in headers.
use std::fmt::Debug;

use chat_proto::{
    names, ChangePasswordRequest, HistoryRequest, JoinRequest, LeaveRequest, ListRoomsRequest,
    MessageRequest, RegisterRequest, SignInRequest, SignOutEverywhereRequest, SubscribeRequest,
    TypingRequest,
};
use chat_server::{
    error::ChatError,
    passwords::{self, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS},
    validate::{self, MAX_NAME_CHARS, MAX_ROOM_CHARS, MAX_TEXT_BYTES},
};
use prost::Message;
use tonic::{Code, Status};

pub fn check(data: &[u8]) {
    if let Some(m) = decoded::<MessageRequest>(data) {
        room(&m.room);
        text(&m.message);
        username(&m.username);
    }
    if let Some(m) = decoded::<SubscribeRequest>(data) {
        room(&m.room);
    }
    if let Some(m) = decoded::<HistoryRequest>(data) {
        room(&m.room);
    }
    if let Some(m) = decoded::<TypingRequest>(data) {
        room(&m.room);
    }
    if let Some(m) = decoded::<JoinRequest>(data) {
        username(&m.username);
    }
    if let Some(m) = decoded::<RegisterRequest>(data) {
        username(&m.username);
        new_password(&m.password);
    }
    if let Some(m) = decoded::<SignInRequest>(data) {
        username(&m.username);
        tried_password(&m.password);
    }
    if let Some(m) = decoded::<ChangePasswordRequest>(data) {
        tried_password(&m.old_password);
        new_password(&m.new_password);
    }
    decoded::<ListRoomsRequest>(data);
    decoded::<LeaveRequest>(data);
    decoded::<SignOutEverywhereRequest>(data);
}

fn decoded<M: Message + Default + PartialEq + Debug>(data: &[u8]) -> Option<M> {
    let msg = M::decode(data).ok()?;
    let again = M::decode(msg.encode_to_vec().as_slice()).expect("a re-encoded message decodes");
    assert_eq!(again, msg, "a message must survive encoding and decoding");
    Some(msg)
}

fn room(raw: &str) {
    match validate::room(raw) {
        Ok(room) => assert!(
            !room.is_empty()
                && room.chars().count() <= MAX_ROOM_CHARS
                && room
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "room {raw:?} was accepted as {room:?}"
        ),
        Err(err) => refused(err),
    }
}

fn username(raw: &str) {
    match validate::username(raw) {
        Ok(name) => {
            assert!(
                (1..=MAX_NAME_CHARS).contains(&name.chars().count()),
                "username {raw:?} was accepted as {name:?}"
            );
            // The display form the server keeps passes the rule again, unchanged, and
            // has a key (what decides "the same person").
            assert_eq!(
                validate::username(&name).as_deref(),
                Ok(name.as_str()),
                "the accepted form of {raw:?} is not accepted as itself"
            );
            assert!(!names::key(&name).is_empty());
        }
        Err(err) => refused(err),
    }
}

fn text(raw: &str) {
    match validate::text(raw) {
        Ok(text) => assert!(
            !text.trim().is_empty()
                && text.len() <= MAX_TEXT_BYTES
                && text.trim_end() == text
                && !text
                    .chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "text {raw:?} was accepted as {text:?}"
        ),
        Err(err) => refused(err),
    }
}

fn tried_password(raw: &str) {
    match passwords::check_length(raw) {
        Ok(pw) => assert!(
            !pw.is_empty() && pw.len() <= MAX_PASSWORD_BYTES,
            "password of {} bytes was accepted to try",
            raw.len()
        ),
        Err(err) => refused(err),
    }
}

fn new_password(raw: &str) {
    match passwords::check_new(raw) {
        Ok(pw) => assert!(
            pw.chars().count() >= MIN_PASSWORD_CHARS && pw.len() <= MAX_PASSWORD_BYTES,
            "password of {} bytes was accepted as new",
            raw.len()
        ),
        Err(err) => refused(err),
    }
}

/// A refusal reaches the client as an error status with a message, in valid headers.
fn refused(err: ChatError) {
    let status = Status::from(err);
    assert_ne!(status.code(), Code::Ok);
    assert!(!status.message().is_empty());
    let http = status.into_http::<()>();
    assert!(
        http.headers().contains_key("grpc-status"),
        "the refusal has no grpc-status header"
    );
}
