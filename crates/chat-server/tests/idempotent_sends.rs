//! Sends with a `client_msg_id` post once per (sender, id): a repeat, even after a
//! restart, or two at once, returns the original message and posts nothing new.
mod common;

use chat_proto::{HistoryRequest, MessageRequest, MessageResponse};
use common::{within, TestServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

fn send(text: &str, room: &str, client_msg_id: &str) -> MessageRequest {
    MessageRequest {
        username: String::new(),
        message: text.into(),
        room: room.into(),
        client_msg_id: client_msg_id.into(),
        ..Default::default()
    }
}

async fn texts(server: &TestServer, room: &str) -> Vec<String> {
    let page = server
        .client()
        .await
        .history(HistoryRequest {
            room: room.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    page.messages.into_iter().map(|m| m.message).collect()
}

#[tokio::test]
async fn a_repeated_send_returns_the_original_and_posts_nothing_new() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("ann").await;
    let first = ann.send_message(send("hello", "", "c-1")).await.unwrap();
    let again = ann.send_message(send("hello", "", "c-1")).await.unwrap();
    assert_eq!(again.into_inner(), first.into_inner());
    ann.send_message(send("second", "", "c-2")).await.unwrap();
    assert_eq!(
        texts(&server, "general").await,
        ["[ann]: hello", "[ann]: second"]
    );

    // Reused for something else, the id is refused rather than answered with a message
    // that is not what was asked for.
    let err = ann
        .send_message(send("other text", "", "c-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message()
            .contains("client_msg_id \"c-1\" was already used for another message (id 1"),
        "{}",
        err.message()
    );
    let err = ann
        .send_message(send("hello", "elsewhere", "c-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(texts(&server, "elsewhere").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_repeat_after_a_restart_returns_the_original() {
    let first = TestServer::start().await;
    let config = chat_server::Config {
        db: first.db.0.clone().into(),
        ..chat_server::Config::for_tests()
    };
    let mut legacy = first.client().await;
    let bare = |text: &str| MessageRequest {
        username: "oldtimer".into(),
        ..send(text, "", "retry-me")
    };
    let original = legacy
        .send_message(bare("once"))
        .await
        .unwrap()
        .into_inner();
    first.shutdown.trigger();
    let TestServer { task, db, .. } = first;
    within(task).await.unwrap().unwrap();

    let second = TestServer::start_with(config).await;
    let _db = db; // removed only when the second server is done with it
    let again = second
        .client()
        .await
        .send_message(bare("once"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, original);
    assert_eq!(texts(&second, "general").await, ["[oldtimer]: once"]);
}

#[tokio::test]
async fn identical_sends_at_once_make_one_message() {
    let server = TestServer::start().await;
    let (ann, _) = server.join("ann").await;
    let sends = (0..8).map(|_| {
        let mut ann = ann.clone();
        tokio::spawn(async move { ann.send_message(send("once", "", "same")).await })
    });
    let answers: Vec<MessageResponse> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|sent| sent.unwrap().unwrap().into_inner())
        .collect();
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(texts(&server, "general").await, ["[ann]: once"]);
}

#[tokio::test]
async fn different_senders_with_the_same_id_are_different_messages() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("ann").await;
    let (mut bob, _) = server.join("bob").await;
    let a = ann.send_message(send("hi", "", "1")).await.unwrap();
    let b = bob.send_message(send("hi", "", "1")).await.unwrap();
    assert_ne!(a.into_inner().id, b.into_inner().id);
    assert_eq!(texts(&server, "general").await, ["[ann]: hi", "[bob]: hi"]);
}

#[tokio::test]
async fn a_bad_client_msg_id_is_refused() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("ann").await;
    for (id, why) in [
        (
            "x".repeat(65),
            "client_msg_id is too long (65 characters); at most 64",
        ),
        ("tab\there".to_owned(), "printable ASCII"),
        ("é".to_owned(), "printable ASCII"),
    ] {
        let err = ann.send_message(send("hi", "", &id)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{id:?}");
        assert!(err.message().contains(why), "{}", err.message());
    }
    assert_eq!(texts(&server, "general").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_repeat_on_a_broadcast_stream_is_posted_once() {
    let server = TestServer::start().await;
    let (requests, outbound) = mpsc::channel(8);
    let bare = |text: &str, id: &str| MessageRequest {
        username: "streamer".into(),
        ..send(text, "", id)
    };
    requests.send(bare("", "")).await.unwrap();
    let mut responses = server
        .client()
        .await
        .broadcast(ReceiverStream::new(outbound))
        .await
        .unwrap()
        .into_inner();
    for (text, id) in [("one", "b-1"), ("one", "b-1"), ("two", "b-2")] {
        requests.send(bare(text, id)).await.unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let msg = within(responses.message()).await.unwrap().unwrap();
        seen.push(msg.message);
    }
    assert_eq!(seen, ["[streamer]: one", "[streamer]: two"]);
    assert_eq!(texts(&server, "general").await, seen);
}
