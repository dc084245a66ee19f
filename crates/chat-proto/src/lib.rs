//! The wire contract, generated from `proto/chat.proto`. Shared by the server, the native
//! CLI and the wasm frontend, so all three speak exactly the same messages.

#![allow(clippy::all)]

tonic::include_proto!("grpcchat");

pub mod names;
pub mod reactions;

#[cfg(feature = "server")]
pub mod codec;
#[cfg(feature = "server")]
mod encoded;
#[cfg(feature = "server")]
pub use encoded::{encode_message, Encoded};

/// The server side of `ChatService`. Same contract as the client, but the fanned-out
/// responses are [`Encoded`] bytes instead of structs (see build.rs).
#[cfg(feature = "server")]
pub mod server {
    include!(concat!(env!("OUT_DIR"), "/server/grpcchat.rs"));
}

/// The message types the generated server trait uses: everything as generated, except the
/// pre-encoded fan-out types (an explicit `pub use` shadows the glob).
#[cfg(feature = "server")]
pub mod server_wire {
    pub use super::*;
    pub type ChatEvent = super::Encoded<super::ChatEvent>;
    pub type MessageResponse = super::Encoded<super::MessageResponse>;
}

/// Encoded `FileDescriptorSet` of chat.proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/chat_descriptor.bin"));

/// Fully qualified service name, used for the grpc-web path prefix and health checks.
pub const SERVICE_NAME: &str = "grpcchat.ChatService";
