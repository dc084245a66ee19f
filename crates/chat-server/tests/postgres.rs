//! Servers on PostgreSQL (`--db postgres://...`), each test in a database of its own on
//! the tests' PostgreSQL (`common::pg`): the chat works as on SQLite, a restart keeps
//! everything, two servers on one database share rooms, ids, accounts and sessions, and
//! a server whose database goes away says so (UNAVAILABLE, health NOT_SERVING) and
//! recovers by itself when it is back.
mod common;

use std::time::Duration;

use chat_proto::{
    chat_event::Event, ChangePasswordRequest, HistoryRequest, JoinRequest, RegisterRequest,
    SignInRequest,
};
use common::{next_message, pg, req, subscribe_req, welcome, within, SignedIn, TestServer};
use tonic::Code;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

const PASSWORD: &str = "correct horse battery";

async fn history(server: &TestServer, room: &str) -> Vec<u64> {
    let page = within(server.client().await.history(HistoryRequest {
        room: room.into(),
        before_id: 0,
        limit: 1000,
    }))
    .await
    .unwrap()
    .into_inner();
    page.messages.iter().map(|m| m.id).collect()
}

async fn register(server: &TestServer, name: &str) -> Result<String, tonic::Status> {
    let answer = within(server.client().await.register(RegisterRequest {
        username: name.into(),
        password: PASSWORD.into(),
    }))
    .await?;
    Ok(answer.into_inner().token)
}

async fn sign_in(server: &TestServer, name: &str) -> String {
    within(server.client().await.sign_in(SignInRequest {
        username: name.into(),
        password: PASSWORD.into(),
    }))
    .await
    .unwrap()
    .into_inner()
    .token
}

async fn send(client: &mut SignedIn, text: &str) -> Result<u64, tonic::Status> {
    let sent = within(client.send_message(req("", "general", text))).await?;
    Ok(sent.into_inner().id)
}

async fn stop(server: TestServer) {
    server.shutdown.trigger();
    within(server.task).await.unwrap().unwrap();
}

async fn health(server: &TestServer) -> ServingStatus {
    let mut health = HealthClient::new(server.channel().await);
    let answer = within(health.check(HealthCheckRequest {
        service: "grpcchat.ChatService".into(),
    }))
    .await
    .unwrap()
    .into_inner();
    answer.status()
}

