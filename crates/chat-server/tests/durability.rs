//! The real `chat-server` binary on a `--db` file: whatever it acknowledged is still there
//! after it is killed with SIGKILL mid-load, or stopped with SIGTERM, and restarted on the
//! same file, with the same ids, the same texts and the same epoch.
mod common;

use std::{collections::BTreeMap, path::Path};

use chat_proto::{chat_service_client::ChatServiceClient, HistoryRequest, MessageResponse};
use common::{connect_when_ready, free_addr, req, within};
use tokio::{process::Child, process::Command, sync::mpsc};
use tonic::transport::Channel;

const ROOMS: [&str; 2] = ["general", "durable"];
/// Posters at once, each under its own name (the server runs with `--max-messages-per-sec
/// 0`, so no rate limit stops one: a poster ends only when the server stops answering).
const POSTERS: usize = 40;
const POSTS_EACH: usize = 15;
/// Acknowledged posts before the server is stopped: past one History page per room, and
/// short of all of them, so posts are still in flight when it stops.
const STOP_AFTER: usize = 450;

struct Server {
    child: Child,
    client: ChatServiceClient<Channel>,
}

impl Server {
    async fn start(db: &Path) -> Self {
        let addr = free_addr();
        // Its log goes next to the database (both runs in one file), for a failure to show.
        let log_path = db.with_extension("log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--addr", &addr, "--static-dir", "/nonexistent"])
            // Many token-less posters from one address: load, not abuse.
            .args(["--max-messages-per-sec", "0"])
            .arg("--db")
            .arg(db)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let channel = connect_when_ready(&addr, &mut child, Some(&log_path)).await;
        Server {
            child,
            client: ChatServiceClient::new(channel),
        }
    }

    fn pid(&self) -> String {
        self.child.id().expect("still running").to_string()
    }
}

/// Creates the rooms that do not exist yet: only someone signed in may, so a session
/// posts the first message of each.
async fn create_rooms(client: &mut ChatServiceClient<Channel>) {
    let joined = within(client.join(chat_proto::JoinRequest {
        username: "creator".into(),
    }))
    .await
    .unwrap()
    .into_inner();
    for room in ROOMS {
        let mut request = tonic::Request::new(req("", room, "first"));
        let bearer = format!("Bearer {}", joined.token).parse().unwrap();
        request.metadata_mut().insert("authorization", bearer);
        within(client.send_message(request)).await.unwrap();
    }
}

/// Starts `POSTERS` concurrent posters and returns what the server acknowledged, as it
/// acknowledges it. A poster stops at its first error: the server has gone.
fn post_concurrently(
    client: &ChatServiceClient<Channel>,
) -> mpsc::UnboundedReceiver<MessageResponse> {
    let (acked, receiver) = mpsc::unbounded_channel();
    for poster in 0..POSTERS {
        let mut client = client.clone();
        let acked = acked.clone();
        tokio::spawn(async move {
            let room = ROOMS[poster % ROOMS.len()];
            for n in 0..POSTS_EACH {
                let text = format!("poster {poster} says {n}");
                match client
                    .send_message(req(&format!("p{poster}"), room, &text))
                    .await
                {
                    Ok(res) => drop(acked.send(res.into_inner())),
                    Err(_) => return,
                }
            }
        });
    }
    receiver
}

/// Collects acknowledgements until `count` arrived, or every poster has finished.
async fn acknowledged(
    receiver: &mut mpsc::UnboundedReceiver<MessageResponse>,
    count: usize,
) -> Vec<MessageResponse> {
    let mut acked = Vec::new();
    while acked.len() < count {
        match within(receiver.recv()).await {
            Some(res) => acked.push(res),
            None => break,
        }
    }
    acked
}

