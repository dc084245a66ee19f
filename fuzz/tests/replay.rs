//! The committed corpus (fuzz/corpus/<target>/), replayed through each target's check on
//! stable Rust, without cargo-fuzz: `cargo test --manifest-path fuzz/Cargo.toml
//! --no-default-features`.
use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        check(&std::fs::read(&path).unwrap());
        inputs += 1;
    }
    assert!(inputs > 0, "{} holds no inputs", dir.display());
}

#[test]
fn grpc_web_framing_corpus() {
    replay("grpc_web_framing", chat_fuzz::framing::check);
}

#[test]
fn request_decoders_corpus() {
    replay("request_decoders", chat_fuzz::decoders::check);
}
