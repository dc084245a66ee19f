//! The `chat-server` binary itself: flags, and a clean exit on SIGTERM that ends open
//! streams with UNAVAILABLE (so clients reconnect) instead of cutting them.
mod common;

use std::process::Stdio;

use chat_proto::{chat_service_client::ChatServiceClient, SubscribeRequest};
use common::{connect_when_ready, free_addr, within};
use tokio::process::Command;
use tonic::Code;

#[tokio::test]
async fn sigterm_ends_streams_cleanly_and_exits_zero() {
    let addr = free_addr();
    let db = tempfile::tempdir().unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .env("CHAT_ADDR", &addr) // the env-var form of --addr
        .args(["--static-dir", "/nonexistent"])
        .arg("--db")
        .arg(db.path().join("chat.db"))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let channel = connect_when_ready(&addr, &mut server, None).await;
    let mut client = ChatServiceClient::new(channel);
    let mut stream = client
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    within(stream.message()).await.unwrap().expect("welcome");

    let pid = server.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap()
        .success());
    let status = within(stream.message()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let exit = within(server.wait()).await.unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn help_lists_every_flag_with_its_env_var() {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .arg("--help")
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env) in [
        ("--addr", "CHAT_ADDR"),
        ("--static-dir", "CHAT_STATIC_DIR"),
        ("--allowed-origin", "CHAT_ALLOWED_ORIGINS"),
    ] {
        assert!(
            help.contains(flag) && help.contains(env),
            "{flag}/{env} missing from:\n{help}"
        );
    }
}
