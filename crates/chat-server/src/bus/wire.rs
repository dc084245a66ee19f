//! What servers tell each other on NATS, as protobuf (prost derives, no .proto: these
//! never leave the servers, and the clients' contract in proto/chat.proto stays theirs).
//! Each kind has a subject of its own under the cluster's prefix, so a receiver knows what
//! to decode from the subject alone.
use chat_proto::{MessageResponse, TypingEvent};

/// The messages one commit produced, in commit order (several rooms possible).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CommittedBatch {
    /// The server that committed them (see `Bus::server_id`).
    #[prost(uint64, tag = "1")]
    pub server: u64,
    #[prost(message, repeated, tag = "2")]
    pub messages: Vec<MessageResponse>,
}

/// A server's state, sent every heartbeat: it is alive, each room's newest id it knows
/// (so others notice a tail they missed), and who is connected to it in each room.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Heartbeat {
    #[prost(uint64, tag = "1")]
    pub server: u64,
    #[prost(message, repeated, tag = "2")]
    pub rooms: Vec<RoomState>,
    /// The server is shutting down: its members leave now, not when it goes quiet.
    #[prost(bool, tag = "3")]
    pub leaving: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RoomState {
    #[prost(string, tag = "1")]
    pub room: String,
    #[prost(uint64, tag = "2")]
    pub last_id: u64,
    /// Names with a stream open on the sending server, sorted.
    #[prost(string, repeated, tag = "3")]
    pub members: Vec<String>,
}

/// Someone is typing in a room of another server.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Typing {
    #[prost(uint64, tag = "1")]
    pub server: u64,
    #[prost(string, tag = "2")]
    pub room: String,
    #[prost(message, optional, tag = "3")]
    pub event: Option<TypingEvent>,
}

/// Sessions ended on one server (Leave, SignOutEverywhere, ChangePassword): every other
/// server ends the ones it holds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Revoke {
    #[prost(uint64, tag = "1")]
    pub server: u64,
    /// Every session of this name ends, except `keep` (a token hash; empty for none).
    #[prost(string, tag = "2")]
    pub account: String,
    #[prost(bytes = "vec", tag = "3")]
    pub keep: Vec<u8>,
    /// And these sessions, by token hash.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub tokens: Vec<Vec<u8>>,
}