/// Every message of `room`, paged backwards from the newest through History, by id; and
/// the epoch the pages carried.
async fn whole_history(
    client: &mut ChatServiceClient<Channel>,
    room: &str,
) -> (BTreeMap<u64, MessageResponse>, u64) {
    let mut messages = BTreeMap::new();
    let mut before_id = 0;
    let mut epoch = None;
    loop {
        let page = within(client.history(HistoryRequest {
            room: room.into(),
            before_id,
            limit: 200,
        }))
        .await
        .unwrap()
        .into_inner();
        assert!(
            *epoch.get_or_insert(page.epoch) == page.epoch,
            "epoch changed between pages"
        );
        assert!(
            page.messages.windows(2).all(|w| w[0].id < w[1].id),
            "a page is oldest first"
        );
        let Some(oldest) = page.messages.first() else {
            break;
        };
        before_id = oldest.id;
        for msg in page.messages {
            assert!(
                messages.insert(msg.id, msg).is_none(),
                "a message on two pages"
            );
        }
        if !page.has_more {
            break;
        }
    }
    (messages, epoch.unwrap_or_default())
}

/// The epoch, or 0 when the room has nothing yet.
async fn epoch(client: &mut ChatServiceClient<Channel>) -> u64 {
    within(client.history(HistoryRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .epoch
}

/// Checks that everything in `acked` is in the restarted server's history, unchanged,
/// and that new posts continue after the old ids instead of reusing them.
async fn assert_all_kept(server: &mut Server, acked: &[MessageResponse], epoch_before: u64) {
    assert_eq!(
        epoch(&mut server.client).await,
        epoch_before,
        "same database, same epoch"
    );
    for room in ROOMS {
        let (history, epoch) = whole_history(&mut server.client, room).await;
        assert_eq!(epoch, epoch_before);
        let mine: Vec<_> = acked.iter().filter(|m| m.room == room).collect();
        assert!(!mine.is_empty(), "no post to {room} was acknowledged");
        for sent in &mine {
            let kept = history
                .get(&sent.id)
                .unwrap_or_else(|| panic!("acknowledged message {} of {room} is gone", sent.id));
            assert_eq!(
                (&kept.username, &kept.text, &kept.message, kept.sent_at_ms),
                (&sent.username, &sent.text, &sent.message, sent.sent_at_ms),
                "message {} of {room} changed",
                sent.id
            );
        }
        let newest = *history.keys().next_back().unwrap();
        let next = within(
            server
                .client
                .send_message(req("after", room, "after the restart")),
        )
        .await
        .unwrap()
        .into_inner();
        assert!(
            next.id > newest,
            "id {} reused after a restart (newest was {newest})",
            next.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let mut server = Server::start(&db).await;
    let epoch_before = epoch(&mut server.client).await;
    assert_ne!(epoch_before, 0);

    create_rooms(&mut server.client).await;
    let mut receiver = post_concurrently(&server.client);
    let mut acked = acknowledged(&mut receiver, STOP_AFTER).await;
    assert_eq!(acked.len(), STOP_AFTER, "posters finished before the kill");
    server.child.start_kill().unwrap(); // SIGKILL: no chance to flush anything
    within(server.child.wait()).await.unwrap();
    // Answers already on their way when the process died count as acknowledged too.
    acked.extend(acknowledged(&mut receiver, usize::MAX).await);

    let mut restarted = Server::start(&db).await;
    assert_all_kept(&mut restarted, &acked, epoch_before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let mut server = Server::start(&db).await;
    let epoch_before = epoch(&mut server.client).await;

    create_rooms(&mut server.client).await;
    let mut receiver = post_concurrently(&server.client);
    let mut acked = acknowledged(&mut receiver, STOP_AFTER).await;
    let term = Command::new("kill")
        .args(["-TERM", &server.pid()])
        .status()
        .await
        .unwrap();
    assert!(term.success());
    let exit = within(server.child.wait()).await.unwrap();
    assert!(exit.success(), "{exit:?}");
    acked.extend(acknowledged(&mut receiver, usize::MAX).await);

    let mut restarted = Server::start(&db).await;
    assert_all_kept(&mut restarted, &acked, epoch_before).await;
}
