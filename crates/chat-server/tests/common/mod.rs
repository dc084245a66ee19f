//! Shared test harness: a real server on an ephemeral loopback port, a native gRPC client
//! (HTTP/2) and a minimal grpc-web client over HTTP/1.1 that reads frames as they arrive.
#![allow(dead_code)]

pub mod nats;

use std::{net::SocketAddr, time::Duration};

use bytes::{Buf, Bytes, BytesMut};
use chat_proto::{
    chat_event::Event, chat_service_client::ChatServiceClient, ChatEvent, JoinRequest,
    MessageRequest, MessageResponse, SubscribeRequest, Welcome,
};
use chat_server::{app, Config, RoomHub, Shutdown};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::{net::TcpListener, task::JoinHandle};
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor},
    transport::Channel,
    Streaming,
};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    /// The server's rooms, to look at what they hold.
    pub hub: RoomHub,
    pub shutdown: Shutdown,
    pub task: JoinHandle<std::io::Result<()>>,
    pub db: DbFile,
}

/// The test server's database, removed with its WAL files when the test ends.
pub struct DbFile(pub std::path::PathBuf);

impl Drop for DbFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A client that sends `authorization: Bearer <token>` on every call, as the browser and
/// the CLI do after Join.
pub type SignedIn = ChatServiceClient<InterceptedService<Channel, Bearer>>;

