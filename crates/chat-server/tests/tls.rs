//! TLS on chat-server's own port (`--tls-cert`, `--tls-key`): ALPN gives HTTP/2 to whoever
//! offers it and HTTP/1.1 to the rest, on one port, for native gRPC, grpc-web and the page
//! alike; the accept loop's guards hold over TLS; SIGHUP swaps the certificate for new
//! connections while open ones carry on, and keeps it when the new files are broken.
mod common;

use std::{process::Stdio, time::Duration};

use bytes::Bytes;
use chat_proto::{chat_service_client::ChatServiceClient, SubscribeRequest};
use chat_server::Config;
use common::{
    connect_endpoint_when_ready, connector_trusting, free_addr, make_cert, next_message,
    raw_grpc_web_subscribe, req, send_on, subscribe_req, tls_connect, welcome, within, MadeCert,
    TestCert, TestServer,
};
use http_body_util::{BodyExt, Empty};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    process::Command,
};
use tokio_rustls::{client::TlsStream, rustls::pki_types::ServerName};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// What the handshake settled: the protocol (ALPN), and the certificate presented.
fn agreed(stream: &TlsStream<TcpStream>) -> (Option<Vec<u8>>, Vec<u8>) {
    let (_, tls) = stream.get_ref();
    let presented = tls.peer_certificates().expect("a certificate")[0].to_vec();
    (tls.alpn_protocol().map(<[u8]>::to_vec), presented)
}

fn server_name() -> ServerName<'static> {
    ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())
}

