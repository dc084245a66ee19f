//! The wire contract, generated from `proto/chat.proto`. Shared by the server, the native
//! CLI and the wasm frontend, so all three speak exactly the same messages.

#![allow(clippy::all)]

tonic::include_proto!("grpcchat");

/// Encoded `FileDescriptorSet` of chat.proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/chat_descriptor.bin"));

/// Fully qualified service name, used for the grpc-web path prefix and health checks.
pub const SERVICE_NAME: &str = "grpcchat.ChatService";
