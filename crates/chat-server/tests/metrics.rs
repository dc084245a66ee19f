//! `--metrics-addr`: a `chat-server` process serves Prometheus metrics on a listener of
//! its own, and what it counts moves with what clients do: joins, sends, deliveries,
//! refusals by code (the stream caps' included), subscribers cut off, commits.
mod common;

use std::{collections::HashMap, time::Duration};

use chat_proto::{chat_service_client::ChatServiceClient, JoinRequest, MessageRequest};
use common::{connect_when_ready, free_addr, next_message, subscribe_req, welcome, within};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::Command,
};
use tonic::{transport::Channel, Code};

const BIN: &str = env!("CARGO_BIN_EXE_chat-server");
const QUEUE: &str = "16";
const STALL_MS: u64 = 3000;

/// `GET path` over HTTP/1.1 on a fresh connection: (status, body).
async fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut tcp = within(TcpStream::connect(addr)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    within(tcp.read_to_string(&mut response)).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// Every sample of a scrape, by series (`name{labels}`), checked to be exposition text.
async fn scrape(metrics_addr: &str) -> HashMap<String, f64> {
    let (status, body) = http_get(metrics_addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            (series.to_owned(), value)
        })
        .collect()
}

fn get(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in the scrape: {samples:#?}"))
}

/// A connection of its own with small HTTP/2 windows, so a stream nobody reads backs up
/// into the server after a few dozen KiB.
async fn tight_channel(addr: &str) -> ChatServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    ChatServiceClient::new(channel)
}

fn send(token: &str, room: &str, text: &str) -> tonic::Request<MessageRequest> {
    let mut req = tonic::Request::new(MessageRequest {
        room: room.into(),
        message: text.into(),
        ..Default::default()
    });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}

