//! Per-address budgets: Joins per minute and the token-less posting allowance are kept
//! per client address (the TCP peer, or the forwarded client behind a trusted proxy), so
//! one address flooding or rotating names is refused while other addresses go on.
mod common;

use chat_proto::{JoinRequest, MessageRequest};
use common::TestServer;
use tonic::{Code, Request, Status};

fn join(name: &str) -> JoinRequest {
    JoinRequest {
        username: name.into(),
    }
}

fn bare(name: &str, text: &str) -> MessageRequest {
    MessageRequest {
        username: name.into(),
        message: text.into(),
        ..Default::default()
    }
}

fn forwarded_for<T>(msg: T, client: &str) -> Request<T> {
    let mut request = Request::new(msg);
    request
        .metadata_mut()
        .insert("x-forwarded-for", client.parse().unwrap());
    request
}

fn assert_refused_with_retry_after(status: &Status, code: Code, says: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(says), "{}", status.message());
    assert!(common::retry_after_ms(status) > 0);
}

fn small_join_budget() -> chat_server::Config {
    chat_server::Config {
        max_sign_ins_per_min: 1,
        sign_in_burst: 2,
        ..chat_server::Config::for_tests()
    }
}

#[tokio::test]
async fn a_join_flood_from_one_address_is_refused_and_other_addresses_go_on() {
    let server = TestServer::start_with(small_join_budget()).await;
    let mut flooder = server.client().await;
    flooder.join(join("a1")).await.unwrap();
    flooder.join(join("a2")).await.unwrap();
    let refused = flooder.join(join("a3")).await.unwrap_err();
    assert_refused_with_retry_after(
        &refused,
        Code::ResourceExhausted,
        "too many joins and sign-ins from your network address",
    );
    // A new connection from the same address is the same address.
    let refused = server.client().await.join(join("a4")).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    // Someone else is not affected.
    let mut other = server.client_from("127.0.0.2").await;
    other.join(join("b1")).await.unwrap();
    other.join(join("b2")).await.unwrap();
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_counts() {
    let server = TestServer::start_with(chat_server::Config {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..small_join_budget()
    })
    .await;
    // The "proxy" (127.0.0.1) forwards two clients; each has its own budget.
    let mut proxy = server.client().await;
    for name in ["p1", "p2"] {
        proxy
            .join(forwarded_for(join(name), "203.0.113.7"))
            .await
            .unwrap();
    }
    let refused = proxy
        .join(forwarded_for(join("p3"), "203.0.113.7"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    proxy
        .join(forwarded_for(join("q1"), "198.51.100.9"))
        .await
        .unwrap();

    // From a peer that is not a trusted proxy the header is ignored: a fresh forged
    // address each time buys nothing.
    let mut forger = server.client_from("127.0.0.2").await;
    forger
        .join(forwarded_for(join("f1"), "192.0.2.1"))
        .await
        .unwrap();
    forger
        .join(forwarded_for(join("f2"), "192.0.2.2"))
        .await
        .unwrap();
    let refused = forger
        .join(forwarded_for(join("f3"), "192.0.2.3"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn rotating_names_without_a_token_shares_one_allowance_per_address() {
    let server = TestServer::start_with(chat_server::Config {
        max_messages_per_sec: 1,
        message_burst: 3,
        ..chat_server::Config::for_tests()
    })
    .await;
    let mut rotator = server.client().await;
    for i in 0..3 {
        rotator
            .send_message(bare(&format!("name{i}"), "spam"))
            .await
            .unwrap();
    }
    let refused = rotator
        .send_message(bare("name3", "spam"))
        .await
        .unwrap_err();
    assert_refused_with_retry_after(
        &refused,
        Code::ResourceExhausted,
        "share one allowance per network address",
    );
    // Another address, and a signed-in person on this one, have their own allowances.
    server
        .client_from("127.0.0.2")
        .await
        .send_message(bare("name0", "fine"))
        .await
        .unwrap();
    let (mut ann, _) = server.join("ann").await;
    ann.send_message(bare("", "fine")).await.unwrap();
}

#[tokio::test]
async fn zero_messages_per_sec_lifts_the_address_allowance() {
    // Config::for_tests() runs with --max-messages-per-sec 0, as the benchmarks do.
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for i in 0..100 {
        client
            .send_message(bare(&format!("name{i}"), "load"))
            .await
            .unwrap();
    }
}
