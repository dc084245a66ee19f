//! Shared test harness: a real server on an ephemeral loopback port (in plain HTTP, or over
//! TLS with a certificate made at test time), a native gRPC client (HTTP/2) and a minimal
//! grpc-web client over HTTP/1.1 or HTTP/2 that reads frames as they arrive.
#![allow(dead_code)]

pub mod cluster;
pub mod nats;
pub mod pg;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use bytes::{Buf, Bytes, BytesMut};
use chat_proto::{
    chat_event::Event, chat_service_client::ChatServiceClient, ChatEvent, JoinRequest,
    MessageRequest, MessageResponse, SubscribeRequest, Welcome,
};
use chat_server::{app, Config, RoomHub, Shutdown};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_rustls::{
    client::TlsStream,
    rustls::{self, pki_types::ServerName, RootCertStore},
    TlsConnector,
};
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
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
    /// The certificate it serves TLS with, when it does.
    pub tls: Option<TestCert>,
}

/// A certificate and key as made by `make_cert`.
#[derive(Clone)]
pub struct MadeCert {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate itself, to compare with what a server presents.
    pub der: Vec<u8>,
}

/// A self-signed certificate for localhost and 127.0.0.1, made now (a fresh key each
/// time, so two are never alike).
pub fn make_cert() -> MadeCert {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    MadeCert {
        cert_pem: made.cert.pem(),
        key_pem: made.signing_key.serialize_pem(),
        der: made.cert.der().to_vec(),
    }
}

/// A certificate in files (`cert.pem`, `key.pem`) of a directory removed with it.
pub struct TestCert {
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// What the files hold (the last `install`ed).
    pub made: MadeCert,
}

impl TestCert {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let made = make_cert();
        let cert = TestCert {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            dir,
            made: made.clone(),
        };
        cert.install(&made);
        cert
    }

    /// Writes `made` over the files, as a renewal does.
    pub fn install(&self, made: &MadeCert) {
        std::fs::write(&self.cert, &made.cert_pem).unwrap();
        std::fs::write(&self.key, &made.key_pem).unwrap();
    }

    /// Trusts this certificate alone (the current one), offering `alpn`.
    pub fn connector(&self, alpn: &[&[u8]]) -> TlsConnector {
        connector_trusting(&self.made.der, alpn)
    }
}

