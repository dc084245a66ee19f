//! Three real `chat-server` processes on one PostgreSQL and one NATS, one of them killed
//! with SIGKILL: its clients carry on through another server, resuming after the last id
//! they had, and see every acknowledged message once, in order; its members are announced
//! as left on the other servers within seconds.
mod common;

use std::time::Duration;

use chat_proto::{
    chat_event::Event, chat_service_client::ChatServiceClient, ChatEvent, JoinRequest,
    MessageRequest, SubscribeRequest,
};
use common::{connect_when_ready, free_addr, nats::Nats, pg, subscribe_req, welcome, within};
use tokio::{
    process::{Child, Command},
    time::{timeout, Instant},
};
use tonic::{transport::Channel, Streaming};

struct Server {
    child: Child,
    addr: String,
    /// Its stderr, shown if it fails to start; removed with the test.
    _log: tempfile::NamedTempFile,
}

impl Server {
    async fn start(db: &str, nats: &str) -> Server {
        let addr = free_addr();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--addr", &addr, "--static-dir", "/nonexistent"])
            .args(["--db", db, "--nats", nats])
            // Load from one address, not abuse.
            .args(["--max-messages-per-sec", "0", "--max-sign-ins-per-min", "0"])
            .stderr(log.reopen().unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        connect_when_ready(&addr, &mut child, Some(log.path())).await;
        Server {
            child,
            addr,
            _log: log,
        }
    }

    async fn client(&self) -> ChatServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        ChatServiceClient::new(channel)
    }

    async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

struct Cluster {
    servers: Vec<Server>,
    _nats: Nats,
    _db: pg::Database,
}

async fn cluster(n: usize) -> Cluster {
    let nats = Nats::start();
    let db = pg::database();
    let mut servers = Vec::new();
    for _ in 0..n {
        servers.push(Server::start(&db.url, &nats.url()).await);
    }
    Cluster {
        servers,
        _nats: nats,
        _db: db,
    }
}

async fn subscribe(client: &mut ChatServiceClient<Channel>, after_id: u64) -> Streaming<ChatEvent> {
    let mut stream = within(client.subscribe(SubscribeRequest {
        room: "general".into(),
        after_id,
        epoch: 0,
    }))
    .await
    .unwrap()
    .into_inner();
    let w = welcome(&mut stream).await;
    assert!(!w.reset, "resumed, not reset: {w:?}");
    stream
}

#[tokio::test]
async fn a_killed_servers_clients_resume_elsewhere_without_gap_or_duplicate() {
    let mut c = cluster(3).await;
    // The reader starts on the server that will be killed.
    let mut reader_client = c.servers[0].client().await;
    let mut stream = subscribe(&mut reader_client, 0).await;

    // One poster per server, posting with send ids; a poster whose server died retries
    // the same send on the next server, as the CLI does behind a balancer.
    let addrs: Vec<String> = c.servers.iter().map(|s| s.addr.clone()).collect();
    const EACH: usize = 150;
    let posters: Vec<_> = (0..3)
        .map(|p| {
            let addrs = addrs.clone();
            tokio::spawn(async move {
                let mut at = p;
                let mut acked = Vec::new();
                let connect = |addr: String| async move {
                    Channel::from_shared(format!("http://{addr}"))
                        .unwrap()
                        .connect()
                        .await
                        .map(ChatServiceClient::new)
                };
                let mut client = connect(addrs[at].clone()).await.unwrap();
                for n in 0..EACH {
                    let request = MessageRequest {
                        username: format!("poster{p}"),
                        message: format!("{p}-{n}"),
                        room: "general".into(),
                        client_msg_id: format!("{p}-{n}"),
                        ..Default::default()
                    };
                    loop {
                        match timeout(Duration::from_secs(5), client.send_message(request.clone()))
                            .await
                        {
                            Ok(Ok(sent)) => {
                                acked.push(sent.into_inner().id);
                                break;
                            }
                            _ => {
                                // Dead or refusing: the next server, the same send.
                                at = (at + 1) % addrs.len();
                                if let Ok(next) = connect(addrs[at].clone()).await {
                                    client = next;
                                }
                            }
                        }
                    }
                }
                acked
            })
        })
        .collect();

    // Read until some messages came, kill the reader's server mid-load, then resume on
    // another after the last id read.
    let mut got: Vec<u64> = Vec::new();
    while got.len() < 60 {
        if let Event::Message(m) = common::next_event(&mut stream).await {
            got.push(m.id);
        }
    }
    c.servers[0].kill().await;
    // Whatever the dead server had sent before it died may still be in the socket.
    loop {
        match timeout(Duration::from_secs(5), stream.message()).await {
            Ok(Ok(Some(ChatEvent {
                event: Some(Event::Message(m)),
            }))) => got.push(m.id),
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) | Ok(Err(_)) => break,
            Err(_) => panic!("the stream of a killed server did not end"),
        }
    }
    let mut acked = Vec::new();
    let mut resumed = subscribe(&mut c.servers[1].client().await, *got.last().unwrap()).await;
    for poster in posters {
        acked.extend(poster.await.unwrap());
    }
    let total = acked.iter().copied().max().unwrap();
    while got.last() != Some(&total) {
        if let Event::Message(m) = common::next_event(&mut resumed).await {
            got.push(m.id);
        }
    }
    assert_eq!(
        got,
        (1..=total).collect::<Vec<_>>(),
        "every id once, in order, across the kill"
    );
    acked.sort();
    acked.dedup();
    assert_eq!(acked.len(), 3 * EACH, "every send acknowledged once");
    assert!(acked.iter().all(|id| got.contains(id)));
    assert_eq!(total as usize, 3 * EACH, "nothing posted twice");
}

