//! Resuming a Subscribe stream from the store: whatever the size of the gap, the client
//! gets every message after its last id exactly once, in order, then the live feed.
mod common;

use common::{next_message, post_numbered, subscribe_req, welcome, within, TestServer};

#[tokio::test]
async fn resume_across_a_gap_larger_than_the_in_memory_queue() {
    let config = chat_server::Config {
        subscriber_queue: 16,
        ..chat_server::Config::for_tests()
    };
    let server = TestServer::start_with(config).await;
    let mut client = server.client().await;
    post_numbered(&mut client, "a", "", 1..=1200).await;

    let mut stream = client
        .subscribe(subscribe_req("", 7))
        .await
        .unwrap()
        .into_inner();
    let w = welcome(&mut stream).await;
    assert_eq!((w.last_id, w.reset), (1200, false));
    // New messages race with the replay.
    let mut poster = server.client().await;
    let posting = tokio::spawn(async move {
        post_numbered(&mut poster, "b", "", 1201..=1300).await;
    });
    for expected in 8..=1300u64 {
        let msg = next_message(&mut stream).await;
        assert_eq!(msg.id, expected, "no gap, no duplicate");
        assert_eq!(msg.text, format!("m{expected}"));
    }
    within(posting).await.unwrap();
}
