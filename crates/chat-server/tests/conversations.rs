//! Edits, deletes, reactions and replies: who may do each, what subscribers see live and
//! on resume, what History returns afterwards, what the original clients see, and that a
//! deleted message's text leaves the database file.
mod common;

use chat_proto::{
    change::Kind, chat_event::Event, DeleteMessageRequest, EditMessageRequest, HistoryRequest,
    MessageRequest, MessageResponse, ReactRequest, RegisterRequest,
};
use common::{next_event, next_message, req, subscribe_req, welcome, within, SignedIn, TestServer};
use tonic::Code;

const PASSWORD: &str = "correct horse battery";

async fn register(server: &TestServer, name: &str) -> SignedIn {
    let request = RegisterRequest {
        username: name.into(),
        password: PASSWORD.into(),
    };
    let joined = within(server.client().await.register(request))
        .await
        .unwrap()
        .into_inner();
    server.with_token(&joined.token).await
}

async fn post(client: &mut SignedIn, text: &str) -> MessageResponse {
    within(client.send_message(MessageRequest {
        message: text.into(),
        ..Default::default()
    }))
    .await
    .unwrap()
    .into_inner()
}

fn edit(id: u64, text: &str) -> EditMessageRequest {
    EditMessageRequest {
        room: String::new(),
        id,
        text: text.into(),
    }
}

fn delete(id: u64) -> DeleteMessageRequest {
    DeleteMessageRequest {
        room: String::new(),
        id,
    }
}

fn react(id: u64, emoji: &str) -> ReactRequest {
    ReactRequest {
        room: String::new(),
        id,
        emoji: emoji.into(),
    }
}

async fn history(server: &TestServer) -> Vec<MessageResponse> {
    let request = HistoryRequest {
        room: "general".into(),
        before_id: 0,
        limit: 0,
    };
    within(server.client().await.history(request))
        .await
        .unwrap()
        .into_inner()
        .messages
}

/// The next change event, skipping presence and heartbeats.
async fn next_change(stream: &mut tonic::Streaming<chat_proto::ChatEvent>) -> MessageResponse {
    loop {
        match next_event(stream).await {
            Event::Change(change) => return change,
            Event::Heartbeat(_) | Event::Presence(_) | Event::Typing(_) => continue,
            other => panic!("expected a change, got {other:?}"),
        }
    }
}

fn refused<T: std::fmt::Debug>(answer: Result<T, tonic::Status>) -> tonic::Status {
    answer.unwrap_err()
}

#[tokio::test]
async fn only_the_author_edits_or_deletes_and_history_shows_the_result() {
    let server = TestServer::start().await;
    let mut ann = register(&server, "ann").await;
    let mut bob = register(&server, "bob").await;
    let (mut gus, _) = server.join("gus").await;
    let first = post(&mut ann, "helo").await;
    let guests = post(&mut gus, "a guest's line").await;

    let status = refused(within(bob.edit_message(edit(first.id, "mine now"))).await);
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("only its author"), "{status:?}");
    let status = refused(within(bob.delete_message(delete(first.id))).await);
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // Guests change nothing, not even their own lines; token-less callers neither.
    let status = refused(within(gus.edit_message(edit(guests.id, "x"))).await);
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let status = refused(within(server.client().await.delete_message(delete(first.id))).await);
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    // A guest's message cannot be changed by an account either.
    let status = refused(within(ann.delete_message(delete(guests.id))).await);
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = refused(within(ann.edit_message(edit(999, "x"))).await);
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = refused(within(ann.edit_message(edit(first.id, "  "))).await);
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let edited = within(ann.edit_message(edit(first.id, "hello")))
        .await
        .unwrap()
        .into_inner();
    let change = edited.change.expect("an edit is a change event");
    assert_eq!((change.kind(), change.target_id), (Kind::Edit, first.id));
    assert!(edited.id > guests.id, "a change takes the next id");
    // A change event's id is not a message: it cannot itself be edited.
    let status = refused(within(ann.edit_message(edit(edited.id, "x"))).await);
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let shown = history(&server).await;
    assert_eq!(
        shown.len(),
        2,
        "change events are not in History: {shown:?}"
    );
    assert_eq!(
        (shown[0].text.as_str(), shown[0].message.as_str()),
        ("hello", "[ann]: hello")
    );
    assert_eq!(shown[0].edited_at_ms, edited.sent_at_ms);

    within(ann.delete_message(delete(first.id))).await.unwrap();
    // Twice is fine.
    within(ann.delete_message(delete(first.id))).await.unwrap();
    let status = refused(within(ann.edit_message(edit(first.id, "back"))).await);
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let shown = history(&server).await;
    assert!(shown[0].deleted, "{shown:?}");
    assert_eq!(
        (shown[0].text.as_str(), shown[0].message.as_str()),
        ("", "")
    );
    assert_eq!(shown[1].text, "a guest's line");
}

