//! Compiles proto/chat.proto with protox (pure Rust: these machines have no protoc) and
//! generates prost types plus the tonic client. The file descriptor set is kept too, for
//! gRPC server reflection.
//!
//! With the `server` feature it also generates the server trait, a second time over the
//! same descriptors, with every message type taken from `crate::server_wire`. That module
//! re-exports the ordinary types except the two the server fans out (`ChatEvent`,
//! `MessageResponse`), which it swaps for pre-encoded bytes: a message is encoded once and
//! the same bytes go to every subscriber.
use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let proto = proto_dir.join("chat.proto");
    println!("cargo:rerun-if-changed={}", proto.display());

    let fds = protox::compile([&proto], [&proto_dir])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("chat_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;

    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .build_transport(false)
        .compile_fds(fds.clone())?;

    if env::var_os("CARGO_FEATURE_SERVER").is_some() {
        let server_out = out.join("server");
        std::fs::create_dir_all(&server_out)?;
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(false)
            .build_transport(false)
            .extern_path(".grpcchat", "crate::server_wire")
            .codec_path("crate::codec::ChatCodec")
            .out_dir(server_out)
            .compile_fds(fds)?;
    }
    Ok(())
}