/// Polls until the health check says `want` (the probe runs every second).
async fn health_becomes(server: &TestServer, want: ServingStatus) {
    within(async {
        while health(server).await != want {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

#[tokio::test]
async fn send_history_and_subscribe_after_id_work_on_postgres() {
    let db = pg::database();
    let server = TestServer::start_on(&db).await;
    let mut client = server.client().await;
    for i in 1..=5 {
        let sent = within(client.send_message(req("ann", "general", &format!("m{i}"))))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(sent.id, i, "ids from the database start at 1, in order");
    }
    assert_eq!(history(&server, "general").await, [1, 2, 3, 4, 5]);
    let mut stream = within(client.subscribe(subscribe_req("general", 2)))
        .await
        .unwrap()
        .into_inner();
    let welcomed = welcome(&mut stream).await;
    assert_eq!(welcomed.last_id, 5);
    for want in 3..=5 {
        assert_eq!(
            next_message(&mut stream).await.id,
            want,
            "replayed after id 2"
        );
    }
    client
        .send_message(req("ann", "general", "live"))
        .await
        .unwrap();
    let live = next_message(&mut stream).await;
    assert_eq!((live.id, live.text.as_str()), (6, "live"));
    stop(server).await;
}

#[tokio::test]
async fn a_restart_keeps_messages_accounts_and_sessions() {
    let db = pg::database();
    let first = TestServer::start_on(&db).await;
    let ann = register(&first, "Ann").await.unwrap();
    let (mut bob, bob_token) = first.join("bob").await;
    send(&mut first.with_token(&ann).await, "from ann")
        .await
        .unwrap();
    send(&mut bob, "from bob").await.unwrap();
    let epoch = first.hub.epoch();
    stop(first).await;

    let second = TestServer::start_on(&db).await;
    assert_eq!(second.hub.epoch(), epoch, "the epoch lives in the database");
    assert_eq!(history(&second, "general").await, [1, 2]);
    let id = send(&mut second.with_token(&ann).await, "still ann")
        .await
        .unwrap();
    assert_eq!(id, 3, "ids continue");
    send(&mut second.with_token(&bob_token).await, "still bob")
        .await
        .unwrap();
    sign_in(&second, "ann").await;
    let taken = within(second.client().await.join(JoinRequest {
        username: "Bob".into(),
    }))
    .await
    .unwrap_err();
    assert_eq!(
        taken.code(),
        Code::AlreadyExists,
        "bob's session holds the name"
    );
    stop(second).await;
}

#[tokio::test]
async fn two_servers_share_sessions_names_and_history() {
    let db = pg::database();
    let a = TestServer::start_on(&db).await;
    let b = TestServer::start_on(&db).await;

    // A token from A is good on B, which finds it in the database.
    let ann = register(&a, "Ann").await.unwrap();
    let mut ann_on_b = b.with_token(&ann).await;
    let sent = within(ann_on_b.send_message(req("", "general", "hi from b")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((sent.username.as_str(), sent.guest), ("Ann", false));
    let (_, guest) = a.join("bob").await;
    send(&mut b.with_token(&guest).await, "bob on b")
        .await
        .unwrap();

    // A name registered through A is nobody else's through B.
    let refused = register(&b, "ann").await.unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");
    let refused = within(b.client().await.join(JoinRequest {
        username: "ANN".into(),
    }))
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");
    assert!(refused.message().contains("registered"), "{refused:?}");
    let cara = register(&a, "Cara").await.unwrap();
    drop(cara);
    let refused = within(b.client().await.send_message(req("cara", "general", "x")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // History on B sees what A committed, and the other way round.
    send(&mut a.with_token(&ann).await, "hi from a")
        .await
        .unwrap();
    assert_eq!(history(&b, "general").await, [1, 2, 3]);
    assert_eq!(history(&a, "general").await, [1, 2, 3]);

    // A password change through A ends the account's other sessions in the database;
    // B, which never saw that session, refuses it.
    let other = sign_in(&a, "Ann").await;
    within(
        a.with_token(&ann)
            .await
            .change_password(ChangePasswordRequest {
                old_password: PASSWORD.into(),
                new_password: "another good password".into(),
            }),
    )
    .await
    .unwrap();
    let ended = send(&mut b.with_token(&other).await, "x")
        .await
        .unwrap_err();
    assert_eq!(ended.code(), Code::Unauthenticated, "{ended:?}");
    send(
        &mut b.with_token(&ann).await,
        "the caller's session goes on",
    )
    .await
    .unwrap();
    stop(a).await;
    stop(b).await;
}

/// Clients on two servers post into one room at once: the ids are gapless, each once,
/// and a reader polling History never sees a later id without every earlier one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_through_two_servers_get_gapless_ids_committed_in_order() {
    let db = pg::database();
    let a = TestServer::start_on(&db).await;
    let b = TestServer::start_on(&db).await;
    let watching = tokio::spawn({
        let mut client = b.client().await;
        async move {
            let mut seen = 0;
            while seen < 200 {
                let page = client
                    .history(HistoryRequest {
                        room: "general".into(),
                        before_id: 0,
                        limit: 1000,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let ids: Vec<u64> = page.messages.iter().map(|m| m.id).collect();
                let want: Vec<u64> = (1..=ids.len() as u64).collect();
                assert_eq!(
                    ids, want,
                    "a reader saw a gap: commit order is not id order"
                );
                seen = ids.len();
            }
        }
    });
    let mut posters = Vec::new();
    for (server, name) in [(&a, "on_a"), (&b, "on_b")] {
        for n in 0..4 {
            let mut client = server.client().await;
            let name = format!("{name}{n}");
            posters.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..25 {
                    let sent = client
                        .send_message(req(&name, "general", &format!("{i}")))
                        .await
                        .unwrap()
                        .into_inner();
                    ids.push(sent.id);
                }
                ids
            }));
        }
    }
    let mut all = Vec::new();
    for poster in posters {
        let ids = within(poster).await.unwrap();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "one client's sends in order"
        );
        all.extend(ids);
    }
    within(watching).await.unwrap();
    all.sort_unstable();
    assert_eq!(all, (1..=200).collect::<Vec<_>>());
    stop(a).await;
    stop(b).await;
}

/// PostgreSQL stopped under a running server: sends fail with UNAVAILABLE in words a
/// person understands, health says NOT_SERVING, open streams stay open; started again,
/// everything works without a restart of the server.
#[tokio::test]
async fn the_database_going_away_and_coming_back() {
    let instance = pg::Instance::start();
    let db = instance.database();
    let server = TestServer::start_on(&db).await;
    let (mut ann, _) = server.join("ann").await;
    let mut watcher = server.client().await;
    let mut stream = within(watcher.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut stream).await;
    assert_eq!(send(&mut ann, "before").await.unwrap(), 1);
    assert_eq!(next_message(&mut stream).await.text, "before");
    assert_eq!(health(&server).await, ServingStatus::Serving);

    instance.stop();
    let refused = send(&mut ann, "while down").await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(
        refused.message(),
        "the message database cannot be reached right now; nothing was saved, try again"
    );
    health_becomes(&server, ServingStatus::NotServing).await;
    // Reads fail the same way; the server itself stays up.
    let read = within(server.client().await.history(HistoryRequest {
        room: "general".into(),
        before_id: 0,
        limit: 10,
    }))
    .await
    .unwrap_err();
    assert_eq!(read.code(), Code::Unavailable, "{read:?}");

    instance.start_again();
    health_becomes(&server, ServingStatus::Serving).await;
    let id = send(&mut ann, "after").await.unwrap();
    assert_eq!(id, 2, "nothing of the refused send was saved");
    // The stream opened before the outage is still there, and gets it live.
    match within(stream.message()).await.unwrap().unwrap().event {
        Some(Event::Message(m)) => assert_eq!((m.id, m.text.as_str()), (2, "after")),
        other => panic!("expected the message, got {other:?}"),
    }
    assert_eq!(history(&server, "general").await, [1, 2]);
    stop(server).await;
}
