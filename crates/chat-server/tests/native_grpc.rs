//! The API over native gRPC (HTTP/2), as chat-cli and the original Go client use it.
mod common;

use chat_proto::{chat_event::Event, HistoryRequest, MessageRequest, SubscribeRequest};
use common::{next_event, next_message, post_numbered, req, welcome, within, TestServer};
use tokio::sync::mpsc;
use tokio_stream::{wrappers::ReceiverStream, StreamExt};
use tonic::Code;

#[tokio::test]
async fn send_message_answers_like_the_original_server() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let res = client
        .send_message(req("alice", "", "hi there"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.message, "[alice]: hi there");
    assert_eq!(
        (
            res.id,
            res.username.as_str(),
            res.room.as_str(),
            res.text.as_str()
        ),
        (1, "alice", "general", "hi there")
    );
    assert!(res.sent_at_ms > 1_600_000_000_000);
    let res = client
        .send_message(req("bob", "general", "second"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.id, 2);
}

#[tokio::test]
async fn broadcast_follows_the_original_client_protocol() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let (tx, rx) = mpsc::channel(8);
    // The original client: join with only a username, then read.
    tx.send(MessageRequest {
        username: "gopher".into(),
        message: String::new(),
        room: String::new(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut stream = client
        .broadcast(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    // Messages from a unary sender (as browsers post) reach the Broadcast listener.
    let mut other = server.client().await;
    // The join may still be in flight; keep posting until the listener sees one.
    let first = within(async {
        loop {
            other
                .send_message(req("web", "", "from the browser"))
                .await
                .unwrap();
            let wait = std::time::Duration::from_millis(200);
            if let Ok(received) = tokio::time::timeout(wait, stream.message()).await {
                break received.unwrap().unwrap();
            }
        }
    })
    .await;
    assert_eq!(first.message, "[web]: from the browser");

    // After each read the original client sends another username-only request: a
    // keep-alive that is never posted and never ends the stream.
    tx.send(req("gopher", "", "")).await.unwrap();
    tx.send(req("gopher", "", "hello from go")).await.unwrap();
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|m: &chat_proto::MessageResponse| m.text == "hello from go")
    {
        seen.push(within(stream.message()).await.unwrap().unwrap());
    }
    let mine = seen.last().unwrap();
    assert_eq!(mine.message, "[gopher]: hello from go");
    assert_eq!(mine.username, "gopher");
    // Nothing empty was posted.
    let history = client
        .history(HistoryRequest {
            room: "general".into(),
            before_id: 0,
            limit: 200,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(history.messages.iter().all(|m| !m.text.is_empty()));
    assert_eq!(history.messages.last().unwrap().text, "hello from go");
}

#[tokio::test]
async fn a_stalled_broadcast_client_does_not_stall_others() {
    let server = TestServer::start().await;
    let mut stalled = server.client().await;
    let (tx, rx) = mpsc::channel(8);
    tx.send(req("sleepy", "", "")).await.unwrap();
    // Opened and never read.
    let _never_read = stalled.broadcast(ReceiverStream::new(rx)).await.unwrap();

    let mut client = server.client().await;
    let mut live = client
        .subscribe(SubscribeRequest {
            room: String::new(),
            after_id: 0,
            epoch: 0,
        })
        .await
        .unwrap()
        .into_inner();
    welcome(&mut live).await;
    for i in 0..2000u64 {
        let sent = within(client.send_message(req("fast", "", &format!("m{i}"))))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(sent.id, i + 1);
    }
    for i in 0..2000u64 {
        assert_eq!(next_message(&mut live).await.id, i + 1);
    }
}

#[tokio::test]
async fn subscribe_replays_after_id_then_goes_live_without_gap_or_duplicate() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    post_numbered(&mut client, "a", "", 1..=5).await;
    let mut stream = client
        .subscribe(SubscribeRequest {
            room: "general".into(),
            after_id: 2,
            epoch: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let w = welcome(&mut stream).await;
    assert_eq!((w.room.as_str(), w.last_id, w.reset), ("general", 5, false));
    assert_ne!(w.epoch, 0);
    // Posts racing with the replay.
    let mut poster = server.client().await;
    let posting = tokio::spawn(async move {
        post_numbered(&mut poster, "b", "", 6..=50).await;
    });
    let ids: Vec<u64> = {
        let mut ids = Vec::new();
        for _ in 3..=50 {
            ids.push(next_message(&mut stream).await.id);
        }
        ids
    };
    assert_eq!(ids, (3..=50).collect::<Vec<_>>());
    posting.await.unwrap();

    // after_id = 0: live only.
    let mut live = client
        .subscribe(SubscribeRequest {
            room: "general".into(),
            after_id: 0,
            epoch: w.epoch,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(welcome(&mut live).await.last_id, 50);
    client.send_message(req("a", "", "fresh")).await.unwrap();
    assert_eq!(next_message(&mut live).await.id, 51);
}

#[tokio::test]
async fn a_client_from_another_history_epoch_is_told_to_reset() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    client.send_message(req("a", "", "one")).await.unwrap();
    client.send_message(req("a", "", "two")).await.unwrap();
    // Ids remembered from a previous server run: another epoch, or ids beyond ours.
    for (after_id, epoch) in [(1, 12345), (40, 0)] {
        let mut stream = client
            .subscribe(SubscribeRequest {
                room: String::new(),
                after_id,
                epoch,
            })
            .await
            .unwrap()
            .into_inner();
        let w = welcome(&mut stream).await;
        assert!(w.reset, "after_id {after_id} epoch {epoch} must reset");
        assert_eq!(next_message(&mut stream).await.text, "one");
        assert_eq!(next_message(&mut stream).await.text, "two");
    }
}

#[tokio::test]
async fn history_pages_backwards() {
    let server = TestServer::start().await;
    server.create_rooms(&["paging"]).await;
    let mut client = server.client().await;
    post_numbered(&mut client, "a", "paging", 1..=120).await;
    let page = |before_id, limit| HistoryRequest {
        room: "paging".into(),
        before_id,
        limit,
    };
    let newest = client.history(page(0, 0)).await.unwrap().into_inner();
    assert_eq!(newest.messages.len(), 50, "default page size");
    assert_eq!(newest.messages.first().unwrap().id, 71);
    assert_eq!(newest.messages.last().unwrap().id, 120);
    assert!(newest.has_more);
    let older = client.history(page(71, 60)).await.unwrap().into_inner();
    assert_eq!(
        older.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        (11..=70).collect::<Vec<_>>()
    );
    let oldest = client.history(page(11, 60)).await.unwrap().into_inner();
    assert_eq!(oldest.messages.len(), 10);
    assert!(!oldest.has_more);
    post_numbered(&mut client, "a", "paging", 121..=250).await;
    let capped = client.history(page(0, 10_000)).await.unwrap().into_inner();
    assert_eq!(capped.messages.len(), 200, "pages are capped");
    assert_eq!(capped.messages.first().unwrap().id, 51);
    // Rooms are separate and an unknown room is empty.
    let general = client
        .history(HistoryRequest {
            room: String::new(),
            before_id: 0,
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(general.messages.is_empty());
}

#[tokio::test]
async fn rooms_do_not_leak_into_each_other() {
    let server = TestServer::start().await;
    server.create_rooms(&["a", "b"]).await;
    let mut client = server.client().await;
    let mut in_a = client
        .subscribe(SubscribeRequest {
            room: "a".into(),
            after_id: 0,
            epoch: 0,
        })
        .await
        .unwrap()
        .into_inner();
    welcome(&mut in_a).await;
    client.send_message(req("x", "b", "for b")).await.unwrap();
    client.send_message(req("x", "a", "for a")).await.unwrap();
    let got = next_message(&mut in_a).await;
    assert_eq!(
        (got.room.as_str(), got.text.as_str(), got.id),
        ("a", "for a", 1)
    );
}

#[tokio::test]
async fn shutdown_ends_open_streams_with_unavailable() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut stream = client
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    welcome(&mut stream).await;
    server.shutdown.trigger();
    let status = within(stream.message()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("shutting down"),
        "{}",
        status.message()
    );
    within(server.task).await.unwrap().unwrap();
}

#[tokio::test]
async fn health_and_reflection_answer() {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel().await);
    let res = health
        .check(HealthCheckRequest {
            service: "grpcchat.ChatService".into(),
        })
        .await
        .unwrap();
    assert_eq!(res.into_inner().status(), ServingStatus::Serving);

    let mut listed = reflection_v1(&server).await;
    listed.sort();
    assert_eq!(listed, SERVICES, "v1");
    let mut listed = reflection_v1alpha(&server).await;
    listed.sort();
    assert_eq!(listed, SERVICES, "v1alpha");
}

/// What reflection lists, in either version: the chat, health, and both reflections.
const SERVICES: [&str; 4] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpcchat.ChatService",
];

async fn reflection_v1(server: &TestServer) -> Vec<String> {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest as R,
        server_reflection_response::MessageResponse as Res, ServerReflectionRequest,
    };
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(R::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(Res::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    list.service.into_iter().map(|s| s.name).collect()
}

async fn reflection_v1alpha(server: &TestServer) -> Vec<String> {
    use tonic_reflection::pb::v1alpha::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest as R,
        server_reflection_response::MessageResponse as Res, ServerReflectionRequest,
    };
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(R::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(Res::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    list.service.into_iter().map(|s| s.name).collect()
}

#[tokio::test]
async fn quiet_streams_get_heartbeats_and_busy_ones_do_not() {
    let config = chat_server::Config {
        heartbeat_ms: 200,
        ..chat_server::Config::for_tests()
    };
    let server = TestServer::start_with(config).await;
    let mut client = server.client().await;
    let mut stream = client
        .subscribe(SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(welcome(&mut stream).await.heartbeat_ms, 200);
    let started = std::time::Instant::now();
    let beat = next_event(&mut stream).await;
    assert!(matches!(beat, Event::Heartbeat(_)), "{beat:?}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(150),
        "not before the quiet spell"
    );

    // Messages flow through unchanged between heartbeats.
    client
        .send_message(req("a", "", "between beats"))
        .await
        .unwrap();
    loop {
        match next_event(&mut stream).await {
            Event::Heartbeat(_) => continue,
            Event::Message(m) => break assert_eq!(m.text, "between beats"),
            other => panic!("{other:?}"),
        }
    }
    // And the stream still ends cleanly on shutdown.
    server.shutdown.trigger();
    let ended = loop {
        match within(stream.message()).await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert_eq!(ended.unwrap_err().code(), Code::Unavailable);
}