#[tokio::test]
async fn alpn_gives_http2_or_http1_on_one_port_to_grpc_grpc_web_and_the_page() {
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(
        dist.path().join("index.html"),
        "<title>chat over TLS</title>",
    )
    .unwrap();
    let server = TestServer::start_tls_with(Config {
        static_dir: Some(dist.path().into()),
        ..Config::for_tests()
    })
    .await;
    let cert = server.tls.as_ref().unwrap();

    // The server's preference decides: h2 whenever it is offered, else http/1.1; a client
    // offering nothing still gets a session (and speaks HTTP/1.1 on it, below).
    type Offered<'a> = &'a [&'a [u8]];
    let cases: [(Offered, Option<&[u8]>); 4] = [
        (&[b"h2", b"http/1.1"], Some(b"h2")),
        (&[b"http/1.1", b"h2"], Some(b"h2")),
        (&[b"http/1.1"], Some(b"http/1.1")),
        (&[], None),
    ];
    for (offered, expected) in cases {
        let stream = tls_connect(&cert.connector(offered), server.addr).await;
        let (alpn, presented) = agreed(&stream);
        assert_eq!(alpn.as_deref(), expected, "offered {offered:?}");
        assert_eq!(presented, cert.made.der);
    }

    // Native gRPC over TLS (tonic offers h2).
    let (mut alice, token) = server.join("alice").await;
    let mut feed = within(alice.subscribe(subscribe_req("", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut feed).await;
    let (mut bob, _) = server.join("bob").await;
    let sent = within(bob.send_message(req("bob", "", "native over TLS")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_message(&mut feed).await.id, sent.id);

    // grpc-web over HTTP/1.1 (ALPN http/1.1) and over HTTP/2 (ALPN h2), as browsers send it.
    for web in [server.web(), server.web_h2()] {
        let text = format!("grpc-web over TLS, h2: {}", web.http2);
        let mut res = web
            .call_with_token("SendMessage", &req("alice", "", &text), &token)
            .await;
        assert_eq!(res.status, 200);
        let sent: chat_proto::MessageResponse = within(res.next()).await.expect("a reply");
        let got = next_message(&mut feed).await;
        assert_eq!((got.id, got.message.contains(&text)), (sent.id, true));
    }

    // The page, over each protocol.
    for (web, version) in [
        (server.web(), http::Version::HTTP_11),
        (server.web_h2(), http::Version::HTTP_2),
    ] {
        let page = web
            .send(
                http::Request::get(format!("https://{}/", server.addr))
                    .body(Empty::<Bytes>::new())
                    .unwrap(),
            )
            .await;
        assert_eq!((page.status().as_u16(), page.version()), (200, version));
        let body = page.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("chat over TLS"));
    }
    // A client that offered no ALPN at all is served HTTP/1.1.
    let stream = tls_connect(&cert.connector(&[]), server.addr).await;
    let page = send_on(
        stream,
        false,
        http::Request::get("/").body(Empty::<Bytes>::new()).unwrap(),
    )
    .await;
    assert_eq!(
        (page.status().as_u16(), page.version()),
        (200, http::Version::HTTP_11)
    );
}

/// Reads until the server closes the connection (or `WAIT` fails the test); what it sent.
async fn read_until_closed<R: AsyncReadExt + Unpin>(io: &mut R) -> Vec<u8> {
    let mut got = Vec::new();
    within(async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    got
}

#[tokio::test]
async fn a_client_that_never_says_hello_holds_its_slot_only_until_the_handshake_deadline() {
    let server = TestServer::start_tls_with(Config {
        header_read_timeout_ms: 1000,
        max_connections_per_ip: 1,
        ..Config::for_tests()
    })
    .await;
    let connector = server.tls.as_ref().unwrap().connector(&[b"h2"]);
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    // It counts against the caps: the address's one slot is taken, so another connection
    // is closed before its handshake.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let refused = within(connector.connect(server_name(), tcp)).await;
    assert!(refused.is_err(), "a second connection was let in");
    // Past the deadline the silent one is closed and its slot is free again.
    let started = std::time::Instant::now();
    assert!(read_until_closed(&mut silent).await.is_empty());
    assert!(started.elapsed() < Duration::from_secs(5));
    let stream = tls_connect(&connector, server.addr).await;
    assert_eq!(agreed(&stream).0.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_over_tls_has_its_connection_closed() {
    let server = TestServer::start_tls_with(Config {
        subscriber_queue: 64,
        stall_timeout_ms: 200,
        ..Config::for_tests()
    })
    .await;
    // grpc-web over HTTP/1.1 on a raw TLS stream with a small receive buffer, so the test
    // decides when bytes are read: here, never until the end.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.addr).await.unwrap();
    let connector = server.tls.as_ref().unwrap().connector(&[b"http/1.1"]);
    let mut tls = within(connector.connect(server_name(), tcp)).await.unwrap();
    tls.write_all(&raw_grpc_web_subscribe(
        server.addr,
        &SubscribeRequest::default(),
    ))
    .await
    .unwrap();
    tls.flush().await.unwrap();

    let mut client = server.client().await;
    let text = "x".repeat(3000);
    for i in 1..=1500 {
        within(client.send_message(req("a", "", &format!("{i} {text}"))))
            .await
            .unwrap();
    }
    // No status could reach a client that does not read: the server closed the
    // connection under TLS, and what arrived is the start of the stream, then the end.
    let got = read_until_closed(&mut tls).await;
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.starts_with("HTTP/1.1 200"),
        "{}",
        &got[..got.len().min(200)]
    );
    assert!(
        !got.contains("grpc-status:"),
        "ended with a status, not closed"
    );
    // The server carries on for everyone else.
    within(client.send_message(req("a", "", "still here")))
        .await
        .unwrap();
}

/// A native client at `addr` over TLS trusting only `made`.
fn endpoint_trusting(addr: &str, made: &MadeCert) -> Endpoint {
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&made.cert_pem)))
        .unwrap()
}

fn hang_up(child: &tokio::process::Child) {
    let pid = child.id().expect("running") as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
}

#[tokio::test]
async fn sighup_swaps_the_certificate_for_new_connections_while_open_ones_carry_on() {
    let cert = TestCert::new();
    let first = cert.made.clone();
    let addr = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--addr", &addr, "--static-dir", "/nonexistent"])
        .args(["--db-sync", "normal", "--max-messages-per-sec", "0"])
        .arg("--db")
        .arg(dir.path().join("chat.db"))
        // The env-var forms of --tls-cert and --tls-key.
        .env("CHAT_TLS_CERT", &cert.cert)
        .env("CHAT_TLS_KEY", &cert.key)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let channel = connect_endpoint_when_ready(
        endpoint_trusting(&addr, &first),
        &mut child,
        Some(&log_path),
    )
    .await;
    let mut stream = within(ChatServiceClient::new(channel).subscribe(subscribe_req("", 0)))
        .await
        .unwrap()
        .into_inner();
    welcome(&mut stream).await;
    let socket_addr = addr.parse().unwrap();

    // A renewal: new files, then SIGHUP. New connections get the new certificate (once
    // the server has read it: until then they get the first, which this client refuses).
    let second = make_cert();
    cert.install(&second);
    hang_up(&child);
    let trusts_second = connector_trusting(&second.der, &[b"h2"]);
    let renewed = within(async {
        loop {
            let tcp = TcpStream::connect(socket_addr).await.unwrap();
            match trusts_second.connect(server_name(), tcp).await {
                Ok(stream) => break stream,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    assert_eq!(agreed(&renewed).1, second.der);
    // The stream opened on the first certificate still delivers, on its own connection.
    let mut poster =
        ChatServiceClient::new(endpoint_trusting(&addr, &second).connect().await.unwrap());
    let sent = within(poster.send_message(req("poster", "", "after the renewal")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_message(&mut stream).await.id, sent.id);

    // A broken renewal: the error is logged, naming the file, and the second certificate
    // keeps serving new connections.
    std::fs::write(
        &cert.cert,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    hang_up(&child);
    let logged = within(async {
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap();
            if let Some(line) = log.lines().find(|l| l.contains("kept the TLS certificate")) {
                break line.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        logged.contains(&cert.cert.display().to_string()),
        "{logged}"
    );
    let after_broken = tls_connect(&trusts_second, socket_addr).await;
    assert_eq!(agreed(&after_broken).1, second.der);
    let sent = within(poster.send_message(req("poster", "", "after the broken one")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_message(&mut stream).await.id, sent.id);
}

#[tokio::test]
async fn sighup_without_tls_is_only_logged_and_the_server_keeps_serving() {
    let addr = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--addr", &addr, "--static-dir", "/nonexistent"])
        .arg("--db")
        .arg(dir.path().join("chat.db"))
        .env_remove("CHAT_TLS_CERT")
        .env_remove("CHAT_TLS_KEY")
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let channel = common::connect_when_ready(&addr, &mut child, Some(&log_path)).await;
    let mut client = ChatServiceClient::new(channel);
    // Answered, so the server is up, not just bound.
    within(client.send_message(req("still", "", "up")))
        .await
        .unwrap();
    // `systemctl reload` on the unit in deploy/ (behind nginx, no TLS) must not stop it.
    hang_up(&child);
    within(async {
        while !std::fs::read_to_string(&log_path)
            .unwrap()
            .contains("no TLS certificate to reload")
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    within(client.send_message(req("still", "", "up")))
        .await
        .unwrap();
    assert!(child.try_wait().unwrap().is_none(), "SIGHUP stopped it");
}

/// Runs the binary with `args` and TLS files that must stop it; what it said on stderr.
async fn refused_start(args: &[&std::ffi::OsStr]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--addr", &free_addr(), "--static-dir", "/nonexistent"])
        .arg("--db")
        .arg(dir.path().join("chat.db"))
        .args(args)
        .env_remove("CHAT_TLS_CERT")
        .env_remove("CHAT_TLS_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = within(child.wait_with_output()).await.unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "it started: {said}");
    said
}

#[tokio::test]
async fn a_certificate_or_key_that_does_not_load_stops_the_start_naming_the_file() {
    let cert = TestCert::new();
    let other = TestCert::new();
    let missing = cert.dir.path().join("missing.pem");
    let flag = |s: &'static str| std::ffi::OsStr::new(s);
    let said = refused_start(&[
        flag("--tls-cert"),
        missing.as_os_str(),
        flag("--tls-key"),
        cert.key.as_os_str(),
    ])
    .await;
    assert!(
        said.contains(&format!(
            "cannot use the TLS certificate {}",
            missing.display()
        )),
        "{said}"
    );
    // A certificate where the key should be.
    let said = refused_start(&[
        flag("--tls-cert"),
        cert.cert.as_os_str(),
        flag("--tls-key"),
        cert.cert.as_os_str(),
    ])
    .await;
    assert!(
        said.contains(&format!("cannot use the TLS key {}", cert.cert.display())),
        "{said}"
    );
    // Another certificate's key.
    let said = refused_start(&[
        flag("--tls-cert"),
        cert.cert.as_os_str(),
        flag("--tls-key"),
        other.key.as_os_str(),
    ])
    .await;
    assert!(
        said.contains(&format!(
            "the TLS key {} does not belong to the certificate {}",
            other.key.display(),
            cert.cert.display()
        )),
        "{said}"
    );
    // One flag without the other.
    let said = refused_start(&[flag("--tls-cert"), cert.cert.as_os_str()]).await;
    assert!(said.contains("--tls-key"), "{said}");
}