#[tokio::test]
async fn metrics_are_served_on_their_own_port_and_move_with_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("chat.db"), dir.path().join("log"));
    let (addr, metrics_addr) = (free_addr(), free_addr());
    let stall_ms = STALL_MS.to_string();
    let mut server = Command::new(BIN)
        .args(["--addr", &addr, "--metrics-addr", &metrics_addr])
        .args(["--static-dir", "/nonexistent", "--db", db.to_str().unwrap()])
        .args(["--db-sync", "normal", "--max-messages-per-sec", "0"])
        .args(["--max-streams", "3", "--subscriber-queue", QUEUE])
        .args(["--stall-timeout-ms", &stall_ms])
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let channel = connect_when_ready(&addr, &mut server, Some(&log)).await;
    let mut client = ChatServiceClient::new(channel);

    let before = scrape(&metrics_addr).await;
    assert_eq!(get(&before, "chat_sessions"), 0.0);
    assert_eq!(get(&before, "chat_rooms"), 1.0, "general");
    assert_eq!(get(&before, "chat_messages_committed_total"), 0.0);
    assert_eq!(get(&before, "chat_streams_open"), 0.0);
    assert!(get(&before, "chat_db_bytes") > 0.0);

    // The public port serves the app, not the metrics (over HTTP/1.1: counted as such).
    let (status, body) = http_get(&addr, "/metrics").await;
    assert_eq!(status, 404);
    assert!(!body.contains("chat_"), "{body}");

    // Join, subscribe, send three, one refused call.
    let token = within(client.join(JoinRequest {
        username: "ann".into(),
    }))
    .await
    .unwrap()
    .into_inner()
    .token;
    let mut reading = {
        let mut req = tonic::Request::new(subscribe_req("general", 0));
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        within(client.subscribe(req)).await.unwrap().into_inner()
    };
    welcome(&mut reading).await;
    for i in 1..=3 {
        within(client.send_message(send(&token, "general", &format!("hello {i}"))))
            .await
            .unwrap();
        assert_eq!(next_message(&mut reading).await.id, i);
    }
    let refused = within(client.send_message(send(&token, "no such room!", "x")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    let after = scrape(&metrics_addr).await;
    assert_eq!(get(&after, "chat_sessions"), 1.0);
    assert_eq!(get(&after, "chat_streams_open"), 1.0);
    assert_eq!(get(&after, "chat_subscribers"), 1.0);
    assert_eq!(get(&after, "chat_room_members"), 1.0);
    assert_eq!(get(&after, "chat_messages_committed_total"), 3.0);
    assert_eq!(get(&after, "chat_deliveries_total"), 3.0);
    assert_eq!(
        get(&after, r#"chat_refusals_total{code="INVALID_ARGUMENT"}"#),
        1.0
    );
    assert!(get(&after, r#"chat_connections_total{protocol="h2"}"#) >= 1.0);
    assert!(get(&after, r#"chat_connections_serving{protocol="h2"}"#) >= 1.0);
    assert_eq!(
        get(&after, r#"chat_connections_total{protocol="http1"}"#),
        1.0
    );
    assert!(get(&after, "chat_connections_open") >= 1.0);
    // Every commit is in both histograms, and the batches held the three messages.
    let commits = get(&after, "chat_commits_total");
    assert!(commits >= 3.0, "{commits}");
    assert_eq!(get(&after, "chat_commit_seconds_count"), commits);
    assert_eq!(
        get(&after, r#"chat_commit_seconds_bucket{le="+Inf"}"#),
        commits
    );
    assert_eq!(get(&after, "chat_commit_batch_size_count"), commits);
    assert!(get(&after, "chat_commit_batch_size_sum") >= 3.0);
    assert!(get(&after, "chat_commit_seconds_sum") > 0.0);

    // Two subscribers that stop reading, on tight connections; the third stream is the
    // cap, so a fourth is refused by the stream caps.
    let mut lagging = tight_channel(&addr).await;
    let mut lagging = within(lagging.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut lagging).await;
    let mut stalled = tight_channel(&addr).await;
    let mut stalled = within(stalled.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut stalled).await;
    let over_cap = within(client.subscribe(subscribe_req("general", 0)))
        .await
        .unwrap_err();
    assert_eq!(over_cap.code(), Code::ResourceExhausted);

    // Far more than the ring and both connections hold, while the first reader keeps up.
    const BIG: u64 = 100;
    let keeps_up = tokio::spawn(async move {
        for id in 4..=3 + BIG {
            assert_eq!(next_message(&mut reading).await.id, id);
        }
        reading
    });
    let text = "x".repeat(4000);
    for _ in 0..BIG {
        within(client.send_message(send(&token, "general", &text)))
            .await
            .unwrap();
    }
    let _reading = within(keeps_up).await.unwrap();
    // The lagging one reads again in time and hears it was cut off.
    let ended = within(async {
        loop {
            match lagging.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => break status,
            }
        }
    })
    .await;
    assert_eq!(ended.code(), Code::Aborted, "{ended:?}");
    // The stalled one never reads: the sweeper ends its stream within two stall timeouts.
    let cut = within(async {
        loop {
            let samples = scrape(&metrics_addr).await;
            if samples.contains_key(r#"chat_subscribers_cut_off_total{reason="stalled"}"#) {
                break samples;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    drop(stalled);

    assert_eq!(
        get(&cut, r#"chat_subscribers_cut_off_total{reason="stalled"}"#),
        1.0
    );
    assert_eq!(
        get(&cut, r#"chat_subscribers_cut_off_total{reason="lagged"}"#),
        1.0
    );
    assert_eq!(get(&cut, r#"chat_refusals_total{code="ABORTED"}"#), 1.0);
    assert_eq!(
        get(&cut, r#"chat_refusals_total{code="RESOURCE_EXHAUSTED"}"#),
        1.0
    );
    assert_eq!(get(&cut, "chat_messages_committed_total"), 3.0 + BIG as f64);
    // The reader that kept up got every message from the ring, and so did the others
    // until they fell behind.
    assert!(get(&cut, "chat_deliveries_total") >= 3.0 + BIG as f64);
    assert!(get(&cut, "chat_fanout_ring_bytes") > 0.0);
    assert!(get(&cut, "chat_db_bytes") > get(&before, "chat_db_bytes"));

    server.kill().await.unwrap();
}

#[tokio::test]
async fn a_metrics_address_in_use_stops_the_server_at_start_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let out = within(
        Command::new(BIN)
            .args(["--addr", &free_addr(), "--metrics-addr", &taken])
            .args(["--db", dir.path().join("chat.db").to_str().unwrap()])
            .output(),
    )
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("--metrics-addr {taken}")), "{said}");
}
