//! Three servers on one PostgreSQL and one NATS, each with its own clients, behaving as
//! one chat: every message reaches every subscriber once and in id order whichever server
//! it was posted through, presence is the union over servers, typing crosses, and a
//! restart of NATS loses nothing (what was missed is read from the database); edits,
//! reactions and replies made through one server apply to messages posted through another.
mod common;

use std::{collections::HashMap, time::Duration};

use chat_proto::{
    change::Kind, chat_event::Event, chat_service_client::ChatServiceClient, ChatEvent,
    EditMessageRequest, HistoryRequest, MessageRequest, MessageResponse, ReactRequest,
    RegisterRequest, TypingRequest,
};
use common::{cluster::cluster, *};
use tokio::time::{sleep, timeout, Instant};
use tonic::{transport::Channel, Streaming};

/// The next `n` chat messages of a native stream, whatever else comes between.
async fn messages(stream: &mut Streaming<ChatEvent>, n: usize) -> Vec<MessageResponse> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(next_message(stream).await);
    }
    out
}

fn assert_once_in_order(got: &[MessageResponse], first: u64, last: u64, who: &str) {
    let ids: Vec<u64> = got.iter().map(|m| m.id).collect();
    let want: Vec<u64> = (first..=last).collect();
    assert_eq!(ids, want, "{who}: every id once, in order");
}

/// `general`'s newest messages through `client`, at most `limit` (0: the server's page).
async fn general_history(
    mut client: ChatServiceClient<Channel>,
    limit: u32,
) -> Vec<MessageResponse> {
    let request = HistoryRequest {
        room: "general".into(),
        before_id: 0,
        limit,
    };
    within(client.history(request))
        .await
        .unwrap()
        .into_inner()
        .messages
}

/// Waits for the named presence change on a native stream, skipping everything else.
async fn presence(stream: &mut Streaming<ChatEvent>, name: &str, joined: bool) {
    within(async {
        loop {
            if let Event::Presence(p) = next_event(stream).await {
                if p.username == name && p.joined == joined {
                    return;
                }
            }
        }
    })
    .await
}

