//! Who is speaking, across servers sharing one database and one NATS: a token from one
//! server works on another; a guest's name held through one cannot be taken through
//! another until it is left or idles out; and sessions ended on one (SignOutEverywhere,
//! ChangePassword, Leave) end on the others at once, their open streams included.
mod common;

use chat_proto::{
    ChangePasswordRequest, ChatEvent, JoinResponse, LeaveRequest, RegisterRequest,
    SignOutEverywhereRequest,
};
use common::{
    cluster::{cluster, cluster_with},
    *,
};
use tonic::{Code, Status, Streaming};

const PASSWORD: &str = "correct horse battery";

async fn register(server: &TestServer, name: &str) -> JoinResponse {
    within(server.client().await.register(RegisterRequest {
        username: name.into(),
        password: PASSWORD.into(),
    }))
    .await
    .unwrap()
    .into_inner()
}

/// How a stream ended: the status it ended with.
async fn ended_with(stream: &mut Streaming<ChatEvent>) -> Status {
    within(async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
}

async fn open_stream(server: &TestServer, token: &str) -> Streaming<ChatEvent> {
    let mut client = server.with_token(token).await;
    let mut stream = within(client.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut stream).await;
    stream
}

#[tokio::test]
async fn a_token_from_one_server_speaks_on_another() {
    let c = cluster(2).await;
    let (_, token) = c.servers[0].join("ann").await;
    let mut on_b = c.servers[1].with_token(&token).await;
    let sent = within(on_b.send_message(req("", "general", "hi from B")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((sent.username.as_str(), sent.guest), ("ann", true));
}

#[tokio::test]
async fn signing_out_everywhere_on_one_server_ends_the_sessions_held_by_another() {
    let c = cluster(2).await;
    let [a, b] = [&c.servers[0], &c.servers[1]];
    let first = register(a, "ann").await;
    // A second device signs in through B and reads there; the first uses B too.
    let second = within(b.client().await.sign_in(chat_proto::SignInRequest {
        username: "ann".into(),
        password: PASSWORD.into(),
    }))
    .await
    .unwrap()
    .into_inner();
    let mut first_on_b = open_stream(b, &first.token).await;
    let mut second_on_b = open_stream(b, &second.token).await;

    let ended = within(
        a.with_token(&first.token)
            .await
            .sign_out_everywhere(SignOutEverywhereRequest {}),
    )
    .await
    .unwrap()
    .into_inner();
    assert!(ended.sessions_ended >= 1);
    for stream in [&mut first_on_b, &mut second_on_b] {
        let cut = ended_with(stream).await;
        assert_eq!(cut.code(), Code::Unauthenticated, "{cut:?}");
    }
    for token in [&first.token, &second.token] {
        for server in [a, b] {
            let err = server
                .with_token(token)
                .await
                .send_message(req("", "general", "anyone?"))
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
        }
    }
}

#[tokio::test]
async fn changing_the_password_on_one_server_ends_the_others_sessions_on_another() {
    let c = cluster(2).await;
    let [a, b] = [&c.servers[0], &c.servers[1]];
    let mine = register(a, "ann").await;
    let other = within(b.client().await.sign_in(chat_proto::SignInRequest {
        username: "ann".into(),
        password: PASSWORD.into(),
    }))
    .await
    .unwrap()
    .into_inner();
    let mut mine_on_b = open_stream(b, &mine.token).await;
    let mut other_on_b = open_stream(b, &other.token).await;

    within(
        a.with_token(&mine.token)
            .await
            .change_password(ChangePasswordRequest {
                old_password: PASSWORD.into(),
                new_password: "a whole new passphrase".into(),
            }),
    )
    .await
    .unwrap();
    let cut = ended_with(&mut other_on_b).await;
    assert_eq!(cut.code(), Code::Unauthenticated, "{cut:?}");
    let err = b
        .with_token(&other.token)
        .await
        .send_message(req("", "general", "old device"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // The caller's own session goes on, on both servers.
    for server in [a, b] {
        within(
            server
                .with_token(&mine.token)
                .await
                .send_message(req("", "general", "still me")),
        )
        .await
        .unwrap();
    }
    let posted = next_message(&mut mine_on_b).await;
    assert_eq!(posted.username, "ann");
}

#[tokio::test]
async fn leaving_on_one_server_ends_the_session_on_another() {
    let c = cluster(2).await;
    let [a, b] = [&c.servers[0], &c.servers[1]];
    let (_, token) = a.join("ann").await;
    let mut on_b = open_stream(b, &token).await;
    within(a.with_token(&token).await.leave(LeaveRequest {}))
        .await
        .unwrap();
    let cut = ended_with(&mut on_b).await;
    assert_eq!(cut.code(), Code::Unauthenticated, "{cut:?}");
}

async fn join(server: &TestServer, name: &str) -> Result<String, Status> {
    within(server.client().await.join(chat_proto::JoinRequest {
        username: name.into(),
    }))
    .await
    .map(|r| r.into_inner().token)
}

#[tokio::test]
async fn a_guest_name_held_through_one_server_is_nobody_elses_until_left() {
    let c = cluster(3).await;
    let [a, b, cc] = [&c.servers[0], &c.servers[1], &c.servers[2]];
    let token = join(a, "ann").await.unwrap();
    for server in [b, cc] {
        let err = join(server, "ann").await.unwrap_err();
        assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
        let err = join(server, "ANN").await.unwrap_err();
        assert_eq!(
            err.code(),
            Code::AlreadyExists,
            "the same name in another case"
        );
    }
    within(a.with_token(&token).await.leave(LeaveRequest {}))
        .await
        .unwrap();
    join(b, "ann").await.expect("free once left");

    // Many servers claiming one name at once: exactly one gets it.
    let claims = (0..9).map(|i| {
        let addr = c.servers[i % 3].url();
        tokio::spawn(async move {
            let channel = tonic::transport::Channel::from_shared(addr)
                .unwrap()
                .connect()
                .await
                .unwrap();
            chat_proto::chat_service_client::ChatServiceClient::new(channel)
                .join(chat_proto::JoinRequest {
                    username: "bob".into(),
                })
                .await
                .is_ok()
        })
    });
    let mut won = 0;
    for claim in claims {
        won += usize::from(claim.await.unwrap());
    }
    assert_eq!(won, 1, "one bob");
}

#[tokio::test]
async fn a_guest_name_idle_through_one_server_is_free_through_another() {
    let c = cluster_with(2, || chat_server::Config {
        session_idle_secs: 1,
        ..chat_server::Config::for_tests()
    })
    .await;
    join(&c.servers[0], "ann").await.unwrap();
    let err = join(&c.servers[1], "ann").await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    join(&c.servers[1], "ann")
        .await
        .expect("idle past the limit: free");
}