#[tokio::test]
async fn changes_reach_subscribers_live_and_on_resume() {
    let server = TestServer::start().await;
    let mut ann = register(&server, "ann").await;
    let mut watcher = within(server.client().await.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut watcher).await;
    let first = post(&mut ann, "helo").await;
    within(ann.edit_message(edit(first.id, "hello")))
        .await
        .unwrap();
    within(ann.delete_message(delete(first.id))).await.unwrap();

    assert_eq!(next_message(&mut watcher).await.id, first.id);
    let edited = next_change(&mut watcher).await;
    assert_eq!((edited.text.as_str(), edited.id), ("hello", first.id + 1));
    let deleted = next_change(&mut watcher).await;
    let change = deleted.change.unwrap();
    assert_eq!((change.kind(), change.target_id), (Kind::Delete, first.id));

    // A resume after the message replays the changes, from the store: the deleted
    // message's text is gone from its edit too.
    let mut resumed = within(ann.subscribe(subscribe_req("general", first.id)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut resumed).await;
    let edit_again = next_change(&mut resumed).await;
    assert_eq!(edit_again.id, first.id + 1);
    assert_eq!(edit_again.change.unwrap().kind(), Kind::Edit);
    assert_eq!(next_change(&mut resumed).await.id, first.id + 2);
    let store = server.hub.store();
    let replay = store.after("general", 0, 10, 1 << 20).await.unwrap();
    assert_eq!(replay.len(), 3);
    assert!(replay.iter().all(|m| !m.text.contains("hel")), "{replay:?}");
}

#[tokio::test]
async fn the_original_clients_see_messages_only_and_the_new_text_in_history() {
    let server = TestServer::start().await;
    let mut ann = register(&server, "ann").await;
    let mut seed = server.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(req("carl", "", "")).await.unwrap();
    let mut lines = within(seed.broadcast(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    // Join first, so the broadcast stream is open before ann posts.
    tx.send(req("carl", "", "hi all")).await.unwrap();
    let own = within(lines.message()).await.unwrap().unwrap();
    assert_eq!(own.message, "[carl]: hi all");

    let first = post(&mut ann, "helo").await;
    within(ann.edit_message(edit(first.id, "hello")))
        .await
        .unwrap();
    within(ann.react(react(first.id, "👍"))).await.unwrap();
    let second = post(&mut ann, "next").await;
    let got = within(lines.message()).await.unwrap().unwrap();
    assert_eq!((got.id, got.message.as_str()), (first.id, "[ann]: helo"));
    let got = within(lines.message()).await.unwrap().unwrap();
    assert_eq!(
        (got.id, got.message.as_str()),
        (second.id, "[ann]: next"),
        "the edit and the reaction never reach a Broadcast stream"
    );
    let shown = history(&server).await;
    let edited = shown.iter().find(|m| m.id == first.id).unwrap();
    assert_eq!(edited.message, "[ann]: hello");
}

#[tokio::test]
async fn reactions_toggle_list_who_and_share_the_message_allowance() {
    let server = TestServer::start_with(chat_server::Config {
        max_messages_per_sec: 1,
        message_burst: 6,
        ..chat_server::Config::for_tests()
    })
    .await;
    let mut ann = register(&server, "ann").await;
    let (mut gus, _) = server.join("gus").await;
    let first = post(&mut ann, "hello").await;
    let on = |r: Result<tonic::Response<chat_proto::ReactResponse>, tonic::Status>| {
        r.unwrap().into_inner().on
    };
    assert!(on(within(ann.react(react(first.id, "👍"))).await));
    assert!(on(within(gus.react(react(first.id, "👍"))).await));
    assert!(on(within(gus.react(react(first.id, "🎉"))).await));
    let shown = history(&server).await;
    let who: Vec<(&str, Vec<&str>)> = shown[0]
        .reactions
        .iter()
        .map(|r| {
            (
                r.emoji.as_str(),
                r.usernames.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(who, [("👍", vec!["ann", "gus"]), ("🎉", vec!["gus"])]);
    assert!(
        !on(within(ann.react(react(first.id, "👍"))).await),
        "a second click takes it back"
    );
    assert_eq!(history(&server).await[0].reactions[0].usernames, ["gus"]);

    let status = within(ann.react(react(first.id, "hello")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = within(ann.react(react(999, "👍"))).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = within(server.client().await.react(react(first.id, "👍")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    // ann has spent 3 of 6 (post, on, off): the fourth reaction after that is refused.
    for emoji in ["😂", "😮", "👀"] {
        within(ann.react(react(first.id, emoji))).await.unwrap();
    }
    let status = within(ann.react(react(first.id, "❤️"))).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}

#[tokio::test]
async fn replies_quote_their_original_in_the_same_room() {
    let server = TestServer::start().await;
    server.create_rooms(&["other"]).await;
    let mut ann = register(&server, "ann").await;
    let mut bob = register(&server, "bob").await;
    let original = post(&mut ann, "lunch at noon?\nsecond line").await;
    let reply = within(bob.send_message(MessageRequest {
        message: "yes".into(),
        reply_to: original.id,
        ..Default::default()
    }))
    .await
    .unwrap()
    .into_inner();
    assert_eq!(reply.reply_to, original.id);
    let quote = reply.quote.unwrap();
    assert_eq!(
        (quote.username.as_str(), quote.text.as_str()),
        ("ann", "lunch at noon?")
    );
    for (room, id) in [("", 999), ("other", original.id)] {
        let status = within(bob.send_message(MessageRequest {
            message: "yes".into(),
            room: room.into(),
            reply_to: id,
            ..Default::default()
        }))
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    within(ann.delete_message(delete(original.id)))
        .await
        .unwrap();
    let shown = history(&server).await;
    let quote = shown[1].quote.clone().unwrap();
    assert!(quote.deleted && quote.text.is_empty(), "{quote:?}");
}

#[tokio::test]
async fn a_deleted_message_text_leaves_the_database_file() {
    let server = TestServer::start().await;
    let mut ann = register(&server, "ann").await;
    let secret = "xyzzy-first-secret-4711";
    let edited = "plugh-edited-secret-0815";
    // Between other messages, so the page it sits in stays and its freed space with it
    // (SQLite's secure_delete must zero it).
    let filler = "f".repeat(300);
    for _ in 0..5 {
        post(&mut ann, &filler).await;
    }
    let first = post(&mut ann, &format!("{secret} {filler}")).await;
    for _ in 0..5 {
        post(&mut ann, &filler).await;
    }
    within(ann.edit_message(edit(first.id, edited)))
        .await
        .unwrap();
    within(ann.delete_message(delete(first.id))).await.unwrap();
    post(&mut ann, "still here").await;
    // Stopping the server closes the last connection, which checkpoints the log into
    // the database file and removes it.
    let TestServer {
        hub,
        shutdown,
        task,
        db,
        ..
    } = server;
    shutdown.trigger();
    within(task).await.unwrap().unwrap();
    hub.close().await;
    drop(hub);
    drop((ann,));
    let bytes = std::fs::read(&db.0).unwrap();
    let has = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(has("still here"), "the file holds the messages");
    assert!(
        !has(secret) && !has(edited),
        "deleted text is gone from the file"
    );
    let wal = std::fs::read(format!("{}-wal", db.0.display())).unwrap_or_default();
    let wal_has = |needle: &str| wal.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(!wal_has(secret) && !wal_has(edited), "and from the log");
}
