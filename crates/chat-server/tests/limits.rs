//! Per-session limits: each has its own status code and a message that says what to do,
//! and one client hitting a limit never disturbs another.
mod common;

use chat_proto::MessageRequest;
use common::{subscribe_req, welcome, TestServer};
use tonic::Code;

fn post(text: &str) -> MessageRequest {
    MessageRequest {
        username: String::new(),
        message: text.into(),
        room: String::new(),
        ..Default::default()
    }
}

#[tokio::test]
async fn messages_per_second_are_limited_per_sender() {
    let config = chat_server::Config {
        max_messages_per_sec: 1,
        message_burst: 3,
        ..chat_server::Config::for_tests()
    };
    let server = TestServer::start_with(config).await;
    let (mut ann, _) = server.join("ann").await;
    let (mut bob, _) = server.join("bob").await;
    for i in 0..3 {
        ann.send_message(post(&format!("burst {i}"))).await.unwrap();
    }
    let err = ann.send_message(post("one too many")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("too fast; try again in"),
        "{}",
        err.message()
    );
    // bob has his own allowance.
    bob.send_message(post("unaffected")).await.unwrap();
    // Token-less senders are limited by their address (see address_budgets.rs).
    let mut legacy = server.client().await;
    let bare = |text: &str| MessageRequest {
        username: "old-client".into(),
        message: text.into(),
        room: String::new(),
        ..Default::default()
    };
    for _ in 0..3 {
        legacy.send_message(bare("hi")).await.unwrap();
    }
    let err = legacy.send_message(bare("hi")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn open_streams_per_session_are_limited() {
    let config = chat_server::Config {
        max_streams_per_session: 2,
        ..chat_server::Config::for_tests()
    };
    let server = TestServer::start_with(config).await;
    let (mut ann, _) = server.join("ann").await;
    let mut first = ann
        .subscribe(subscribe_req("a", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut first).await;
    let mut second = ann
        .subscribe(subscribe_req("b", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut second).await;
    let err = ann.subscribe(subscribe_req("c", 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("2 streams open; close one first"),
        "{}",
        err.message()
    );
    // Closing one frees its slot (the server notices the stream end).
    drop(first);
    let mut third = None;
    for _ in 0..50 {
        match ann.subscribe(subscribe_req("c", 0)).await {
            Ok(stream) => {
                third = Some(stream.into_inner());
                break;
            }
            Err(err) => assert_eq!(err.code(), Code::ResourceExhausted),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    welcome(third.as_mut().expect("a slot frees up")).await;
    // Someone else is not affected at all.
    let (mut bob, _) = server.join("bob").await;
    let mut bobs = bob
        .subscribe(subscribe_req("a", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut bobs).await;
}
