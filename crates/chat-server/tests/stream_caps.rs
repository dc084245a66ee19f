//! Open streams are capped in total (`--max-streams`) and per client address
//! (`--max-streams-per-ip`), token-less streams included, so the memory that backed-up
//! streams may hold has a bound. Two loopback addresses stand for two clients.
mod common;

use chat_proto::{chat_service_client::ChatServiceClient, ChatEvent};
use common::{req, subscribe_req, welcome, within, TestServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{transport::Channel, Code, Status, Streaming};

fn caps(max_streams: usize, max_streams_per_ip: usize) -> chat_server::Config {
    chat_server::Config {
        max_streams,
        max_streams_per_ip,
        ..chat_server::Config::for_tests()
    }
}

/// A token-less Subscribe stream, its Welcome read (so the server holds it).
async fn subscribed(client: &mut ChatServiceClient<Channel>) -> Streaming<ChatEvent> {
    let mut stream = within(client.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut stream).await;
    stream
}

fn assert_refused(status: Status, says: &str) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains(says), "{}", status.message());
    assert!(common::retry_after_ms(&status) > 0);
}

/// Subscribes until the server has noticed a closed stream and freed its slot.
async fn subscribed_once_freed(client: &mut ChatServiceClient<Channel>) -> Streaming<ChatEvent> {
    within(async {
        loop {
            match client.subscribe(subscribe_req("general", 0)).await {
                Ok(stream) => break stream.into_inner(),
                Err(status) => assert_eq!(status.code(), Code::ResourceExhausted),
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn the_server_wide_cap_counts_every_stream_and_a_closed_one_frees_its_slot() {
    let server = TestServer::start_with(caps(3, 0)).await;
    let mut one = server.client_from("127.0.0.2").await;
    let mut other = server.client_from("127.0.0.3").await;
    let first = subscribed(&mut one).await;
    let _second = subscribed(&mut other).await;
    // A signed-in Broadcast stream takes a slot too.
    let (mut ann, _) = server.join("ann").await;
    let (tx, rx) = mpsc::channel(8);
    tx.send(req("ann", "general", "")).await.unwrap();
    let _broadcast = within(ann.broadcast(ReceiverStream::new(rx)))
        .await
        .unwrap();

    let refused = within(other.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap_err();
    assert_refused(
        refused,
        "the server already has 3 streams open, the most it allows",
    );
    let (_tx, rx) = mpsc::channel(8);
    let refused = within(one.broadcast(ReceiverStream::new(rx)))
        .await
        .unwrap_err();
    assert_refused(refused, "the server already has 3 streams open");

    drop(first);
    let mut again = subscribed_once_freed(&mut other).await;
    welcome(&mut again).await;
}

#[tokio::test]
async fn the_per_address_cap_holds_one_address_and_not_another() {
    let server = TestServer::start_with(caps(0, 2)).await;
    let mut flooder = server.client_from("127.0.0.2").await;
    let first = subscribed(&mut flooder).await;
    let _second = subscribed(&mut flooder).await;
    let refused = within(flooder.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap_err();
    assert_refused(
        refused,
        "your network address already has 2 streams open, the most one address may hold",
    );
    // A session does not lift it: the address is what is counted.
    let joined = within(flooder.join(chat_proto::JoinRequest {
        username: "flood".into(),
    }))
    .await
    .unwrap()
    .into_inner();
    let mut request = tonic::Request::new(subscribe_req("general", 0));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", joined.token).parse().unwrap(),
    );
    let refused = within(flooder.subscribe(request)).await.unwrap_err();
    assert_refused(refused, "your network address already has 2 streams open");

    // Another address goes on.
    let mut neighbour = server.client_from("127.0.0.3").await;
    let _theirs = subscribed(&mut neighbour).await;
    let _theirs_too = subscribed(&mut neighbour).await;

    drop(first);
    let mut again = subscribed_once_freed(&mut flooder).await;
    welcome(&mut again).await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_counted() {
    let config = chat_server::Config {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..caps(0, 1)
    };
    let server = TestServer::start_with(config).await;
    let mut proxy = server.client().await;
    let forwarded = |client: &str| {
        let mut request = tonic::Request::new(subscribe_req("general", 0));
        request
            .metadata_mut()
            .insert("x-forwarded-for", client.parse().unwrap());
        request
    };
    let mut first = within(proxy.subscribe(forwarded("203.0.113.7")))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut first).await;
    let refused = within(proxy.subscribe(forwarded("203.0.113.7")))
        .await
        .unwrap_err();
    assert_refused(refused, "your network address already has 1 streams open");
    let mut other = within(proxy.subscribe(forwarded("198.51.100.9")))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut other).await;
}