/// A TLS client trusting only the certificate `der`, offering `alpn` (most wanted first).
pub fn connector_trusting(der: &[u8], alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(der.to_vec().into()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// A TLS handshake with the server at `addr` (as 127.0.0.1).
pub async fn tls_connect(connector: &TlsConnector, addr: SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    within(connector.connect(name, tcp))
        .await
        .expect("TLS handshake")
}

/// The test server's SQLite database, removed with its WAL files when the test ends
/// (empty for a server on PostgreSQL, whose database `pg::Database` removes).
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

    /// A server on PostgreSQL database `db` (see `pg`), otherwise as `start`.
    pub async fn start_on(db: &pg::Database) -> Self {
        Self::start_with(pg_config(db)).await
    }

    pub async fn start_with(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let db = DbFile(config.db.sqlite_path().unwrap_or(Path::new("")).to_owned());
        let hub = app::open_hub(&config).await.unwrap();
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
            tls: None,
        }
    }

    /// The server over TLS, with a certificate made now; every client below speaks TLS to it.
    pub async fn start_tls() -> Self {
        Self::start_tls_with(Config::for_tests()).await
    }

    pub async fn start_tls_with(config: Config) -> Self {
        let cert = TestCert::new();
        let config = Config {
            tls_cert: Some(cert.cert.clone()),
            tls_key: Some(cert.key.clone()),
            ..config
        };
        TestServer {
            tls: Some(cert),
            ..Self::start_with(config).await
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
        let channel = self
            .endpoint()
            .local_address(Some(local.parse().unwrap()))
            .connect()
            .await
            .unwrap();
        ChatServiceClient::with_interceptor(channel, bearer)
    }

    pub fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("https://{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// Where a native client connects: over TLS trusting only the test certificate, when
    /// the server speaks TLS.
    pub fn endpoint(&self) -> Endpoint {
        let endpoint = Channel::from_shared(self.url()).unwrap();
        match &self.tls {
            Some(cert) => endpoint
                .tls_config(
                    ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(&cert.made.cert_pem)),
                )
                .unwrap(),
            None => endpoint,
        }
    }

    pub async fn client(&self) -> ChatServiceClient<Channel> {
        ChatServiceClient::new(self.channel().await)
    }

    pub async fn channel(&self) -> Channel {
        self.endpoint().connect().await.unwrap()
    }

    /// A native client whose connection comes from another loopback address (all of
    /// 127.0.0.0/8 is this machine), so it counts as another client's address.
    pub async fn client_from(&self, local: &str) -> ChatServiceClient<Channel> {
        let channel = self
            .endpoint()
            .local_address(Some(local.parse().unwrap()))
            .connect()
            .await
            .unwrap();
        ChatServiceClient::new(channel)
    }

    /// grpc-web over HTTP/1.1, as most browsers reach a plain-HTTP server (over TLS,
    /// offering only http/1.1 in ALPN).
    pub fn web(&self) -> GrpcWeb {
        self.grpc_web(false)
    }

    /// grpc-web over HTTP/2: cleartext with prior knowledge, as a browser behind an h2
    /// proxy; over TLS, h2 by ALPN, as a browser reaching the server itself.
    pub fn web_h2(&self) -> GrpcWeb {
        self.grpc_web(true)
    }

    fn grpc_web(&self, http2: bool) -> GrpcWeb {
        let alpn: &[u8] = if http2 { b"h2" } else { b"http/1.1" };
        GrpcWeb {
            addr: self.addr,
            http2,
            tls: self.tls.as_ref().map(|cert| cert.connector(&[alpn])),
        }
    }
}

/// The test config on PostgreSQL database `db`.
pub fn pg_config(db: &pg::Database) -> Config {
    Config {
        db: chat_server::store::Database::Postgres(db.url.clone()),
        ..Config::for_tests()
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

/// A grpc-web Subscribe as HTTP/1.1 bytes (head and body), for tests that write it on a
/// raw socket and so decide when the answer is read.
pub fn raw_grpc_web_subscribe(addr: SocketAddr, request: &SubscribeRequest) -> Vec<u8> {
    let payload = request.encode_to_vec();
    let mut body = vec![0u8];
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(&payload);
    let mut raw = format!(
        "POST /grpcchat.ChatService/Subscribe HTTP/1.1\r\nhost: {addr}\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    raw
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
    let endpoint = Channel::from_shared(format!("http://{addr}")).unwrap();
    connect_endpoint_when_ready(endpoint, child, log).await
}

/// `connect_when_ready` to any endpoint (an https:// one with its TLS settings).
pub async fn connect_endpoint_when_ready(
    endpoint: Endpoint,
    child: &mut tokio::process::Child,
    log: Option<&std::path::Path>,
) -> Channel {
    within(async {
        loop {
            if let Some(exit) = child.try_wait().unwrap() {
                let log = log.and_then(|l| std::fs::read_to_string(l).ok());
                panic!(
                    "chat-server exited at start ({exit}):\n{}",
                    log.unwrap_or_default()
                );
            }
            match endpoint.connect().await {
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
    pub tls: Option<TlsConnector>,
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
        B: hyper::body::Body + Send + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match &self.tls {
            Some(tls) => send_on(tls_connect(tls, self.addr).await, self.http2, req).await,
            None => {
                send_on(
                    TcpStream::connect(self.addr).await.unwrap(),
                    self.http2,
                    req,
                )
                .await
            }
        }
    }
}

/// One request on a fresh connection `io`, in HTTP/2 or HTTP/1.1.
pub async fn send_on<I, B>(io: I, http2: bool, req: http::Request<B>) -> http::Response<Incoming>
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = TokioIo::new(io);
    if http2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(req).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
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

/// The wait a refusal asks for (`retry-after-ms`), which every refusal that can pass must carry.
pub fn retry_after_ms(status: &tonic::Status) -> u64 {
    status
        .metadata()
        .get("retry-after-ms")
        .expect("retry-after-ms")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}