#[derive(Clone)]
pub struct Bearer(pub MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Config::for_tests()).await
    }

    pub async fn start_with(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let db = DbFile(config.db.clone());
        let hub = app::open_hub(&config).unwrap();
        let task = tokio::spawn(app::serve_hub(
            listener,
            config,
            hub.clone(),
            shutdown.clone(),
        ));
        TestServer {
            addr,
            hub,
            shutdown,
            task,
            db,
        }
    }

    /// Joins as `name` and returns a client carrying the session's token.
    pub async fn join(&self, name: &str) -> (SignedIn, String) {
        let joined = within(self.client().await.join(JoinRequest {
            username: name.into(),
        }))
        .await
        .unwrap_or_else(|status| panic!("join {name}: {status}"))
        .into_inner();
        (self.with_token(&joined.token).await, joined.token)
    }

    /// Creates the rooms, as only someone signed in may: a session opens each once.
    pub async fn create_rooms(&self, rooms: &[&str]) {
        let (mut maker, _) = self.join(&format!("maker{}", next_maker())).await;
        for room in rooms {
            let mut stream = within(maker.subscribe(subscribe_req(room, 0)))
                .await
                .unwrap_or_else(|status| panic!("create room {room}: {status}"))
                .into_inner();
            welcome(&mut stream).await;
        }
    }

    pub async fn with_token(&self, token: &str) -> SignedIn {
        let bearer = Bearer(format!("Bearer {token}").parse().unwrap());
        ChatServiceClient::with_interceptor(self.channel().await, bearer)
    }

    /// A signed-in client whose connection comes from `local` (see `client_from`).
    pub async fn with_token_from(&self, token: &str, local: &str) -> SignedIn {
        let bearer = Bearer(format!("Bearer {token}").parse().unwrap());
        let channel = Channel::from_shared(self.url())
            .unwrap()
            .local_address(Some(local.parse().unwrap()))
            .connect()
            .await
            .unwrap();
        ChatServiceClient::with_interceptor(channel, bearer)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn client(&self) -> ChatServiceClient<Channel> {
        ChatServiceClient::new(self.channel().await)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// A native client whose connection comes from another loopback address (all of
    /// 127.0.0.0/8 is this machine), so it counts as another client's address.
    pub async fn client_from(&self, local: &str) -> ChatServiceClient<Channel> {
        let channel = Channel::from_shared(self.url())
            .unwrap()
            .local_address(Some(local.parse().unwrap()))
            .connect()
            .await
            .unwrap();
        ChatServiceClient::new(channel)
    }

    /// grpc-web over HTTP/1.1, as most browsers reach a plain-HTTP server.
    pub fn web(&self) -> GrpcWeb {
        GrpcWeb {
            addr: self.addr,
            http2: false,
        }
    }

    /// grpc-web over HTTP/2 (cleartext, prior knowledge), as a browser behind an h2 proxy.
    pub fn web_h2(&self) -> GrpcWeb {
        GrpcWeb {
            addr: self.addr,
            http2: true,
        }
    }
}

fn next_maker() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub fn req(user: &str, room: &str, text: &str) -> MessageRequest {
    MessageRequest {
        username: user.into(),
        message: text.into(),
        room: room.into(),
        ..Default::default()
    }
}

/// Posts "m{i}" for each i in `numbers`, as `user` in `room`, one after the other.
pub async fn post_numbered(
    client: &mut ChatServiceClient<Channel>,
    user: &str,
    room: &str,
    numbers: std::ops::RangeInclusive<u64>,
) {
    for i in numbers {
        within(client.send_message(req(user, room, &format!("m{i}"))))
            .await
            .unwrap();
    }
}

/// The next event of a Subscribe stream, failing the test on an error, an end or a wait
/// past `WAIT`.
pub async fn next_event(stream: &mut Streaming<ChatEvent>) -> Event {
    let event = within(stream.message())
        .await
        .unwrap()
        .expect("stream ended");
    event.event.expect("event set")
}

/// The next chat message, skipping heartbeats, presence and typing.
pub async fn next_message(stream: &mut Streaming<ChatEvent>) -> MessageResponse {
    loop {
        match next_event(stream).await {
            Event::Message(m) => return m,
            Event::Heartbeat(_) | Event::Presence(_) | Event::Typing(_) => continue,
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

pub async fn welcome(stream: &mut Streaming<ChatEvent>) -> Welcome {
    match next_event(stream).await {
        Event::Welcome(w) => w,
        other => panic!("expected Welcome first, got {other:?}"),
    }
}

pub fn subscribe_req(room: &str, after_id: u64) -> SubscribeRequest {
    SubscribeRequest {
        room: room.into(),
        after_id,
        epoch: 0,
    }
}

/// A loopback address nothing listens on right now, for a `chat-server` process to bind.
pub fn free_addr() -> String {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    addr.to_string()
}

/// Connects to a `chat-server` process at `addr` once it listens. If the process exits
/// first, the test fails with its exit status and `log` (its stderr, when kept in a file).
pub async fn connect_when_ready(
    addr: &str,
    child: &mut tokio::process::Child,
    log: Option<&std::path::Path>,
) -> Channel {
    let url = format!("http://{addr}");
    within(async {
        loop {
            if let Some(exit) = child.try_wait().unwrap() {
                let log = log.and_then(|l| std::fs::read_to_string(l).ok());
                panic!(
                    "chat-server exited at start ({exit}):\n{}",
                    log.unwrap_or_default()
                );
            }
            match Channel::from_shared(url.clone()).unwrap().connect().await {
                Ok(channel) => break channel,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
}

/// Awaits `fut` or fails the test after `WAIT`.
pub async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(WAIT, fut).await.expect("timed out")
}

/// grpc-web (binary, `application/grpc-web+proto`) over a fresh connection, as a browser
/// sends it.
pub struct GrpcWeb {
    pub addr: SocketAddr,
    pub http2: bool,
}

pub struct WebResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    body: Incoming,
    buf: BytesMut,
    pub trailers: Option<String>,
}

impl GrpcWeb {
    /// Sends one request message to `/grpcchat.ChatService/{method}`.
    pub async fn call(&self, method: &str, msg: &impl Message) -> WebResponse {
        self.call_as(method, msg, None).await
    }

    /// The same, signed in with a session token, as the browser sends it.
    pub async fn call_with_token(
        &self,
        method: &str,
        msg: &impl Message,
        token: &str,
    ) -> WebResponse {
        self.call_as(method, msg, Some(token)).await
    }

    async fn call_as(&self, method: &str, msg: &impl Message, token: Option<&str>) -> WebResponse {
        let mut body = BytesMut::new();
        let payload = msg.encode_to_vec();
        body.extend_from_slice(&[0]);
        body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        body.extend_from_slice(&payload);
        let req = http::Request::post(format!(
            "http://{}/grpcchat.ChatService/{method}",
            self.addr
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("accept", "application/grpc-web+proto");
        let req = match token {
            Some(token) => req.header("authorization", format!("Bearer {token}")),
            None => req,
        }
        .body(Full::new(body.freeze()))
        .unwrap();
        let res = self.send(req).await;
        let (parts, body) = res.into_parts();
        WebResponse {
            status: parts.status,
            headers: parts.headers,
            body,
            buf: BytesMut::new(),
            trailers: None,
        }
    }

    pub async fn send<B>(&self, req: http::Request<B>) -> http::Response<Incoming>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(req).await.unwrap()
    }
}

impl WebResponse {
    /// The next data message, or None once the trailer frame (or the end) is reached.
    pub async fn next<M: Message + Default>(&mut self) -> Option<M> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
                if self.buf.len() >= 5 + len {
                    let flag = self.buf[0];
                    self.buf.advance(5);
                    let frame = self.buf.split_to(len).freeze();
                    if flag & 0x80 != 0 {
                        self.trailers = Some(String::from_utf8_lossy(&frame).into_owned());
                        return None;
                    }
                    return Some(M::decode(frame).expect("valid protobuf"));
                }
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                _ => return None,
            }
        }
    }

    /// grpc-status from the headers (trailers-only responses) or the trailer frame.
    pub fn grpc_status(&self) -> Option<String> {
        header_status(&self.headers).or_else(|| {
            self.trailers.as_ref().and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("grpc-status:").map(|v| v.trim().to_owned()))
            })
        })
    }

    pub fn grpc_message(&self) -> Option<String> {
        self.headers
            .get("grpc-message")
            .map(|v| v.to_str().unwrap().to_owned())
            .or_else(|| {
                self.trailers.as_ref().and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("grpc-message:").map(|v| v.trim().to_owned()))
                })
            })
            .map(|m| percent_decode(&m))
    }

    pub async fn body_text(self) -> String {
        let bytes: Bytes = self.body.collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

fn header_status(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
