//! A subscriber that stops reading never slows the others, is cut off once it is a whole
//! queue behind (with a status that says where to resume), and resumes without a gap.
mod common;

use bytes::{Buf, BytesMut};
use chat_proto::{chat_event::Event, ChatEvent, SubscribeRequest};
use common::{
    next_message, raw_grpc_web_subscribe, req, subscribe_req, welcome, within, TestServer,
};
use prost::Message;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

const QUEUE: usize = 64;
const MESSAGES: u64 = 3000;

#[tokio::test]
async fn a_stalled_subscriber_is_cut_off_at_its_bound_and_resumes_without_a_gap() {
    let config = chat_server::Config {
        subscriber_queue: QUEUE,
        // This one reads again in time to hear why it was cut off.
        stall_timeout_ms: 600_000,
        ..chat_server::Config::for_tests()
    };
    let server = TestServer::start_with(config).await;

    // A browser tab that subscribes, reads nothing, and has a tiny receive buffer, so
    // the server's writes back up almost at once.
    let mut stalled = StalledWebClient::subscribe(&server, &subscribe_req("", 0)).await;
    let mut client = server.client().await;
    let mut fast = client
        .subscribe(subscribe_req("", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut fast).await;
    let fast_reader = tokio::spawn(async move {
        for expected in 1..=MESSAGES {
            assert_eq!(next_message(&mut fast).await.id, expected);
        }
    });

    let text = "x".repeat(3000);
    for i in 1..=MESSAGES {
        within(client.send_message(req("a", "", &format!("{i} {text}"))))
            .await
            .unwrap();
    }
    // Everyone else got everything while the stalled one was stalled.
    within(fast_reader).await.unwrap();

    // Now it reads: what was in flight, then the cut-off, with its resume point.
    let (ids, ending) = within(stalled.read_to_end()).await;
    let Ending::Status(status, message) = ending else {
        panic!("expected the cut-off status, got {ending:?}");
    };
    assert_eq!(status, "10", "ABORTED: {message}");
    let last = *ids.last().unwrap_or(&0);
    assert_eq!(
        ids,
        (1..=last).collect::<Vec<_>>(),
        "in order, no gap, before the cut"
    );
    assert!(last < MESSAGES, "it was cut off, not served everything");
    assert!(
        message.contains(&format!("after_id = {last}")),
        "the status says where to resume: {message}"
    );

    // Resuming from there gets exactly the rest.
    let mut resumed = client
        .subscribe(SubscribeRequest {
            room: String::new(),
            after_id: last,
            epoch: 0,
        })
        .await
        .unwrap()
        .into_inner();
    welcome(&mut resumed).await;
    for expected in last + 1..=MESSAGES {
        assert_eq!(next_message(&mut resumed).await.id, expected);
    }
}

#[tokio::test]
async fn a_subscriber_that_never_reads_again_has_its_connection_closed() {
    let config = chat_server::Config {
        subscriber_queue: QUEUE,
        stall_timeout_ms: 200,
        ..chat_server::Config::for_tests()
    };
    let server = TestServer::start_with(config).await;
    let mut stalled = StalledWebClient::subscribe(&server, &subscribe_req("", 0)).await;
    let mut client = server.client().await;
    let text = "x".repeat(3000);
    for i in 1..=MESSAGES / 2 {
        within(client.send_message(req("a", "", &format!("{i} {text}"))))
            .await
            .unwrap();
    }
    // It never reads, so no status can reach it: the server closes the connection, and
    // what the client finds when it looks is what was in flight, then the end.
    let (ids, ending) = within(stalled.read_to_end()).await;
    assert_eq!(ending, Ending::Closed);
    let last = *ids.last().unwrap_or(&0);
    assert_eq!(ids, (1..=last).collect::<Vec<_>>());
    assert!(last < MESSAGES / 2);
    // Resuming from the last id it has is gap-free, as after a status.
    let mut resumed = client
        .subscribe(subscribe_req("", last))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut resumed).await;
    for expected in last + 1..=MESSAGES / 2 {
        assert_eq!(next_message(&mut resumed).await.id, expected);
    }
}

