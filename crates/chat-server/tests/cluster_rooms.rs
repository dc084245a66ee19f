//! The room list and the room cap across servers sharing one PostgreSQL: the cap is one
//! count for all of them, however they race for the last rooms, and ListRooms on any
//! server lists every room the database has, including one made through another server
//! that nobody has used yet.
mod common;

use std::time::Duration;

use chat_proto::{ListRoomsRequest, ListRoomsResponse};
use common::{cluster::cluster_with, *};
use tokio::time::sleep;
use tonic::Code;

/// ListRooms through `server` until `done` holds for its answer (a server reads the
/// database's list at most once a second).
async fn listed_until(
    server: &TestServer,
    done: impl Fn(&ListRoomsResponse) -> bool,
) -> ListRoomsResponse {
    let mut client = server.client().await;
    within(async {
        loop {
            let listed = client
                .list_rooms(ListRoomsRequest { limit: 0 })
                .await
                .unwrap()
                .into_inner();
            if done(&listed) {
                return listed;
            }
            sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

fn names(listed: &ListRoomsResponse) -> Vec<&str> {
    let mut names: Vec<&str> = listed.rooms.iter().map(|r| r.name.as_str()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn servers_racing_for_the_last_rooms_create_exactly_the_cap() {
    // general and three more.
    let c = cluster_with(2, || chat_server::Config {
        max_rooms: 4,
        ..chat_server::Config::for_tests()
    })
    .await;
    let mut tries = Vec::new();
    for (i, server) in c.servers.iter().enumerate() {
        let (client, _) = server.join(&format!("maker{i}")).await;
        for n in 0..3 {
            let mut client = client.clone();
            let room = format!("s{i}r{n}");
            tries.push(tokio::spawn(async move {
                within(client.send_message(req("", &room, "first")))
                    .await
                    .map(|_| room)
            }));
        }
    }
    let mut created = Vec::new();
    for tried in tries {
        match tried.await.unwrap() {
            Ok(room) => created.push(room),
            Err(status) => {
                // The same refusal as one server's.
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(status.message().contains("4 rooms"), "{}", status.message());
            }
        }
    }
    assert_eq!(
        created.len(),
        3,
        "exactly the cap, general included: {created:?}"
    );

    let mut want: Vec<&str> = created.iter().map(String::as_str).collect();
    want.push("general");
    want.sort();
    for server in &c.servers {
        let listed = listed_until(server, |l| l.total == 4 && l.rooms.len() == 4).await;
        assert_eq!(names(&listed), want);
    }
    // Full on every server, whichever made the rooms.
    for (i, server) in c.servers.iter().enumerate() {
        let (mut late, _) = server.join(&format!("late{i}")).await;
        let status = within(late.send_message(req("", "one-more", "x")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    }
}

#[tokio::test]
async fn a_room_made_through_one_server_and_not_used_is_listed_by_the_others() {
    let c = cluster_with(3, chat_server::Config::for_tests).await;
    let [a, b, cc] = [&c.servers[0], &c.servers[1], &c.servers[2]];
    // Opened once and closed at once: no message, nobody in it, so no heartbeat names it.
    a.create_rooms(&["quiet"]).await;
    for server in [b, cc] {
        let listed = listed_until(server, |l| names(l).contains(&"quiet")).await;
        assert_eq!(names(&listed), ["general", "quiet"]);
        assert_eq!(listed.total, 2);
        let quiet = listed.rooms.iter().find(|r| r.name == "quiet").unwrap();
        assert_eq!((quiet.members, quiet.last_id), (0, 0));
    }

    // Member counts are the union over servers: someone in the room through C is
    // counted by A and B.
    let (mut cy, _) = cc.join("cy").await;
    let mut in_quiet = within(cy.subscribe(subscribe_req("quiet", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut in_quiet).await;
    for server in [a, b] {
        listed_until(server, |l| {
            l.rooms.iter().any(|r| r.name == "quiet" && r.members == 1)
        })
        .await;
    }
}

#[tokio::test]
async fn a_room_someone_is_in_through_another_server_is_not_dropped_as_unused() {
    let c = cluster_with(2, || chat_server::Config {
        empty_room_ttl_secs: 1,
        ..chat_server::Config::for_tests()
    })
    .await;
    let [a, b] = [&c.servers[0], &c.servers[1]];
    // Made through A and closed there; cy sits in it through B, and nobody posts.
    a.create_rooms(&["sitting"]).await;
    let (mut cy, _) = b.join("cy").await;
    let mut in_room = within(cy.subscribe(subscribe_req("sitting", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut in_room).await;
    // Well past A's one-second ttl for rooms nobody uses: A hears of cy from B's
    // heartbeats, so it keeps the room, here and in the database.
    sleep(Duration::from_secs(3)).await;
    assert!(
        a.hub.existing("sitting").is_some(),
        "A dropped a room in use"
    );
    for server in [a, b] {
        let listed = listed_until(server, |l| {
            l.rooms
                .iter()
                .any(|r| r.name == "sitting" && r.members == 1)
        })
        .await;
        assert_eq!(names(&listed), ["general", "sitting"]);
    }
}