#[tokio::test]
async fn messages_from_every_server_reach_every_subscriber_once_in_order() {
    let c = cluster(3).await;
    let [a, b, cc] = [&c.servers[0], &c.servers[1], &c.servers[2]];

    // Native on A and C, grpc-web on B, all live in general before anything is posted.
    let mut on_a = within(a.client().await.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap()
        .into_inner();
    let mut on_c = within(cc.client().await.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(welcome(&mut on_a).await.last_id, 0);
    welcome(&mut on_c).await;
    let mut on_b = b
        .web()
        .call("Subscribe", &subscribe_req("general", 0))
        .await;
    assert!(matches!(
        on_b.next::<ChatEvent>().await.unwrap().event,
        Some(Event::Welcome(_))
    ));

    // Three posters, one per server, at once.
    const EACH: u64 = 40;
    let posters: Vec<_> = c
        .servers
        .iter()
        .enumerate()
        .map(|(i, server)| {
            let addr = server.url();
            tokio::spawn(async move {
                let channel = tonic::transport::Channel::from_shared(addr)
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                let mut client = chat_proto::chat_service_client::ChatServiceClient::new(channel);
                let mut acked = Vec::new();
                for n in 0..EACH {
                    let sent = within(client.send_message(req(
                        &format!("poster{i}"),
                        "general",
                        &format!("{i}-{n}"),
                    )))
                    .await
                    .unwrap()
                    .into_inner();
                    acked.push(sent.id);
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for poster in posters {
        acked.extend(poster.await.unwrap());
    }
    let total = 3 * EACH;
    acked.sort();
    assert_eq!(
        acked,
        (1..=total).collect::<Vec<_>>(),
        "ids from the database, gapless"
    );

    let got_a = messages(&mut on_a, total as usize).await;
    let got_c = messages(&mut on_c, total as usize).await;
    let mut got_b = Vec::new();
    while got_b.len() < total as usize {
        let event = within(on_b.next::<ChatEvent>())
            .await
            .expect("B's stream open");
        if let Some(Event::Message(m)) = event.event {
            got_b.push(m);
        }
    }
    assert_once_in_order(&got_a, 1, total, "native on A");
    assert_once_in_order(&got_b, 1, total, "grpc-web on B");
    assert_once_in_order(&got_c, 1, total, "native on C");
    assert_eq!(got_a, got_c, "the same messages everywhere");
    assert_eq!(got_a, got_b);

    // Each poster's own messages in the order it sent them.
    let mut last_n: HashMap<String, i64> = HashMap::new();
    for m in &got_a {
        let n: i64 = m.text.split('-').nth(1).unwrap().parse().unwrap();
        let prev = last_n.insert(m.username.clone(), n).unwrap_or(-1);
        assert_eq!(n, prev + 1, "{}'s messages in order", m.username);
    }

    // History and a resume work on any server, whoever posted.
    assert_eq!(general_history(cc.client().await, 1000).await, got_a);
    let mut resumed = within(
        b.client()
            .await
            .subscribe(subscribe_req("general", total - 5)),
    )
    .await
    .unwrap()
    .into_inner();
    let w = welcome(&mut resumed).await;
    assert!(!w.reset);
    assert_once_in_order(
        &messages(&mut resumed, 5).await,
        total - 4,
        total,
        "resume on B",
    );
    let epochs: Vec<u64> = c.servers.iter().map(|s| s.hub.epoch()).collect();
    assert!(
        epochs.iter().all(|e| *e == epochs[0]),
        "one epoch: {epochs:?}"
    );
}

#[tokio::test]
async fn a_room_made_on_one_server_is_used_from_another() {
    let c = cluster(2).await;
    let [a, b] = [&c.servers[0], &c.servers[1]];
    // Made on A and still empty: B has heard nothing of it, yet a token-less client (who
    // may only use rooms that exist) opens it there at once.
    a.create_rooms(&["fresh"]).await;
    let mut fresh = within(b.client().await.subscribe(subscribe_req("fresh", 0)))
        .await
        .expect("a room made through another server exists here too")
        .into_inner();
    assert_eq!(welcome(&mut fresh).await.room, "fresh");
    a.create_rooms(&["plans"]).await;
    let (mut ann, _) = a.join("ann").await;
    for i in 1..=3 {
        within(ann.send_message(req("ann", "plans", &format!("old {i}"))))
            .await
            .unwrap();
    }
    // Once B has them from the bus, a live subscriber there gets the next message only,
    // and a resuming one what it missed.
    within(async {
        while b.hub.existing("plans").map(|room| room.last_id()) != Some(3) {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let mut live = within(b.client().await.subscribe(subscribe_req("plans", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut live).await;
    let mut resuming = within(b.client().await.subscribe(subscribe_req("plans", 1)))
        .await
        .unwrap()
        .into_inner();
    assert!(!welcome(&mut resuming).await.reset);
    within(ann.send_message(req("ann", "plans", "new")))
        .await
        .unwrap();
    assert_once_in_order(&messages(&mut live, 1).await, 4, 4, "live on B");
    assert_once_in_order(&messages(&mut resuming, 3).await, 2, 4, "resuming on B");
}

#[tokio::test]
async fn presence_is_the_union_over_servers_and_typing_crosses() {
    let c = cluster(3).await;
    let [a, b, cc] = [&c.servers[0], &c.servers[1], &c.servers[2]];
    let mut watcher = within(cc.client().await.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut watcher).await;

    let (mut ann, _) = a.join("ann").await;
    let mut ann_stream = within(ann.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut ann_stream).await;
    presence(&mut watcher, "ann", true).await;

    let (mut bob, _) = b.join("bob").await;
    let mut bob_stream = within(bob.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap()
        .into_inner();
    presence(&mut watcher, "bob", true).await;
    let w = welcome(&mut bob_stream).await;
    assert!(w.members.contains(&"bob".to_owned()), "{:?}", w.members);
    // A newcomer anywhere sees both.
    let mut late = within(cc.client().await.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap()
        .into_inner();
    let w = welcome(&mut late).await;
    assert_eq!(
        (w.members.clone(), w.member_count),
        (vec!["ann".to_owned(), "bob".to_owned()], 2)
    );

    // Typing on A shows on C.
    within(ann.typing(TypingRequest {
        room: "general".into(),
    }))
    .await
    .unwrap();
    within(async {
        loop {
            if let Event::Typing(t) = next_event(&mut watcher).await {
                assert_eq!(t.username, "ann");
                return;
            }
        }
    })
    .await;

    // Ann's stream closes on A: she leaves on C too.
    drop(ann_stream);
    presence(&mut watcher, "ann", false).await;
}

#[tokio::test]
async fn what_was_posted_while_nats_was_down_arrives_once_it_is_back() {
    let mut c = cluster(2).await;
    let mut on_b = within(
        c.servers[1]
            .client()
            .await
            .subscribe(subscribe_req("general", 0)),
    )
    .await
    .unwrap()
    .into_inner();
    welcome(&mut on_b).await;
    let mut poster = c.servers[0].client().await;
    within(poster.send_message(req("ann", "general", "before")))
        .await
        .unwrap();
    assert_once_in_order(&messages(&mut on_b, 1).await, 1, 1, "before the restart");

    c.nats.stop();
    // Acknowledged while the bus is away: committed, so it must reach B.
    for text in ["during 1", "during 2"] {
        within(poster.send_message(req("ann", "general", text)))
            .await
            .unwrap();
    }
    // Not live on B: nothing carries it there now.
    assert!(
        timeout(Duration::from_millis(500), next_message(&mut on_b))
            .await
            .is_err(),
        "B cannot know yet"
    );
    c.nats.resume();
    let started = Instant::now();
    let got = messages(&mut on_b, 2).await;
    assert_once_in_order(&got, 2, 3, "filled from the database");
    assert_eq!(got[1].text, "during 2");
    // And the bus works again: the next one comes live.
    sleep(Duration::from_millis(100)).await;
    within(poster.send_message(req("ann", "general", "after")))
        .await
        .unwrap();
    assert_once_in_order(&messages(&mut on_b, 1).await, 4, 4, "after the restart");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The next message or change event of a native stream, skipping everything else.
async fn next_posted(stream: &mut Streaming<ChatEvent>) -> MessageResponse {
    loop {
        match next_event(stream).await {
            Event::Message(m) | Event::Change(m) => return m,
            Event::Heartbeat(_) | Event::Presence(_) | Event::Typing(_) => continue,
            other => panic!("expected a message or a change, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn edits_reactions_and_replies_cross_servers() {
    let c = cluster(3).await;
    let [a, b, cc] = [&c.servers[0], &c.servers[1], &c.servers[2]];
    let register = |server: &'static str, name: &str| RegisterRequest {
        username: name.into(),
        password: format!("{server} correct horse"),
    };
    let ann = within(a.client().await.register(register("a", "ann")))
        .await
        .unwrap()
        .into_inner();
    let bob = within(b.client().await.register(register("b", "bob")))
        .await
        .unwrap()
        .into_inner();
    let mut on_c = within(cc.client().await.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut on_c).await;

    let first = within(a.with_token(&ann.token).await.send_message(MessageRequest {
        message: "helo".into(),
        ..Default::default()
    }))
    .await
    .unwrap()
    .into_inner();
    // The author is known on B from the shared session: bob may not edit ann's line there,
    // ann may.
    let status = within(
        b.with_token(&bob.token)
            .await
            .edit_message(EditMessageRequest {
                room: String::new(),
                id: first.id,
                text: "mine now".into(),
            }),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    within(
        b.with_token(&ann.token)
            .await
            .edit_message(EditMessageRequest {
                room: String::new(),
                id: first.id,
                text: "hello".into(),
            }),
    )
    .await
    .unwrap();
    within(cc.with_token(&bob.token).await.react(ReactRequest {
        room: String::new(),
        id: first.id,
        emoji: "👍".into(),
    }))
    .await
    .unwrap();
    let reply = within(
        cc.with_token(&bob.token)
            .await
            .send_message(MessageRequest {
                message: "hi ann".into(),
                reply_to: first.id,
                ..Default::default()
            }),
    )
    .await
    .unwrap()
    .into_inner();
    assert_eq!(reply.quote.as_ref().map(|q| q.text.as_str()), Some("hello"));

    // C's subscriber sees the post, then each change, in id order, whoever served them.
    let seen: Vec<MessageResponse> = within(async {
        let mut seen = Vec::new();
        while seen.len() < 4 {
            seen.push(next_posted(&mut on_c).await);
        }
        seen
    })
    .await;
    let ids: Vec<u64> = seen.iter().map(|m| m.id).collect();
    assert_eq!(ids, (first.id..first.id + 4).collect::<Vec<_>>());
    let kinds: Vec<Option<Kind>> = seen
        .iter()
        .map(|m| m.change.as_ref().map(|c| c.kind()))
        .collect();
    assert_eq!(kinds, [None, Some(Kind::Edit), Some(Kind::React), None]);
    assert_eq!(seen[3].reply_to, first.id);

    // History through A shows the message as it is now, the change events left out.
    let history = general_history(a.client().await, 0).await;
    let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["hello", "hi ann"]);
    assert!(history[0].edited_at_ms > 0);
    let reactions: Vec<(&str, &[String])> = history[0]
        .reactions
        .iter()
        .map(|r| (r.emoji.as_str(), r.usernames.as_slice()))
        .collect();
    assert_eq!(reactions, [("👍", &["bob".to_string()][..])]);
}

#[tokio::test]
async fn a_send_retried_through_another_server_returns_the_original() {
    let c = cluster(2).await;
    let [a, b] = [&c.servers[0], &c.servers[1]];
    let (mut on_a, token) = a.join("ann").await;
    let send = || MessageRequest {
        message: "once".into(),
        client_msg_id: "c-1".into(),
        ..Default::default()
    };
    let original = within(on_a.send_message(send()))
        .await
        .unwrap()
        .into_inner();
    // A committed it; its answer never came (A died, say): the client sends again
    // through B, which never saw it in memory.
    a.shutdown.trigger();
    let again = within(b.with_token(&token).await.send_message(send()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, original.id);
    assert_eq!(again.text, "once");
    let history = general_history(b.client().await, 0).await;
    let ids: Vec<u64> = history.iter().map(|m| m.id).collect();
    assert_eq!(ids, [original.id], "one message, not two");
}

#[tokio::test]
async fn identical_sends_racing_through_every_server_post_once() {
    let c = cluster(3).await;
    let (_, token) = c.servers[0].join("ann").await;
    let mut streams = Vec::new();
    for server in &c.servers {
        let mut stream = within(server.client().await.subscribe(subscribe_req("general", 0)))
            .await
            .unwrap()
            .into_inner();
        welcome(&mut stream).await;
        streams.push(stream);
    }
    let mut clients = Vec::new();
    for server in &c.servers {
        for _ in 0..4 {
            clients.push(server.with_token(&token).await);
        }
    }
    // Each round: twelve identical sends, four through each server, let go at once, then
    // one plain message to mark the end of the round on every stream.
    const ROUNDS: u64 = 5;
    for round in 1..=ROUNDS {
        let go = std::sync::Arc::new(tokio::sync::Barrier::new(clients.len()));
        let sends: Vec<_> = clients
            .iter()
            .map(|client| {
                let (mut client, go) = (client.clone(), go.clone());
                tokio::spawn(async move {
                    go.wait().await;
                    within(client.send_message(MessageRequest {
                        room: "general".into(),
                        message: format!("once {round}"),
                        client_msg_id: format!("race-{round}"),
                        ..Default::default()
                    }))
                    .await
                    .unwrap()
                    .into_inner()
                    .id
                })
            })
            .collect();
        let mut ids = Vec::new();
        for send in sends {
            ids.push(send.await.unwrap());
        }
        let want = 2 * round - 1;
        assert_eq!(
            ids,
            vec![want; ids.len()],
            "round {round}: every send answered with one id"
        );
        let marker = within(clients[0].send_message(req("", "general", &format!("end {round}"))))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            marker.id,
            want + 1,
            "round {round}: the counter took one id, not more"
        );
        for (s, stream) in streams.iter_mut().enumerate() {
            let got = messages(stream, 2).await;
            let texts: Vec<&str> = got.iter().map(|m| m.text.as_str()).collect();
            assert_eq!(
                texts,
                [format!("once {round}"), format!("end {round}")],
                "subscriber on server {s}, round {round}: the message once"
            );
        }
    }
    let history = general_history(c.servers[2].client().await, 0).await;
    let ids: Vec<u64> = history.iter().map(|m| m.id).collect();
    assert_eq!(
        ids,
        (1..=2 * ROUNDS).collect::<Vec<_>>(),
        "each send stored once, ids gapless"
    );
}