#[tokio::test]
async fn a_stalled_stream_is_reset_alone_and_its_connection_carries_on() {
    let config = chat_server::Config {
        subscriber_queue: QUEUE,
        stall_timeout_ms: 200,
        ..chat_server::Config::for_tests()
    };
    let server = TestServer::start_with(config).await;
    // One HTTP/2 connection with two Subscribe streams, as two tabs behind one proxy. The
    // connection window is large, so the stream that is not read runs out of its own
    // window (64 KiB) without holding up the other.
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .initial_stream_window_size(64 * 1024)
        .initial_connection_window_size(16 << 20)
        .connect()
        .await
        .unwrap();
    let mut tabs = chat_proto::chat_service_client::ChatServiceClient::new(channel);
    let mut stalled = tabs
        .subscribe(subscribe_req("", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut stalled).await;
    let mut reading = tabs
        .subscribe(subscribe_req("", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut reading).await;
    assert_eq!(server.hub.memory_stats().readers, 2);

    // Posted over a connection of its own, so only the two tabs live on theirs.
    let mut poster = server.client().await;
    let text = "x".repeat(3000);
    let mut next = 1;
    while server.hub.memory_stats().readers == 2 {
        within(poster.send_message(req("a", "", &format!("{next} {text}"))))
            .await
            .unwrap();
        assert_eq!(next_message(&mut reading).await.id, next);
        next += 1;
        assert!(next < 100_000, "the stalled stream was never cut");
    }

    // The other tab goes on receiving over the same connection.
    for id in next..next + 50 {
        within(poster.send_message(req("a", "", &format!("{id} {text}"))))
            .await
            .unwrap();
        assert_eq!(next_message(&mut reading).await.id, id);
    }
    // The stalled tab finds what was in flight, in order, then its stream's end: a reset,
    // not a status the server could no longer send.
    let mut ids = Vec::new();
    let ending = loop {
        match within(stalled.message()).await {
            Ok(Some(event)) => {
                if let Some(Event::Message(m)) = event.event {
                    ids.push(m.id);
                }
            }
            other => break other,
        }
    };
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    assert!(
        (ids.len() as u64) < next,
        "it was cut, not served everything"
    );
    let status = ending.expect_err("the stream was reset");
    assert_ne!(status.code(), tonic::Code::Aborted, "{status}");
    // The connection takes new streams as before.
    let mut third = tabs
        .subscribe(subscribe_req("", 0))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut third).await;
}

#[derive(Debug, PartialEq)]
enum Ending {
    /// grpc-status and grpc-message of the trailer frame.
    Status(String, String),
    /// The connection closed before any trailers.
    Closed,
}

/// grpc-web over HTTP/1.1 on a raw socket, so the test decides when bytes are read.
struct StalledWebClient {
    tcp: TcpStream,
}

impl StalledWebClient {
    async fn subscribe(server: &TestServer, request: &SubscribeRequest) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut tcp = socket.connect(server.addr).await.unwrap();
        tcp.write_all(&raw_grpc_web_subscribe(server.addr, request))
            .await
            .unwrap();
        StalledWebClient { tcp }
    }

    /// Reads the response to its trailer frame or the connection's end: the message
    /// ids, and how it ended.
    async fn read_to_end(&mut self) -> (Vec<u64>, Ending) {
        let mut raw = BytesMut::new();
        let mut ids = Vec::new();
        // Response head.
        let body_start = loop {
            if !self.read_more(&mut raw).await {
                return (ids, Ending::Closed);
            }
            if let Some(pos) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
        };
        let head = String::from_utf8_lossy(&raw[..body_start]).to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        raw.advance(body_start);

        // Chunked body -> grpc-web frames.
        let mut frames = BytesMut::new();
        loop {
            let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") else {
                if !self.read_more(&mut raw).await {
                    return (ids, Ending::Closed);
                }
                continue;
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap(), 16).unwrap();
            while raw.len() < line_end + 2 + size + 2 {
                if !self.read_more(&mut raw).await {
                    return (ids, Ending::Closed);
                }
            }
            raw.advance(line_end + 2);
            frames.extend_from_slice(&raw[..size]);
            raw.advance(size + 2);
            while frames.len() >= 5 {
                let len = u32::from_be_bytes(frames[1..5].try_into().unwrap()) as usize;
                if frames.len() < 5 + len {
                    break;
                }
                let flag = frames[0];
                frames.advance(5);
                let frame = frames.split_to(len);
                if flag & 0x80 != 0 {
                    let trailers = String::from_utf8_lossy(&frame).into_owned();
                    let field = |name: &str| {
                        trailers
                            .lines()
                            .find_map(|l| l.strip_prefix(name))
                            .map(|v| v.trim().replace("%20", " ").replace("%3D", "="))
                            .unwrap_or_default()
                    };
                    let ending = Ending::Status(field("grpc-status:"), field("grpc-message:"));
                    return (ids, ending);
                }
                if let Some(Event::Message(m)) = ChatEvent::decode(frame).unwrap().event {
                    ids.push(m.id);
                }
            }
        }
    }

    /// False once the connection has ended (closed or reset).
    async fn read_more(&mut self, raw: &mut BytesMut) -> bool {
        let mut buf = [0u8; 64 * 1024];
        match self.tcp.read(&mut buf).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                true
            }
        }
    }
}
