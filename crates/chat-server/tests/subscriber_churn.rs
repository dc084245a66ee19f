//! Subscribers that come and go leave nothing behind: after 10,000 Subscribe streams
//! opened and closed on a quiet room (native and grpc-web, token-less and signed in), the
//! server holds exactly what it held before: no ring entries, readers, parked wakers or
//! members, and the session has every stream slot back.
mod common;

use chat_proto::ChatEvent;
use common::{req, subscribe_req, welcome, within, TestServer};
use futures::future::join_all;

const BATCHES: usize = 100;
/// Per batch: token-less native streams, signed-in native ones, one grpc-web over HTTP/1.1.
const ANONYMOUS: usize = 92;
const SIGNED_IN: usize = 7;

#[tokio::test]
async fn ten_thousand_streams_opened_and_closed_leave_nothing_behind() {
    let server = TestServer::start().await;
    let (ann, token) = server.join("ann").await;
    let anonymous = server.client().await;
    let before = server.hub.memory_stats();
    assert_eq!((before.rooms, before.readers, before.members), (1, 0, 0));

    for _ in 0..BATCHES {
        let native = (0..ANONYMOUS + SIGNED_IN).map(|i| {
            let (mut anonymous, mut ann) = (anonymous.clone(), ann.clone());
            async move {
                let mut stream = if i < ANONYMOUS {
                    anonymous.subscribe(subscribe_req("", 0)).await
                } else {
                    ann.subscribe(subscribe_req("", 0)).await
                }
                .unwrap()
                .into_inner();
                welcome(&mut stream).await;
            }
        });
        let web = async {
            let mut tab = server
                .web()
                .call_with_token("Subscribe", &subscribe_req("", 0), &token)
                .await;
            assert!(tab.next::<ChatEvent>().await.is_some(), "a Welcome");
        };
        within(async { futures::join!(join_all(native), web) }).await;
        // Every stream was dropped by its client; the server lets go of each as soon as
        // it hears (RST_STREAM, or the connection's end), before the session's slots run out.
        within(async {
            while server.hub.memory_stats().readers != 0 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        })
        .await;
    }

    // A post to the quiet room wakes nobody and is kept by nobody's ring.
    within(anonymous.clone().send_message(req("bo", "", "anyone?")))
        .await
        .unwrap();
    assert_eq!(server.hub.memory_stats(), before);
    // All of ann's stream slots are back: she can open as many as ever at once.
    let limit = chat_server::Config::for_tests().max_streams_per_session;
    let again = (0..limit).map(|_| {
        let mut ann = ann.clone();
        async move { ann.subscribe(subscribe_req("", 0)).await.unwrap() }
    });
    assert_eq!(within(join_all(again)).await.len(), limit);
}
