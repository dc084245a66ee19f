//! Presence (who is in the room, from their open streams) and typing (ephemeral).
mod common;

use chat_proto::{chat_event::Event, HistoryRequest, Presence, TypingRequest};
use common::{next_event, subscribe_req, welcome, within, TestServer};
use tonic::Code;

/// The next presence event, skipping heartbeats.
async fn next_presence(stream: &mut tonic::Streaming<chat_proto::ChatEvent>) -> Presence {
    loop {
        match next_event(stream).await {
            Event::Presence(p) => return p,
            Event::Heartbeat(_) => continue,
            other => panic!("expected presence, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn members_join_and_leave_with_their_streams() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("ann").await;
    let (mut bob, _) = server.join("bob").await;

    let mut ann_feed = ann
        .subscribe(subscribe_req("", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(welcome(&mut ann_feed).await.members, ["ann"]);

    let mut bob_feed = bob
        .subscribe(subscribe_req("", 0))
        .await
        .unwrap()
        .into_inner();
    let bob_welcome = welcome(&mut bob_feed).await;
    assert_eq!(bob_welcome.members, ["ann", "bob"]);
    assert_eq!(bob_welcome.member_count, 2);
    // Presence carries the change and the count, never the list.
    let joined = next_presence(&mut ann_feed).await;
    assert_eq!((joined.username.as_str(), joined.joined), ("bob", true));
    assert_eq!((joined.members.len(), joined.member_count), (0, 2));

    // A second stream of bob's is no news; closing one of two is not leaving.
    let mut bob_again = bob
        .subscribe(subscribe_req("", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut bob_again).await;
    drop(bob_again);
    // Anonymous subscribers watch but are not members.
    let mut lurker = server.client().await;
    let mut lurking = lurker
        .subscribe(subscribe_req("", 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(welcome(&mut lurking).await.members, ["ann", "bob"]);

    // bob's client goes away (its connection closes): he leaves.
    drop(bob_feed);
    drop(bob);
    let left = next_presence(&mut ann_feed).await;
    assert_eq!((left.username.as_str(), left.joined), ("bob", false));
    assert_eq!((left.members.len(), left.member_count), (0, 1));
    assert_eq!(next_presence(&mut lurking).await.member_count, 1);
}

#[tokio::test]
async fn a_grpc_web_tab_that_closes_leaves() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("ann").await;
    let (_bob, bob_token) = server.join("bob").await;
    let mut ann_feed = ann
        .subscribe(subscribe_req("", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut ann_feed).await;

    let mut tab = server
        .web()
        .call_with_token("Subscribe", &subscribe_req("", 0), &bob_token)
        .await;
    let first: chat_proto::ChatEvent = within(tab.next()).await.unwrap();
    assert!(matches!(first.event, Some(Event::Welcome(_))));
    assert!(next_presence(&mut ann_feed).await.joined);
    drop(tab); // the browser closes the tab: its TCP connection goes
    let left = next_presence(&mut ann_feed).await;
    assert_eq!((left.username.as_str(), left.joined), ("bob", false));
}

#[tokio::test]
async fn typing_reaches_the_room_is_limited_and_never_stored() {
    let server = TestServer::start().await;
    let (mut ann, _) = server.join("ann").await;
    let (mut bob, _) = server.join("bob").await;
    let mut ann_feed = ann
        .subscribe(subscribe_req("", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut ann_feed).await;

    bob.typing(TypingRequest {
        room: "general".into(),
    })
    .await
    .unwrap();
    let typing = loop {
        match next_event(&mut ann_feed).await {
            Event::Typing(t) => break t,
            Event::Presence(_) | Event::Heartbeat(_) => continue,
            other => panic!("expected typing, got {other:?}"),
        }
    };
    assert_eq!(typing.username, "bob");
    assert!(typing.expires_ms >= 1000);

    // A burst is allowed, then the session is told to slow down; others are unaffected.
    let mut refused = None;
    for _ in 0..20 {
        if let Err(err) = bob
            .typing(TypingRequest {
                room: "general".into(),
            })
            .await
        {
            refused = Some(err);
            break;
        }
    }
    let err = refused.expect("typing is rate-limited");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("try again in"), "{}", err.message());
    ann.typing(TypingRequest {
        room: "general".into(),
    })
    .await
    .unwrap();

    let mut anonymous = server.client().await;
    let err = anonymous
        .typing(TypingRequest {
            room: "general".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = ann
        .typing(TypingRequest {
            room: "nowhere".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let history = anonymous
        .history(HistoryRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(history.messages.is_empty(), "typing is never stored");
}
