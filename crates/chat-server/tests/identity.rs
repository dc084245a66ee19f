//! Identity: Join trades a name for a token, the server takes the sender's name from the
//! token, names held by a session are nobody else's, sessions end on Leave or idle.
mod common;

use std::time::Duration;

use chat_proto::{HistoryRequest, JoinRequest, LeaveRequest, MessageRequest};
use common::{next_message, req, subscribe_req, welcome, within, TestServer};
use tonic::Code;

fn post(text: &str, username: &str) -> MessageRequest {
    MessageRequest {
        username: username.into(),
        message: text.into(),
        room: String::new(),
        ..Default::default()
    }
}

#[tokio::test]
async fn join_gives_a_token_and_the_name_comes_from_it() {
    let server = TestServer::start().await;
    let (mut ann, token) = server.join("ann").await;
    let (_bob, other) = server.join("bob").await;
    assert!(token.len() >= 22, "at least 128 bits of text: {token}");
    assert_ne!(token, other);

    let sent = ann.send_message(post("hi", "")).await.unwrap().into_inner();
    assert_eq!(
        (sent.username.as_str(), sent.message.as_str()),
        ("ann", "[ann]: hi")
    );
    // The same name in the body is fine; another one is impersonation.
    ann.send_message(post("again", "ann")).await.unwrap();
    let err = ann.send_message(post("boo", "bob")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("signed in as \"ann\""),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_name_held_by_a_session_is_nobody_elses() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("ann").await;
    let mut anonymous = server.client().await;

    let err = anonymous
        .join(JoinRequest {
            username: "ann".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(
        err.message().contains("\"ann\" is in use"),
        "{}",
        err.message()
    );
    // Nor by changing case.
    let err = anonymous
        .join(JoinRequest {
            username: "ANN".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = anonymous
        .send_message(req("Ann", "", "it's me, really"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // An original-protocol client with a bare name cannot speak as her either...
    let err = anonymous
        .send_message(req("ann", "", "it's me"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("signed in"), "{}", err.message());
    // ...but may use any name no session holds.
    anonymous
        .send_message(req("legacy", "", "hello"))
        .await
        .unwrap();

    // Leave frees the name for anyone.
    ann.leave(LeaveRequest {}).await.unwrap();
    anonymous
        .send_message(req("ann", "", "now I can"))
        .await
        .unwrap();
    let err = ann.send_message(post("still me?", "")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "the old token is dead");
    server.join("ann").await;

    let history = anonymous
        .history(HistoryRequest::default())
        .await
        .unwrap()
        .into_inner();
    let texts: Vec<_> = history
        .messages
        .iter()
        .map(|m| m.message.as_str())
        .collect();
    assert_eq!(texts, ["[legacy]: hello", "[ann]: now I can"]);
}

#[tokio::test]
async fn unknown_or_malformed_tokens_are_refused() {
    let server = TestServer::start().await;
    let mut forged = server
        .with_token("not-a-real-token-aaaaaaaaaaaaaaaaaaaa")
        .await;
    let err = forged.send_message(post("hi", "")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("join again"), "{}", err.message());

    let mut client = server.client().await;
    let mut request = tonic::Request::new(post("hi", "x"));
    request
        .metadata_mut()
        .insert("authorization", "Basic abc".parse().unwrap());
    let err = client.send_message(request).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("Bearer"), "{}", err.message());

    let err = client.leave(LeaveRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("call Join"), "{}", err.message());
}

#[tokio::test]
async fn an_idle_session_expires_but_an_open_stream_keeps_it() {
    let config = chat_server::Config {
        session_idle_secs: 1,
        ..chat_server::Config::for_tests()
    };
    let server = TestServer::start_with(config).await;
    let (mut ann, _) = server.join("ann").await;
    let mut stream = ann
        .subscribe(subscribe_req("", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut stream).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut other = server.client().await;
    let err = other
        .join(JoinRequest {
            username: "ann".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "the open stream keeps ann");

    drop(stream);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (mut new_ann, _) = server.join("ann").await;
    new_ann.send_message(post("back", "")).await.unwrap();
    let err = ann.send_message(post("old", "")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn broadcast_with_a_token_speaks_as_the_session() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("ann").await;
    let mut watcher = server.client().await;
    let mut live = watcher
        .subscribe(subscribe_req("", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut live).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(post("", "")).await.unwrap();
    tx.send(post("via broadcast", "")).await.unwrap();
    let mut echoes = ann
        .broadcast(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let echo = within(echoes.message()).await.unwrap().unwrap();
    assert_eq!(echo.message, "[ann]: via broadcast");
    assert_eq!(next_message(&mut live).await.username, "ann");
}
