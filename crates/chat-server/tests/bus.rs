//! The bus between servers (chat_server::bus) through a real nats-server: what one server
//! publishes reaches the others of its database and nobody else, never itself, and a
//! restart of NATS is noticed so the receivers can repair what they missed.
mod common;

use std::{sync::Arc, time::Duration};

use chat_proto::{MessageResponse, TypingEvent};
use chat_server::bus::{
    wire::{Heartbeat, Revoke, RoomState},
    Bus, Inbox, Incoming,
};
use common::nats::Nats;
use tokio::time::timeout;

const EPOCH: u64 = 0x5eed;

async fn next(inbox: &mut Inbox) -> Incoming {
    timeout(Duration::from_secs(10), inbox.next())
        .await
        .expect("news within 10 s")
        .expect("the bus is open")
}

async fn quiet(inbox: &mut Inbox) {
    if let Ok(got) = timeout(Duration::from_millis(300), inbox.next()).await {
        panic!("expected nothing, got {got:?}");
    }
}

fn message(room: &str, id: u64) -> Arc<MessageResponse> {
    Arc::new(MessageResponse {
        id,
        room: room.into(),
        username: "ann".into(),
        text: format!("hello {id}"),
        sent_at_ms: 1,
        ..Default::default()
    })
}

#[tokio::test]
async fn news_reaches_the_other_servers_of_the_database_only() {
    let nats = Nats::start();
    let (a, mut a_in) = Bus::connect(&nats.url(), EPOCH).await.unwrap();
    let (b, mut b_in) = Bus::connect(&nats.url(), EPOCH).await.unwrap();
    let (_other, mut other_in) = Bus::connect(&nats.url(), EPOCH + 1).await.unwrap();
    assert_ne!(a.server_id(), b.server_id());

    let batch = vec![
        message("general", 1),
        message("x", 1),
        message("general", 2),
    ];
    a.publish_committed(&batch);
    match next(&mut b_in).await {
        Incoming::Committed(got) => {
            assert_eq!(got.server, a.server_id());
            let sent: Vec<MessageResponse> = batch.iter().map(|m| (**m).clone()).collect();
            assert_eq!(got.messages, sent);
        }
        other => panic!("expected the batch, got {other:?}"),
    }

    b.publish_heartbeat(Heartbeat {
        server: 0,
        rooms: vec![RoomState {
            room: "general".into(),
            last_id: 2,
            members: vec!["bob".into()],
        }],
        leaving: false,
    });
    match next(&mut a_in).await {
        Incoming::Heartbeat(hb) => {
            assert_eq!(hb.server, b.server_id(), "the bus stamps its own id");
            assert_eq!(hb.rooms[0].members, ["bob"]);
        }
        other => panic!("expected the heartbeat, got {other:?}"),
    }

    a.publish_typing(
        "general",
        TypingEvent {
            username: "ann".into(),
            ..Default::default()
        },
    );
    match next(&mut b_in).await {
        Incoming::Typing(t) => assert_eq!(
            (t.room.as_str(), t.event.unwrap().username.as_str()),
            ("general", "ann")
        ),
        other => panic!("expected typing, got {other:?}"),
    }

    a.publish_revoke(Revoke {
        account: "ann".into(),
        ..Default::default()
    });
    match next(&mut b_in).await {
        Incoming::Revoke(r) => assert_eq!((r.server, r.account.as_str()), (a.server_id(), "ann")),
        other => panic!("expected the revocation, got {other:?}"),
    }

    // Nobody hears their own news, and another database's servers hear none of it.
    quiet(&mut a_in).await;
    quiet(&mut other_in).await;
    let stats = a.stats();
    assert_eq!((stats.published, stats.dropped), (3, 0));
    assert!(b.stats().received_bytes > 0);
}

#[tokio::test]
async fn a_restart_of_nats_is_noticed_and_the_bus_carries_on() {
    let mut nats = Nats::start();
    let (a, _a_in) = Bus::connect(&nats.url(), EPOCH).await.unwrap();
    let (_b, mut b_in) = Bus::connect(&nats.url(), EPOCH).await.unwrap();
    nats.stop();
    // Published while NATS is away: lost or late, never an error or a wait.
    a.publish_committed(&[message("general", 1)]);
    nats.resume();
    loop {
        match next(&mut b_in).await {
            Incoming::Reconnected => break,
            Incoming::Committed(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // Both reconnect (in either order); what is published after that arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        a.publish_committed(&[message("general", 2)]);
        match timeout(Duration::from_millis(200), b_in.next()).await {
            Ok(Some(Incoming::Committed(got))) if got.messages[0].id == 2 => break,
            _ => assert!(
                tokio::time::Instant::now() < deadline,
                "nothing after the restart"
            ),
        }
    }
}

#[tokio::test]
async fn an_unreachable_nats_is_a_clear_error() {
    let mut nats = Nats::start();
    let url = nats.url();
    nats.stop();
    let err = Bus::connect(&url, EPOCH)
        .await
        .err()
        .expect("no NATS there");
    assert!(
        err.to_string()
            .starts_with(&format!("could not reach NATS at {url}")),
        "{err}"
    );
}
