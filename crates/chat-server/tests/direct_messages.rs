//! Direct messages: the two accounts of a conversation read, post, subscribe, page back,
//! edit, react, reply, type and search in it, on SQLite and on PostgreSQL, across
//! servers, and after a restart;
//! anyone else (a third account, a guest, a token-less client) is answered by every RPC
//! exactly as for a conversation with nobody, and ListRooms shows it to the two only.
mod common;

use chat_proto::{
    chat_event::Event, chat_service_client::ChatServiceClient, DeleteMessageRequest,
    EditMessageRequest, HistoryRequest, ListRoomsRequest, MessageRequest, MessageResponse,
    ReactRequest, RegisterRequest, SearchRequest, TypingRequest,
};
use common::{next_event, next_message, pg, subscribe_req, welcome, within, TestServer};
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor},
    transport::Channel,
    Code, Status,
};

const PASSWORD: &str = "correct horse battery";

/// A client with a session's token, or none (a token-less client).
#[derive(Clone)]
struct Caller(Option<MetadataValue<Ascii>>);

impl Interceptor for Caller {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(token) = &self.0 {
            req.metadata_mut().insert("authorization", token.clone());
        }
        Ok(req)
    }
}

type Client = ChatServiceClient<InterceptedService<Channel, Caller>>;

async fn client(server: &TestServer, token: Option<&str>) -> Client {
    let caller = Caller(token.map(|t| format!("Bearer {t}").parse().unwrap()));
    ChatServiceClient::with_interceptor(server.channel().await, caller)
}

async fn register(server: &TestServer, name: &str) -> Client {
    let joined = within(server.client().await.register(RegisterRequest {
        username: name.into(),
        password: PASSWORD.into(),
    }))
    .await
    .unwrap()
    .into_inner();
    client(server, Some(&joined.token)).await
}

async fn guest(server: &TestServer, name: &str) -> Client {
    let (_, token) = server.join(name).await;
    client(server, Some(&token)).await
}

fn to(room: &str, text: &str) -> MessageRequest {
    MessageRequest {
        room: room.into(),
        message: text.into(),
        ..Default::default()
    }
}

async fn post(client: &mut Client, room: &str, text: &str) -> MessageResponse {
    within(client.send_message(to(room, text)))
        .await
        .unwrap()
        .into_inner()
}

async fn history(client: &mut Client, room: &str) -> Result<Vec<MessageResponse>, Status> {
    let page = within(client.history(HistoryRequest {
        room: room.into(),
        before_id: 0,
        limit: 100,
    }))
    .await?;
    Ok(page.into_inner().messages)
}

fn texts(messages: &[MessageResponse]) -> Vec<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

/// (name, last_id) of the caller's conversations, and the rooms' names and total.
async fn listed(client: &mut Client) -> (Vec<(String, u64)>, Vec<String>, u32) {
    let list = within(client.list_rooms(ListRoomsRequest { limit: 0 }))
        .await
        .unwrap()
        .into_inner();
    (
        list.direct
            .into_iter()
            .map(|r| (r.name, r.last_id))
            .collect(),
        list.rooms.into_iter().map(|r| r.name).collect(),
        list.total,
    )
}

