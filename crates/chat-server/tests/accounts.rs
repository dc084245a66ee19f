//! Accounts: a registered name is its account's for good (before and after a restart),
//! signing in needs the password, guessing is slowed per account and per address, and
//! sessions are stored as token hashes only.
mod common;

use std::time::Duration;

use chat_proto::{
    ChangePasswordRequest, HistoryRequest, JoinRequest, JoinResponse, LeaveRequest, MessageRequest,
    RegisterRequest, SignInRequest, SignOutEverywhereRequest,
};
use common::{req, retry_after_ms, subscribe_req, welcome, within, TestServer};
use tonic::{Code, Request, Status};

const PASSWORD: &str = "correct horse battery";

fn post(text: &str) -> MessageRequest {
    MessageRequest {
        message: text.into(),
        ..Default::default()
    }
}

async fn register(server: &TestServer, name: &str, password: &str) -> Result<JoinResponse, Status> {
    let request = RegisterRequest {
        username: name.into(),
        password: password.into(),
    };
    let answer = within(server.client().await.register(request)).await;
    answer.map(|r| r.into_inner())
}

/// Signs in, from `from` (an address the server believes: see `behind_proxy`) if given.
async fn sign_in(
    server: &TestServer,
    from: Option<&str>,
    name: &str,
    password: &str,
) -> Result<JoinResponse, Status> {
    let mut request = Request::new(SignInRequest {
        username: name.into(),
        password: password.into(),
    });
    if let Some(ip) = from {
        request
            .metadata_mut()
            .insert("x-forwarded-for", ip.parse().unwrap());
    }
    let answer = within(server.client().await.sign_in(request)).await;
    answer.map(|r| r.into_inner())
}

/// A server that takes X-Forwarded-For from loopback, so one test can be many addresses.
async fn behind_proxy() -> TestServer {
    TestServer::start_with(chat_server::Config {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..chat_server::Config::for_tests()
    })
    .await
}

