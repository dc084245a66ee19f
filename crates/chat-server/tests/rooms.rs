//! Rooms: created on first use up to a cap, listed with members and newest ids, kept
//! across restarts.
mod common;

use chat_proto::{ListRoomsRequest, RoomInfo};
use common::{req, subscribe_req, welcome, within, TestServer};
use tonic::Code;

fn summary(rooms: &[RoomInfo]) -> Vec<(&str, u32, u64)> {
    rooms
        .iter()
        .map(|r| (r.name.as_str(), r.members, r.last_id))
        .collect()
}

#[tokio::test]
async fn rooms_are_created_on_use_and_listed() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let listed = client
        .list_rooms(ListRoomsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary(&listed.rooms), [("general", 0, 0)]);
    assert_ne!(listed.epoch, 0);

    client.send_message(req("a", "zeta", "1")).await.unwrap();
    client.send_message(req("a", "zeta", "2")).await.unwrap();
    let (mut ann, _) = server.join("ann").await;
    let mut in_alpha = ann
        .subscribe(subscribe_req("alpha", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut in_alpha).await;
    let listed = client
        .list_rooms(ListRoomsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        summary(&listed.rooms),
        [("alpha", 1, 0), ("general", 0, 0), ("zeta", 0, 2)]
    );
}

#[tokio::test]
async fn the_room_cap_is_enforced_with_a_clear_error() {
    let config = chat_server::Config {
        max_rooms: 3,
        ..chat_server::Config::for_tests()
    };
    let server = TestServer::start_with(config).await;
    let mut client = server.client().await;
    client.send_message(req("a", "one", "x")).await.unwrap();
    client.send_message(req("a", "two", "x")).await.unwrap();
    let err = client
        .send_message(req("a", "three", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("3 rooms"), "{}", err.message());
    let err = client
        .subscribe(subscribe_req("three", 0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    // Existing rooms are unaffected.
    client
        .send_message(req("a", "one", "still fine"))
        .await
        .unwrap();
    client
        .send_message(req("a", "", "general too"))
        .await
        .unwrap();
}

#[tokio::test]
async fn rooms_and_their_ids_survive_a_restart() {
    let first = TestServer::start().await;
    let config = chat_server::Config {
        db: first.db.0.clone(),
        ..chat_server::Config::for_tests()
    };
    let mut client = first.client().await;
    client.send_message(req("a", "kept", "1")).await.unwrap();
    let mut empty = client
        .subscribe(subscribe_req("empty-but-kept", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut empty).await;
    drop(empty);
    first.shutdown.trigger();
    let common::TestServer { task, db, .. } = first;
    within(task).await.unwrap().unwrap();

    let second = TestServer::start_with(config).await;
    let _db = db; // removed only when the second server is done with it
    let mut client = second.client().await;
    let listed = client
        .list_rooms(ListRoomsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        summary(&listed.rooms),
        [("empty-but-kept", 0, 0), ("general", 0, 0), ("kept", 0, 1)]
    );
    let next = client
        .send_message(req("a", "kept", "2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.id, 2, "ids continue where they were");
}