/// What the two of a conversation can do in it, on whichever store `server` has.
async fn the_two_use_their_conversation(server: &TestServer) {
    let mut alice = register(server, "alice").await;
    let mut bob = register(server, "Bob").await;
    let mut carol = register(server, "carol").await;

    // Bob waits in his conversation with alice before it has a message: named by him.
    let mut bobs_feed = within(bob.subscribe(subscribe_req("@alice", 0)))
        .await
        .unwrap()
        .into_inner();
    let w = welcome(&mut bobs_feed).await;
    assert_eq!((w.room.as_str(), w.last_id), ("@Bob@alice", 0));

    // Alice names him in any case; the conversation keeps the name he registered.
    let first = post(&mut alice, "@bob", "hi bob, just us").await;
    assert_eq!(first.room, "@Bob@alice");
    let live = next_message(&mut bobs_feed).await;
    assert_eq!((live.id, live.text.as_str()), (first.id, "hi bob, just us"));

    // A reply, a typing notice, an edit and a reaction, all live for the other.
    let reply = within(bob.send_message(MessageRequest {
        reply_to: first.id,
        ..to("@alice", "hello alice")
    }))
    .await
    .unwrap()
    .into_inner();
    assert_eq!(next_message(&mut bobs_feed).await.id, reply.id);
    within(alice.typing(TypingRequest {
        room: "@Bob".into(),
    }))
    .await
    .unwrap();
    match next_event(&mut bobs_feed).await {
        Event::Typing(t) => assert_eq!(t.username, "alice"),
        other => panic!("expected alice typing, got {other:?}"),
    }
    within(alice.edit_message(EditMessageRequest {
        room: "@bob".into(),
        id: first.id,
        text: "hi bob (edited)".into(),
    }))
    .await
    .unwrap();
    within(bob.react(ReactRequest {
        room: "@alice".into(),
        id: first.id,
        emoji: "👍".into(),
    }))
    .await
    .unwrap();
    for kind in ["edit", "react"] {
        match next_event(&mut bobs_feed).await {
            Event::Change(c) => assert_eq!(c.change.unwrap().target_id, first.id, "{kind}"),
            other => panic!("expected the {kind}, got {other:?}"),
        }
    }
    // The author rule is the rooms' rule.
    let err = within(bob.delete_message(DeleteMessageRequest {
        room: "@alice".into(),
        id: first.id,
    }))
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Both page back through the same conversation.
    for (who, room) in [(&mut alice, "@Bob"), (&mut bob, "@alice")] {
        let page = history(who, room).await.unwrap();
        assert_eq!(texts(&page), ["hi bob (edited)", "hello alice"], "{room}");
        assert_eq!(page[1].quote.as_ref().unwrap().text, "hi bob (edited)");
        assert_eq!(page[0].reactions[0].usernames, ["Bob"]);
    }

    // Both find it by search; nobody else's search reaches it (see below).
    for (who, room) in [(&mut alice, "@bob"), (&mut bob, "@alice")] {
        let found = within(who.search(SearchRequest {
            room: room.into(),
            query: "edited".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
        assert_eq!(found.hits.len(), 1, "{room}");
        assert_eq!(found.hits[0].message.as_ref().unwrap().id, first.id);
    }

    // Listed for the two, each by the other's name, and for nobody else.
    let (alices, rooms, total) = listed(&mut alice).await;
    assert_eq!(alices, [("@Bob".to_owned(), reply.id + 2)]);
    assert_eq!((rooms, total), (vec!["general".to_owned()], 1));
    assert_eq!(
        listed(&mut bob).await.0,
        [("@alice".to_owned(), reply.id + 2)]
    );
    assert_eq!(
        listed(&mut carol).await,
        (vec![], vec!["general".to_owned()], 1)
    );

    // `@bob` from carol is carol's own conversation with him, empty, and hers alone.
    assert!(history(&mut carol, "@bob").await.unwrap().is_empty());
    post(&mut carol, "@bob", "carol here").await;
    assert_eq!(
        texts(&history(&mut carol, "@bob").await.unwrap()),
        ["carol here"]
    );
    assert_eq!(texts(&history(&mut alice, "@bob").await.unwrap()).len(), 2);
    let bobs: Vec<String> = listed(&mut bob).await.0.into_iter().map(|c| c.0).collect();
    assert_eq!(bobs, ["@carol", "@alice"], "newest activity first");
    assert_eq!(listed(&mut alice).await.0.len(), 1);
    // Nothing of it reached bob's stream of the other conversation.
    post(&mut alice, "@bob", "still just us").await;
    assert_eq!(next_message(&mut bobs_feed).await.text, "still just us");
}

#[tokio::test]
async fn the_two_read_post_subscribe_page_back_edit_react_reply_and_type() {
    let server = TestServer::start().await;
    the_two_use_their_conversation(&server).await;
}

#[tokio::test]
async fn the_same_on_postgresql() {
    let db = pg::database();
    let server = TestServer::start_on(&db).await;
    the_two_use_their_conversation(&server).await;
}

/// Every room-taking RPC's answer to `client` for `room`, as (code, message).
async fn answers(client: &mut Client, room: &str) -> Vec<(&'static str, Code, String)> {
    let of = |r: Result<(), Status>| match r {
        Ok(()) => (Code::Ok, String::new()),
        Err(s) => (s.code(), s.message().to_owned()),
    };
    // Those that never create a room first, so a room asked for is still missing.
    let mut out = vec![("History", of(history(client, room).await.map(drop)))];
    let searched = within(client.search(SearchRequest {
        room: room.into(),
        query: "private".into(),
        ..Default::default()
    }));
    out.push(("Search", of(searched.await.map(drop))));
    let edited = within(client.edit_message(EditMessageRequest {
        room: room.into(),
        id: 1,
        text: "x".into(),
    }));
    out.push(("EditMessage", of(edited.await.map(drop))));
    let deleted = within(client.delete_message(DeleteMessageRequest {
        room: room.into(),
        id: 1,
    }));
    out.push(("DeleteMessage", of(deleted.await.map(drop))));
    let reacted = within(client.react(ReactRequest {
        room: room.into(),
        id: 1,
        emoji: "👍".into(),
    }));
    out.push(("React", of(reacted.await.map(drop))));
    let typed = within(client.typing(TypingRequest { room: room.into() }));
    out.push(("Typing", of(typed.await.map(drop))));
    let sent = within(client.send_message(to(room, "psst")))
        .await
        .map(drop);
    out.push(("SendMessage", of(sent)));
    let subscribed = match within(client.subscribe(subscribe_req(room, 0))).await {
        Ok(stream) => {
            let mut stream = stream.into_inner();
            within(stream.message()).await.map(drop)
        }
        Err(status) => Err(status),
    };
    out.push(("Subscribe", of(subscribed)));
    let first = futures::stream::iter([MessageRequest {
        username: "whoever".into(),
        ..to(room, "psst")
    }]);
    let broadcast = match within(client.broadcast(first)).await {
        Ok(stream) => within(stream.into_inner().message()).await.map(drop),
        Err(status) => Err(status),
    };
    out.push(("Broadcast", of(broadcast)));
    out.into_iter().map(|(rpc, (c, m))| (rpc, c, m)).collect()
}

fn hidden(asked: &str) -> String {
    format!("there is no room named {asked:?}; @NAME is your conversation with the account NAME, and only registered accounts (signed in) have conversations")
}

#[tokio::test]
async fn anyone_else_is_answered_as_for_a_conversation_with_nobody() {
    let server = TestServer::start().await;
    let mut alice = register(&server, "alice").await;
    let mut bob = register(&server, "bob").await;
    post(&mut alice, "@bob", "private").await;
    post(&mut bob, "@alice", "private too").await;
    let mut carol = register(&server, "carol").await;
    let mut gus = guest(&server, "gus").await;
    let mut nobody = client(&server, None).await;

    // A conversation with nobody: an account asking for a name no account has.
    let with_nobody = answers(&mut alice, "@nobody").await;
    for (rpc, code, message) in &with_nobody {
        assert_eq!(
            (*code, message.as_str()),
            (Code::NotFound, &*hidden("@nobody")),
            "{rpc}"
        );
    }
    // A guest's name is no account's either.
    assert_eq!(
        answers(&mut alice, "@gus").await,
        same_as(&with_nobody, "@gus")
    );

    // Carol cannot name theirs: the kept key, either way round, is no name.
    for asked in ["@alice@bob", "@bob@alice"] {
        assert_eq!(
            answers(&mut carol, asked).await,
            same_as(&with_nobody, asked)
        );
    }
    // A guest and a token-less client get for alice's name what they get for nobody's,
    // which is, for each RPC, what they get for a room that does not exist.
    for who in [&mut gus, &mut nobody] {
        let for_alice = answers(who, "@alice").await;
        assert_eq!(for_alice, same_as(&answers(who, "@nobody").await, "@alice"));
        let for_missing_room = answers(who, "no-such-room").await;
        for ((rpc, code, message), (_, room_code, _)) in for_alice.iter().zip(&for_missing_room) {
            match *rpc {
                // These create a room for someone signed in, and read an empty one.
                "SendMessage" | "Subscribe" | "Broadcast" | "History" | "Search" => {
                    assert_eq!(*code, Code::NotFound, "{rpc}: {message}");
                    assert_eq!(message, &hidden("@alice"), "{rpc}");
                }
                _ => assert_eq!(code, room_code, "{rpc}: {message}"),
            }
        }
    }
    // Nothing was posted by any of it, and nothing of it is listed for them (the guest
    // made the room `no-such-room`, and only that).
    assert_eq!(
        texts(&history(&mut alice, "@bob").await.unwrap()),
        ["private", "private too"]
    );
    let rooms = vec!["no-such-room".to_owned(), "general".to_owned()];
    for who in [&mut carol, &mut gus, &mut nobody] {
        assert_eq!(listed(who).await, (vec![], rooms.clone(), 2));
    }
}

/// `answers` with the name asked for put in place of the one asked in `like`.
fn same_as(
    like: &[(&'static str, Code, String)],
    asked: &str,
) -> Vec<(&'static str, Code, String)> {
    like.iter()
        .map(|(rpc, code, message)| {
            let message = match *code {
                Code::NotFound => hidden(asked),
                _ => message.clone(),
            };
            (*rpc, *code, message)
        })
        .collect()
}

#[tokio::test]
async fn a_conversation_outlives_a_restart() {
    let first = TestServer::start().await;
    let config = chat_server::Config {
        db: first.db.0.clone().into(),
        ..chat_server::Config::for_tests()
    };
    let mut alice = register(&first, "alice").await;
    register(&first, "bob").await;
    let sent = post(&mut alice, "@bob", "kept").await;
    first.shutdown.trigger();
    let TestServer { task, db, .. } = first;
    within(task).await.unwrap().unwrap();

    let again = TestServer::start_with(config).await;
    let mut bob = client(&again, Some(&sign_in(&again, "bob").await)).await;
    assert_eq!(texts(&history(&mut bob, "@alice").await.unwrap()), ["kept"]);
    assert_eq!(listed(&mut bob).await.0, [("@alice".to_owned(), sent.id)]);
    let next = post(&mut bob, "@alice", "and on").await;
    assert_eq!(next.id, sent.id + 1);
    drop(again);
    drop(db);
}

async fn sign_in(server: &TestServer, name: &str) -> String {
    within(server.client().await.sign_in(chat_proto::SignInRequest {
        username: name.into(),
        password: PASSWORD.into(),
    }))
    .await
    .unwrap()
    .into_inner()
    .token
}

#[tokio::test]
async fn conversations_have_a_cap_of_their_own() {
    let server = TestServer::start_with(chat_server::Config {
        max_rooms: 1,
        max_conversations: 1,
        ..chat_server::Config::for_tests()
    })
    .await;
    let mut alice = register(&server, "alice").await;
    register(&server, "bob").await;
    register(&server, "carol").await;
    // The rooms are full (general), yet a conversation starts.
    post(&mut alice, "@bob", "hi").await;
    let err = within(alice.send_message(to("@carol", "hi")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("1 conversations"),
        "{}",
        err.message()
    );
    let err = within(alice.send_message(to("plans", "hi")))
        .await
        .unwrap_err();
    assert!(err.message().contains("1 rooms"), "{}", err.message());
}

#[tokio::test]
async fn a_conversation_between_people_on_different_servers() {
    let c = common::cluster::cluster(3).await;
    let [a, b, third] = [&c.servers[0], &c.servers[1], &c.servers[2]];
    let mut alice = register(a, "alice").await;
    let mut bob = register(b, "bob").await;
    let mut carol = register(third, "carol").await;
    // Bob opens theirs on B before B has heard of it; alice posts through A.
    let mut bobs_feed = within(bob.subscribe(subscribe_req("@alice", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut bobs_feed).await;
    let first = post(&mut alice, "@bob", "across servers").await;
    let live = next_message(&mut bobs_feed).await;
    assert_eq!((live.id, live.room.as_str()), (first.id, "@alice@bob"));
    let answer = post(&mut bob, "@alice", "got it").await;
    assert_eq!(
        texts(&history(&mut alice, "@bob").await.unwrap()),
        ["across servers", "got it"]
    );
    assert_eq!(listed(&mut bob).await.0, [("@alice".to_owned(), answer.id)]);
    // On the third server carol has nothing of it, and her `@bob` is her own.
    let (direct, rooms, _) = listed(&mut carol).await;
    assert_eq!(direct, []);
    assert!(rooms.iter().all(|r| !r.starts_with('@')), "{rooms:?}");
    assert!(history(&mut carol, "@bob").await.unwrap().is_empty());
}
