//! Rooms: created only by signed-in people, a few per hour per session and per address,
//! up to a cap; dropped when nobody ever used them; listed a page at a time, most recently
//! active first; kept across restarts.
mod common;

use std::time::Duration;

use chat_proto::{ListRoomsRequest, RoomInfo};
use common::{req, subscribe_req, welcome, within, TestServer};
use tonic::Code;

fn summary(rooms: &[RoomInfo]) -> Vec<(&str, u32, u64)> {
    rooms
        .iter()
        .map(|r| (r.name.as_str(), r.members, r.last_id))
        .collect()
}

fn names(rooms: &[RoomInfo]) -> Vec<&str> {
    rooms.iter().map(|r| r.name.as_str()).collect()
}

fn page(limit: u32) -> ListRoomsRequest {
    ListRoomsRequest { limit }
}

/// Activity is kept in milliseconds: a pause between steps makes their order certain.
async fn next_millisecond() {
    tokio::time::sleep(Duration::from_millis(2)).await;
}

#[tokio::test]
async fn only_signed_in_people_create_rooms_and_everyone_uses_them() {
    let server = TestServer::start().await;
    let mut anonymous = server.client().await;
    let listed = anonymous.list_rooms(page(0)).await.unwrap().into_inner();
    assert_eq!(summary(&listed.rooms), [("general", 0, 0)]);
    assert_eq!(listed.total, 1);
    assert_ne!(listed.epoch, 0);

    // Token-less: general always works; a room that does not exist is not created.
    anonymous.send_message(req("a", "", "hi")).await.unwrap();
    let refused = anonymous
        .send_message(req("a", "zeta", "1"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    assert!(
        refused
            .message()
            .contains("rooms are created by people who are signed in"),
        "{}",
        refused.message()
    );
    let refused = anonymous
        .subscribe(subscribe_req("zeta", 0))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    let mut broadcast = anonymous
        .broadcast(futures::stream::iter([req("a", "zeta", "")]))
        .await
        .unwrap()
        .into_inner();
    let refused = within(broadcast.message()).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);

    // Signed in (a guest is enough): posting or subscribing creates the room.
    let (mut ann, _) = server.join("ann").await;
    ann.send_message(req("", "zeta", "1")).await.unwrap();
    let mut in_alpha = ann
        .subscribe(subscribe_req("alpha", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut in_alpha).await;
    // Then anyone uses them.
    anonymous.send_message(req("a", "zeta", "2")).await.unwrap();
    let listed = anonymous.list_rooms(page(0)).await.unwrap().into_inner();
    let mut rooms = summary(&listed.rooms);
    rooms.sort();
    assert_eq!(rooms, [("alpha", 1, 0), ("general", 0, 1), ("zeta", 0, 2)]);
}

#[tokio::test]
async fn room_creation_is_limited_per_session_and_per_address() {
    let server = TestServer::start_with(chat_server::Config {
        max_new_rooms_per_hour: 2,
        ..chat_server::Config::for_tests()
    })
    .await;
    let (mut ann, _) = server.join("ann").await;
    ann.send_message(req("", "one", "x")).await.unwrap();
    ann.send_message(req("", "two", "x")).await.unwrap();
    let refused = ann.send_message(req("", "three", "x")).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused
            .message()
            .contains("you have created as many rooms as allowed for now; try again in"),
        "{}",
        refused.message()
    );
    assert!(refused.metadata().get("retry-after-ms").is_some());
    // Existing rooms are unaffected.
    ann.send_message(req("", "one", "still fine"))
        .await
        .unwrap();
    // A fresh session from the same address gets nothing more.
    let (mut bob, _) = server.join("bob").await;
    let refused = bob.send_message(req("", "three", "x")).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    // Someone on another address does.
    let mut elsewhere = server.client_from("127.0.0.2").await;
    let joined = elsewhere
        .join(chat_proto::JoinRequest {
            username: "cy".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut cy = server.with_token_from(&joined.token, "127.0.0.2").await;
    cy.send_message(req("", "three", "x")).await.unwrap();
}

#[tokio::test]
async fn the_room_cap_is_enforced_with_a_clear_error() {
    let server = TestServer::start_with(chat_server::Config {
        max_rooms: 3,
        ..chat_server::Config::for_tests()
    })
    .await;
    let (mut ann, _) = server.join("ann").await;
    ann.send_message(req("", "one", "x")).await.unwrap();
    ann.send_message(req("", "two", "x")).await.unwrap();
    let err = ann.send_message(req("", "three", "x")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("3 rooms"), "{}", err.message());
    let err = ann.subscribe(subscribe_req("three", 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    // Existing rooms are unaffected.
    ann.send_message(req("", "one", "still fine"))
        .await
        .unwrap();
    ann.send_message(req("", "", "general too")).await.unwrap();
}

#[tokio::test]
async fn rooms_nobody_ever_used_go_away_and_others_stay() {
    let first = TestServer::start_with(chat_server::Config {
        empty_room_ttl_secs: 1,
        ..chat_server::Config::for_tests()
    })
    .await;
    // junk: opened once and closed, never a message. used: a message. watched: no
    // message, but a token-less subscriber has it open.
    first.create_rooms(&["junk", "used", "watched"]).await;
    let mut client = first.client().await;
    client.send_message(req("a", "used", "x")).await.unwrap();
    let mut watching = client
        .subscribe(subscribe_req("watched", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut watching).await;
    let listed = within(async {
        loop {
            let listed = client.list_rooms(page(0)).await.unwrap().into_inner();
            if !names(&listed.rooms).contains(&"junk") {
                break listed;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let mut kept = names(&listed.rooms);
    kept.sort();
    assert_eq!(kept, ["general", "used", "watched"]);
    assert_eq!(listed.total, 3);
    // Gone for a token-less client, as any room that does not exist.
    let refused = client
        .send_message(req("a", "junk", "x"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    drop(watching);

    // Gone from the database too.
    let config = chat_server::Config {
        db: first.db.0.clone().into(),
        ..chat_server::Config::for_tests()
    };
    first.shutdown.trigger();
    let common::TestServer { task, db, .. } = first;
    within(task).await.unwrap().unwrap();
    let second = TestServer::start_with(config).await;
    let _db = db;
    let listed = second
        .client()
        .await
        .list_rooms(page(0))
        .await
        .unwrap()
        .into_inner();
    assert!(!names(&listed.rooms).contains(&"junk"), "{listed:?}");
}

#[tokio::test]
async fn list_rooms_answers_a_page_most_recently_active_first() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    next_millisecond().await;
    server.create_rooms(&["r0", "r1", "r2", "r3"]).await;
    for room in ["r2", "r0"] {
        next_millisecond().await;
        client.send_message(req("a", room, "x")).await.unwrap();
    }
    let top = client.list_rooms(page(2)).await.unwrap().into_inner();
    assert_eq!(names(&top.rooms), ["r0", "r2"]);
    assert_eq!(top.total, 5, "total counts every room, not the page");
    assert!(top.rooms[0].last_active_ms > top.rooms[1].last_active_ms);
    let all = client.list_rooms(page(0)).await.unwrap().into_inner();
    // Then the rooms without messages, by creation time; general is the oldest.
    assert_eq!(names(&all.rooms)[..2], ["r0", "r2"]);
    assert_eq!(all.rooms.last().unwrap().name, "general");
    assert_eq!(all.rooms.len(), 5);
}

#[tokio::test]
async fn rooms_and_their_ids_survive_a_restart() {
    let first = TestServer::start().await;
    let config = chat_server::Config {
        db: first.db.0.clone().into(),
        ..chat_server::Config::for_tests()
    };
    first.create_rooms(&["kept", "empty-but-kept"]).await;
    let mut client = first.client().await;
    client.send_message(req("a", "kept", "1")).await.unwrap();
    first.shutdown.trigger();
    let common::TestServer { task, db, .. } = first;
    within(task).await.unwrap().unwrap();

    let second = TestServer::start_with(config).await;
    let _db = db; // removed only when the second server is done with it
    let mut client = second.client().await;
    let listed = client.list_rooms(page(0)).await.unwrap().into_inner();
    let mut rooms = summary(&listed.rooms);
    rooms.sort();
    assert_eq!(
        rooms,
        [("empty-but-kept", 0, 0), ("general", 0, 0), ("kept", 0, 1)]
    );
    let next = client
        .send_message(req("a", "kept", "2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.id, 2, "ids continue where they were");
}
