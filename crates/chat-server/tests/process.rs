//! The `chat-server` binary itself: flags, and a clean exit on SIGTERM that ends open
//! streams with UNAVAILABLE (so clients reconnect) instead of cutting them.
mod common;

use std::{process::Stdio, time::Duration};

use chat_proto::{chat_service_client::ChatServiceClient, SubscribeRequest};
use common::within;
use tokio::process::Command;
use tonic::{transport::Channel, Code};

#[tokio::test]
async fn sigterm_ends_streams_cleanly_and_exits_zero() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .env("CHAT_ADDR", &addr) // the env-var form of --addr
        .args(["--static-dir", "/nonexistent"])
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let url = format!("http://{addr}");
    let channel = within(async {
        loop {
            match Channel::from_shared(url.clone()).unwrap().connect().await {
                Ok(channel) => break channel,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
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