#[tokio::test]
async fn register_then_sign_in_anywhere_and_posts_say_who_was_a_guest() {
    let server = TestServer::start().await;
    let registered = register(&server, "Ann", PASSWORD).await.unwrap();
    assert_eq!(
        (registered.username.as_str(), registered.guest),
        ("Ann", false)
    );
    assert!(
        registered.idle_timeout_ms > 24 * 3600 * 1000,
        "account sessions last days"
    );
    let mut ann = server.with_token(&registered.token).await;
    let sent = ann
        .send_message(post("as an account"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((sent.username.as_str(), sent.guest), ("Ann", false));

    // Any case finds the account, which keeps the name as registered.
    let again = sign_in(&server, None, "ANN", PASSWORD).await.unwrap();
    assert_eq!((again.username.as_str(), again.guest), ("Ann", false));
    assert_ne!(again.token, registered.token);
    let mut elsewhere = server.with_token(&again.token).await;
    elsewhere.send_message(post("from my phone")).await.unwrap();
    ann.send_message(post("both sessions live")).await.unwrap();

    let (mut guest, _) = server.join("bob").await;
    let by_guest = guest
        .send_message(post("as a guest"))
        .await
        .unwrap()
        .into_inner();
    assert!(by_guest.guest);
    let mut bare = server.client().await;
    let by_bare = bare
        .send_message(req("old", "", "no token"))
        .await
        .unwrap()
        .into_inner();
    assert!(by_bare.guest);

    let history = bare
        .history(HistoryRequest {
            room: "general".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let flags: Vec<(&str, bool)> = history
        .messages
        .iter()
        .map(|m| (m.username.as_str(), m.guest))
        .collect();
    assert_eq!(
        flags,
        [
            ("Ann", false),
            ("Ann", false),
            ("Ann", false),
            ("bob", true),
            ("old", true)
        ]
    );
}

#[tokio::test]
async fn registered_names_are_nobody_elses() {
    let server = TestServer::start().await;
    register(&server, "ann", PASSWORD).await.unwrap();
    let mut anonymous = server.client().await;

    let err = anonymous
        .join(JoinRequest {
            username: "Ann".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(
        err.message(),
        "the name \"Ann\" is registered; sign in with its password, or pick another name"
    );
    let err = anonymous
        .send_message(req("ann", "", "it's me"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        err.message(),
        "\"ann\" is a registered name; sign in to post as it"
    );
    let err = register(&server, "ANN", "another password")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    // A token-less Broadcast stream cannot post as the account either.
    let first = futures::stream::iter([req("ann", "", "hi")]);
    let refused = async {
        let mut stream = anonymous.broadcast(first).await?.into_inner();
        while stream.message().await?.is_some() {}
        Ok::<_, Status>(())
    };
    assert_eq!(
        within(refused).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}

#[tokio::test]
async fn a_guests_name_can_be_registered_only_by_that_guest() {
    let server = TestServer::start().await;
    let (_bob, _) = server.join("bob").await;
    let err = register(&server, "bob", PASSWORD).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains("in use"), "{}", err.message());

    // Carol registers the name she holds as a guest: the account takes it over.
    let (mut carol, guest_token) = server.join("carol").await;
    let account = within(carol.register(RegisterRequest {
        username: "carol".into(),
        password: PASSWORD.into(),
    }))
    .await
    .unwrap()
    .into_inner();
    assert!(!account.guest);
    let err = carol.send_message(post("old token")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_ne!(account.token, guest_token);
    let mut carol = server.with_token(&account.token).await;
    let sent = carol
        .send_message(post("mine now"))
        .await
        .unwrap()
        .into_inner();
    assert!(!sent.guest);
}

#[tokio::test]
async fn passwords_follow_the_rules() {
    let server = TestServer::start().await;
    let cases = [
        ("", "password is required"),
        (
            "short",
            "password is too short (5 characters); use at least 8",
        ),
        (
            &"x".repeat(1025),
            "password is too long (1025 bytes); at most 1024 bytes are allowed",
        ),
    ];
    for (password, message) in cases {
        let err = register(&server, "ann", password).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, message)
        );
    }
    // None of those registered the name.
    server.join("ann").await;
}

#[tokio::test]
async fn wrong_passwords_back_off_per_account_and_per_address() {
    let server = behind_proxy().await;
    register(&server, "ann", PASSWORD).await.unwrap();
    register(&server, "bob", PASSWORD).await.unwrap();

    let err = sign_in(&server, Some("10.0.0.1"), "ann", "guess one")
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unauthenticated, "wrong name or password")
    );
    // A name without an account gets the same answer.
    let err = sign_in(&server, Some("10.0.0.9"), "nobody", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unauthenticated, "wrong name or password")
    );

    // The account is locked from any address, even for the right password...
    let err = sign_in(&server, Some("10.0.0.2"), "ann", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message()
            .starts_with("too many password attempts for \"ann\"; try again in"),
        "{}",
        err.message()
    );
    let wait = retry_after_ms(&err);
    assert!((1..=1000).contains(&wait), "{wait}");
    // ...and the address for any account.
    let err = sign_in(&server, Some("10.0.0.1"), "bob", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("from your address"),
        "{}",
        err.message()
    );
    assert!(retry_after_ms(&err) <= 1000);
    // Other accounts from other addresses are untouched.
    sign_in(&server, Some("10.0.0.3"), "bob", PASSWORD)
        .await
        .unwrap();

    // Once the wait is over, another wrong guess doubles it.
    tokio::time::sleep(Duration::from_millis(wait)).await;
    sign_in(&server, Some("10.0.0.4"), "ann", "guess two")
        .await
        .unwrap_err();
    let err = sign_in(&server, Some("10.0.0.5"), "ann", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let wait = retry_after_ms(&err);
    assert!((1000..=2000).contains(&wait), "{wait}");
    // The right password after the wait signs in, and clears the account's record.
    tokio::time::sleep(Duration::from_millis(wait)).await;
    sign_in(&server, Some("10.0.0.6"), "ann", PASSWORD)
        .await
        .unwrap();
    sign_in(&server, Some("10.0.0.7"), "ann", PASSWORD)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_restart_keeps_sessions_and_names_and_the_file_holds_no_token() {
    let first = TestServer::start().await;
    let config = chat_server::Config {
        db: first.db.0.clone().into(),
        ..chat_server::Config::for_tests()
    };
    let ann = register(&first, "ann", PASSWORD).await.unwrap();
    let (_, bob_token) = first.join("bob").await;
    first.shutdown.trigger();
    let TestServer { task, db, .. } = first;
    within(task).await.unwrap().unwrap();

    let mut file = Vec::new();
    for suffix in ["", "-wal"] {
        let mut path = db.0.clone().into_os_string();
        path.push(suffix);
        file.extend(std::fs::read(path).unwrap_or_default());
    }
    for secret in [&ann.token, &bob_token, &PASSWORD.to_owned()] {
        let raw = hex(secret);
        assert!(!contains(&file, secret.as_bytes()), "a secret in the file");
        assert!(
            raw.is_none_or(|raw| !contains(&file, &raw)),
            "raw token bytes in the file"
        );
    }
    let stored: Vec<Vec<u8>> = rusqlite::Connection::open(&db.0)
        .unwrap()
        .prepare("SELECT token_hash FROM sessions ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|hash| hash.len() == 32));

    let second = TestServer::start_with(config).await;
    let _db = db; // removed only when the second server is done with it
    let mut ann_again = second.with_token(&ann.token).await;
    let sent = ann_again
        .send_message(post("still me"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((sent.username.as_str(), sent.guest), ("ann", false));
    let mut bob_again = second.with_token(&bob_token).await;
    bob_again.send_message(post("me too")).await.unwrap();
    let err = second
        .client()
        .await
        .join(JoinRequest {
            username: "ann".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    // Leave is stored too: bob's token is gone for good.
    bob_again.leave(LeaveRequest {}).await.unwrap();
    assert_eq!(
        bob_again
            .send_message(post("gone"))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_the_other_sessions() {
    let server = behind_proxy().await;
    let here = register(&server, "ann", PASSWORD).await.unwrap();
    let there = sign_in(&server, None, "ann", PASSWORD).await.unwrap();
    let mut here = server.with_token(&here.token).await;
    let change = |old: &str, new: &str| ChangePasswordRequest {
        old_password: old.into(),
        new_password: new.into(),
    };

    let err = here
        .change_password(change("not it", "new password"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        err.message(),
        "your current password is wrong; the password was not changed"
    );
    let err = here
        .change_password(change(PASSWORD, "tiny"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // Wait out the lock the wrong guess set.
    tokio::time::sleep(Duration::from_secs(1)).await;
    here.change_password(change(PASSWORD, "new password"))
        .await
        .unwrap();

    here.send_message(post("still signed in")).await.unwrap();
    let mut there = server.with_token(&there.token).await;
    assert_eq!(
        there
            .send_message(post("signed out"))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let err = sign_in(&server, Some("10.0.0.1"), "ann", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    // That was a wrong guess too: wait it out, from elsewhere.
    tokio::time::sleep(Duration::from_secs(1)).await;
    sign_in(&server, Some("10.0.0.2"), "ann", "new password")
        .await
        .unwrap();

    let (mut guest, _) = server.join("bob").await;
    let err = guest
        .change_password(change(PASSWORD, "new password"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_session_of_the_account() {
    let server = TestServer::start().await;
    let first = register(&server, "ann", PASSWORD).await.unwrap();
    let mut tokens = vec![first.token];
    for _ in 0..2 {
        tokens.push(sign_in(&server, None, "ann", PASSWORD).await.unwrap().token);
    }
    let (mut bob, _) = server.join("bob").await;
    // Streams of the account's sessions end with them: a signed-out device stops reading.
    let mut following = server.with_token(&tokens[0]).await;
    let mut feed = within(following.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut feed).await;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(post("")).await.unwrap();
    let mut native = server.with_token(&tokens[2]).await;
    let mut broadcast = within(native.broadcast(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    let mut caller = server.with_token(&tokens[1]).await;
    let ended = caller
        .sign_out_everywhere(SignOutEverywhereRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ended.sessions_ended, 3);
    let cut = ended_with(&mut feed).await;
    assert_eq!(cut.code(), Code::Unauthenticated, "{cut:?}");
    assert!(cut.message().contains("signed out"), "{cut:?}");
    let cut = ended_with(&mut broadcast).await;
    assert_eq!(cut.code(), Code::Unauthenticated, "{cut:?}");
    drop(tx);
    for token in &tokens {
        let mut client = server.with_token(token).await;
        let err = client.send_message(post("anyone?")).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
    }
    // Nobody else was touched, and the name is still the account's.
    bob.send_message(post("still here")).await.unwrap();
    let err = server
        .client()
        .await
        .join(JoinRequest {
            username: "ann".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    sign_in(&server, None, "ann", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn live_sessions_are_capped() {
    let server = TestServer::start_with(chat_server::Config {
        max_sessions: 2,
        ..chat_server::Config::for_tests()
    })
    .await;
    let (mut ann, _) = server.join("ann").await;
    register(&server, "bob", PASSWORD).await.unwrap();
    let mut client = server.client().await;
    let err = client
        .join(JoinRequest {
            username: "carol".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message()
            .starts_with("the server already has 2 sessions, the most it allows"),
        "{}",
        err.message()
    );
    assert!(retry_after_ms(&err) > 0);
    let err = sign_in(&server, None, "bob", PASSWORD).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let err = register(&server, "dave", PASSWORD).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);

    // A place frees up; the refused registration left nothing behind, so dave is free.
    ann.leave(LeaveRequest {}).await.unwrap();
    server.join("dave").await;
}

/// Reads `stream` until it fails, and returns how.
async fn ended_with<T>(stream: &mut tonic::Streaming<T>) -> Status {
    within(async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The bytes a hex token stands for, if it is hex.
fn hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
