//! Bad input gets INVALID_ARGUMENT (or the right code) with a message a person can act on,
//! and never disturbs the server or anyone else's stream.
mod common;

use chat_proto::{chat_event::Event, HistoryRequest, SubscribeRequest};
use common::{req, within, TestServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

#[tokio::test]
async fn bad_messages_names_and_rooms_are_refused_clearly() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let long = "x".repeat(4097);
    let cases: &[(&str, &str, &str, &str)] = &[
        ("alice", "", "", "message is empty"),
        ("alice", "", "  \n\t ", "message is empty"),
        (
            "alice",
            "",
            &long,
            "message is too long (4097 bytes); at most 4096 bytes are allowed",
        ),
        ("alice", "", "bell\u{7}", "control characters"),
        ("", "", "hi", "username is required"),
        ("a b", "", "hi", "may only contain letters, digits"),
        (
            &"n".repeat(40),
            "",
            "hi",
            "username is too long (40 characters)",
        ),
        (
            "alice",
            "no spaces",
            "hi",
            "room name \"no spaces\" may only contain",
        ),
        (
            "alice",
            &"r".repeat(33),
            "hi",
            "room name is too long (33 characters)",
        ),
    ];
    for (name, room, text, expected) in cases {
        let status = client
            .send_message(req(name, room, text))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{name:?}/{room:?}/{text:?}"
        );
        assert!(
            status.message().contains(expected),
            "{:?} should contain {expected:?}",
            status.message()
        );
    }
    let status = client
        .subscribe(SubscribeRequest {
            room: "bad room".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client
        .history(HistoryRequest {
            room: "bad/room".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // Nothing was stored, and the server still works.
    let ok = client
        .send_message(req("alice", "", "still here"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.id, 1);
}

#[tokio::test]
async fn an_oversized_frame_is_refused_and_other_streams_keep_working() {
    let server = TestServer::start().await;
    let mut watcher = server.client().await;
    let mut live = watcher
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        within(live.message()).await.unwrap().unwrap().event,
        Some(Event::Welcome(_))
    ));

    let mut client = server.client().await;
    let huge = "y".repeat(1024 * 1024);
    let status = client
        .send_message(req("mallory", "", &huge))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("message length too large"),
        "{}",
        status.message()
    );

    // Same connection, then the watcher: all still fine.
    let ok = client
        .send_message(req("alice", "", "after the flood"))
        .await
        .unwrap()
        .into_inner();
    let Some(Event::Message(got)) = within(live.message()).await.unwrap().unwrap().event else {
        panic!()
    };
    assert_eq!((got.id, got.text.as_str()), (ok.id, "after the flood"));
}

#[tokio::test]
async fn a_bad_broadcast_request_ends_only_that_stream() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let (tx, rx) = mpsc::channel(8);
    tx.send(req("gopher", "", "")).await.unwrap();
    let mut stream = client
        .broadcast(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(req("gopher", "", "   ")).await.unwrap();
    let status = within(stream.message()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "message is empty");

    // A name change mid-stream is refused too: the stream speaks for one person.
    let (tx, rx) = mpsc::channel(8);
    tx.send(req("gopher", "", "")).await.unwrap();
    tx.send(req("someone-else", "", "hi")).await.unwrap();
    let mut stream = client
        .broadcast(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let status = within(stream.message()).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("keeps the username"),
        "{}",
        status.message()
    );

    // A bad first request (no name) is refused before joining.
    let (tx, rx) = mpsc::channel(8);
    tx.send(req("", "", "")).await.unwrap();
    let mut stream = client
        .broadcast(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        within(stream.message()).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    assert_eq!(
        client
            .send_message(req("gopher", "", "fine"))
            .await
            .unwrap()
            .into_inner()
            .id,
        1
    );
}

/// Found by fuzzing (fuzz/, target grpc_web_framing): native gRPC over HTTP/1.1 got a bare
/// HTTP 400 from tonic-web, which clients show as an unexplained INTERNAL error.
#[tokio::test]
async fn native_grpc_over_http1_gets_a_grpc_status_that_says_why() {
    let server = TestServer::start().await;
    let empty_frame = bytes::Bytes::from_static(&[0, 0, 0, 0, 0]);
    let request = http::Request::post(format!(
        "http://{}/grpcchat.ChatService/ListRooms",
        server.addr
    ))
    .header("content-type", "application/grpc")
    .body(http_body_util::Full::new(empty_frame))
    .unwrap();
    let res = within(server.web().send(request)).await;
    let status = tonic::Status::from_header_map(res.headers()).expect("a gRPC status");
    assert_eq!(status.code(), Code::Unimplemented);
    assert_eq!(
        status.message(),
        "native gRPC (content type \"application/grpc\") needs HTTP/2; over HTTP/1.1 send \
         grpc-web (application/grpc-web)"
    );
}