#[tokio::test]
async fn a_killed_servers_members_leave_on_the_others() {
    let mut c = cluster(2).await;
    let mut watcher = subscribe(&mut c.servers[1].client().await, 0).await;
    let mut on_a = c.servers[0].client().await;
    let token = within(on_a.join(JoinRequest {
        username: "ann".into(),
    }))
    .await
    .unwrap()
    .into_inner()
    .token;
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    let mut request = tonic::Request::new(subscribe_req("general", 0));
    request.metadata_mut().insert("authorization", bearer);
    let mut ann = within(on_a.subscribe(request)).await.unwrap().into_inner();
    welcome(&mut ann).await;
    within(ann_presence(&mut watcher, true)).await;

    c.servers[0].kill().await;
    let killed = Instant::now();
    within(ann_presence(&mut watcher, false)).await;
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "not before it could tell: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "within seconds: {took:?}");
    // The stream on the dead server is gone for good.
    let end = timeout(Duration::from_secs(5), ann.message()).await;
    assert!(matches!(end, Ok(Ok(None)) | Ok(Err(_))), "{end:?}");
}

/// Waits for ann's join or leave on `stream`.
async fn ann_presence(stream: &mut Streaming<ChatEvent>, joined: bool) {
    loop {
        match stream.message().await {
            Ok(Some(ChatEvent {
                event: Some(Event::Presence(p)),
            })) if p.username == "ann" && p.joined == joined => return,
            Ok(Some(_)) => {}
            other => panic!("the watcher's stream ended: {other:?}"),
        }
    }
}

/// Runs the binary to its exit with `args`; its status and stderr.
async fn refused(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = within(
        Command::new(env!("CARGO_BIN_EXE_chat-server"))
            .args(["--addr", &free_addr(), "--static-dir", "/nonexistent"])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_server_refuses_to_start_without_its_nats_or_on_sqlite() {
    let db = pg::database();
    let mut nats = Nats::start();
    let url = nats.url();
    nats.stop();
    let (status, log) = refused(&["--db", &db.url, "--nats", &url]).await;
    assert!(!status.success());
    assert!(
        log.contains(&format!("could not reach NATS at {url}")),
        "{log}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat.db");
    let (status, log) = refused(&["--db", file.to_str().unwrap(), "--nats", &url]).await;
    assert!(!status.success());
    assert!(
        log.contains("--nats joins servers sharing a PostgreSQL database"),
        "{log}"
    );
}
