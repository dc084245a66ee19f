//! Connections: the caps on how many are open (in total, per address), and the timeouts
//! that close slowloris and idle ones while a long-lived stream stays open.
mod common;

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use chat_proto::{chat_event::Event, ChatEvent, ListRoomsRequest};
use common::{req, subscribe_req, within, TestServer, WAIT};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use prost::Message;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// A TCP connection to the server from `local` (any of 127.0.0.0/8), so tests can be
/// several addresses.
async fn connect_from(server: SocketAddr, local: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

/// An HTTP/1.1 client over a connection from `local`.
async fn h1_from(server: SocketAddr, local: &str) -> SendRequest<Full<Bytes>> {
    let tcp = connect_from(server, local).await;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// One grpc-web ListRooms on the connection: whether the server answered it. The body is
/// read to the end, so the client keeps the connection for the next request.
async fn answered(sender: &mut SendRequest<Full<Bytes>>, server: SocketAddr) -> bool {
    let payload = ListRoomsRequest::default().encode_to_vec();
    let mut body = vec![0];
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(&payload);
    let request = http::Request::post(format!("http://{server}/grpcchat.ChatService/ListRooms"))
        .header("content-type", "application/grpc-web+proto")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    if sender.ready().await.is_err() {
        return false;
    }
    let Ok(response) = within(sender.send_request(request)).await else {
        return false;
    };
    response.status() == http::StatusCode::OK
        && within(response.into_body().collect()).await.is_ok()
}

/// Reads until the server closes the connection; fails the test if it stays open past
/// `WAIT`.
async fn closed_by_server(tcp: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    within(async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_closed_and_others_are_not() {
    let server = TestServer::start_with(chat_server::Config {
        max_connections_per_ip: 2,
        ..chat_server::Config::for_tests()
    })
    .await;
    let addr = server.addr;
    let mut first = h1_from(addr, "127.0.0.1").await;
    let mut second = h1_from(addr, "127.0.0.1").await;
    assert!(answered(&mut first, addr).await);
    assert!(answered(&mut second, addr).await);
    // A third from the same address is closed at once, before any request.
    let mut third = connect_from(addr, "127.0.0.1").await;
    closed_by_server(&mut third).await;
    // Another address has its own allowance.
    let mut other = h1_from(addr, "127.0.0.2").await;
    assert!(answered(&mut other, addr).await);
    // A closed connection frees its slot (once the server has noticed the close).
    drop(first);
    let mut freed = false;
    for _ in 0..50 {
        let mut again = h1_from(addr, "127.0.0.1").await;
        if answered(&mut again, addr).await {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "the slot of a closed connection is given back");
}

#[tokio::test]
async fn connections_over_the_global_cap_are_closed() {
    let server = TestServer::start_with(chat_server::Config {
        max_connections: 2,
        max_connections_per_ip: 0,
        ..chat_server::Config::for_tests()
    })
    .await;
    let addr = server.addr;
    let mut a = h1_from(addr, "127.0.0.1").await;
    let mut b = h1_from(addr, "127.0.0.2").await;
    assert!(answered(&mut a, addr).await);
    assert!(answered(&mut b, addr).await);
    let mut c = connect_from(addr, "127.0.0.3").await;
    closed_by_server(&mut c).await;
}

fn short_timeouts() -> chat_server::Config {
    chat_server::Config {
        header_read_timeout_ms: 300,
        idle_timeout_secs: 1,
        ..chat_server::Config::for_tests()
    }
}

#[tokio::test]
async fn a_header_trickled_byte_by_byte_is_cut_off() {
    let server = TestServer::start_with(short_timeouts()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    // A request line, then one header byte every 20 ms, as slowloris sends it. Left
    // alone this would take far longer than WAIT to finish.
    tcp.write_all(b"POST /grpcchat.ChatService/ListRooms HTTP/1.1\r\n")
        .await
        .unwrap();
    let trickled = within(async {
        for _ in 0..10_000 {
            if tcp.write_all(b"x").await.is_err() {
                return true;
            }
            let mut buf = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(20), tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                // hyper may answer 408 before closing.
                Ok(Ok(_)) => continue,
                Err(_elapsed) => continue,
            }
        }
        false
    })
    .await;
    assert!(trickled, "the server closed the trickling connection");
}

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed() {
    let server = TestServer::start_with(short_timeouts()).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    closed_by_server(&mut silent).await;
    // Half an HTTP/2 preface: hyper is still telling the protocols apart, and no
    // request ever starts.
    let mut preface = TcpStream::connect(server.addr).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    closed_by_server(&mut preface).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = TestServer::start_with(short_timeouts()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let payload = ListRoomsRequest::default().encode_to_vec();
    let mut body = vec![0];
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(&payload);
    let head = format!(
        "POST /grpcchat.ChatService/ListRooms HTTP/1.1\r\nhost: chat\r\ncontent-type: application/grpc-web+proto\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body).await.unwrap();
    // The response comes, then the connection (kept alive by default in HTTP/1.1) is
    // closed once it has waited long enough for a next request.
    let mut response = Vec::new();
    within(async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn a_grpc_web_subscribe_over_http1_outlives_the_timeouts() {
    let server = TestServer::start_with(short_timeouts()).await;
    let mut stream = server
        .web()
        .call("Subscribe", &subscribe_req("general", 0))
        .await;
    assert!(matches!(
        stream.next::<ChatEvent>().await.and_then(|e| e.event),
        Some(Event::Welcome(_))
    ));
    // Past both timeouts with nothing sent either way (heartbeats are every 15 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server
        .client()
        .await
        .send_message(req("ann", "", "still there?"))
        .await
        .unwrap();
    let event = tokio::time::timeout(WAIT, stream.next::<ChatEvent>())
        .await
        .expect("timed out");
    match event.and_then(|e| e.event) {
        Some(Event::Message(m)) => assert_eq!(m.text, "still there?"),
        other => panic!("the stream should still be open, got {other:?}"),
    }
}

#[tokio::test]
async fn an_http2_connection_with_nothing_in_flight_is_closed() {
    let server = TestServer::start_with(short_timeouts()).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let payload = ListRoomsRequest::default().encode_to_vec();
    let mut body = vec![0];
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(&payload);
    let request = http::Request::post(format!(
        "http://{}/grpcchat.ChatService/ListRooms",
        server.addr
    ))
    .header("content-type", "application/grpc-web+proto")
    .body(Full::new(Bytes::from(body)))
    .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    drop(response);
    // Its one request is done; the connection ends without the client doing anything.
    within(conn).await.unwrap().ok();
}
