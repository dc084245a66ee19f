//! The browser's path: grpc-web over HTTP/1.1 on the same port as native gRPC, static
//! files beside it, and CORS for a frontend hosted elsewhere.
mod common;

use chat_proto::{
    chat_event::Event, ChatEvent, HistoryRequest, HistoryResponse, MessageResponse,
    SubscribeRequest,
};
use chat_server::Config;
use common::{req, within, TestServer};
use http_body_util::Empty;

#[tokio::test]
async fn unary_and_server_streaming_over_http1() {
    let server = TestServer::start().await;
    let web = server.web();

    let mut sent = web
        .call("SendMessage", &req("webby", "", "hello over grpc-web"))
        .await;
    assert_eq!(sent.status, 200);
    assert!(sent.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/grpc-web"));
    let msg: MessageResponse = within(sent.next()).await.unwrap();
    assert_eq!(
        (msg.id, msg.message.as_str()),
        (1, "[webby]: hello over grpc-web")
    );
    assert!(within(sent.next::<MessageResponse>()).await.is_none());
    assert_eq!(sent.grpc_status().as_deref(), Some("0"));

    // The page's opening sequence: History for the recent conversation, then Subscribe
    // after the newest id it shows.
    let mut history = web
        .call(
            "History",
            &HistoryRequest {
                room: String::new(),
                before_id: 0,
                limit: 10,
            },
        )
        .await;
    let page: HistoryResponse = within(history.next()).await.unwrap();
    assert_eq!(page.messages.len(), 1);

    // The stream delivers frames as they happen, not at the end.
    let newest = page.messages.last().unwrap().id;
    let mut feed = web
        .call(
            "Subscribe",
            &SubscribeRequest {
                room: String::new(),
                after_id: newest,
                epoch: page.epoch,
            },
        )
        .await;
    let welcome: ChatEvent = within(feed.next()).await.unwrap();
    assert!(matches!(welcome.event, Some(Event::Welcome(w)) if w.last_id == 1 && !w.reset));
    for i in 2..=4u64 {
        let mut client = server.client().await;
        client
            .send_message(req("native", "", &format!("n{i}")))
            .await
            .unwrap();
        let event: ChatEvent = within(feed.next()).await.unwrap();
        let Some(Event::Message(m)) = event.event else {
            panic!("expected a message")
        };
        assert_eq!((m.id, m.username.as_str()), (i, "native"));
    }
}

#[tokio::test]
async fn grpc_web_over_http2_streams_too() {
    let server = TestServer::start().await;
    let web = server.web_h2();
    let mut feed = web.call("Subscribe", &SubscribeRequest::default()).await;
    assert_eq!(feed.status, 200);
    let welcome: ChatEvent = within(feed.next()).await.unwrap();
    assert!(matches!(welcome.event, Some(Event::Welcome(_))));
    let mut sent = web.call("SendMessage", &req("h2", "", "over h2")).await;
    let sent: MessageResponse = within(sent.next()).await.unwrap();
    let Some(Event::Message(got)) = within(feed.next::<ChatEvent>()).await.unwrap().event else {
        panic!()
    };
    assert_eq!(got, sent);
}

#[tokio::test]
async fn errors_reach_the_browser_as_grpc_status() {
    let server = TestServer::start().await;
    let mut res = server
        .web()
        .call("SendMessage", &req("webby", "", "   "))
        .await;
    assert_eq!(
        res.status, 200,
        "grpc-web carries errors in grpc-status, not HTTP codes"
    );
    assert!(within(res.next::<MessageResponse>()).await.is_none());
    assert_eq!(res.grpc_status().as_deref(), Some("3"), "INVALID_ARGUMENT");
    assert_eq!(res.grpc_message().as_deref(), Some("message is empty"));
}

#[tokio::test]
async fn static_files_are_served_beside_the_api() {
    let dir = std::env::temp_dir().join(format!("chat-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>chat</title>").unwrap();
    std::fs::write(dir.join("app.js"), "console.log(1)").unwrap();
    let server = TestServer::start_with(Config {
        static_dir: Some(dir.clone()),
        ..Config::for_tests()
    })
    .await;
    let web = server.web();
    for (path, expect) in [
        ("/", "<!doctype html>"),
        ("/app.js", "console.log"),
        ("/some/client/route", "<!doctype html>"),
    ] {
        let res = web
            .send(
                http::Request::get(format!("http://{}{path}", server.addr))
                    .body(Empty::<bytes::Bytes>::new())
                    .unwrap(),
            )
            .await;
        assert_eq!(res.status(), 200, "{path}");
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(String::from_utf8_lossy(&body).starts_with(expect), "{path}");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn cors_is_same_origin_by_default_and_configurable() {
    let preflight = |addr| {
        http::Request::options(format!("http://{addr}/grpcchat.ChatService/SendMessage"))
            .header("origin", "https://chat.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-grpc-web")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    let closed = TestServer::start().await;
    let res = closed.web().send(preflight(closed.addr)).await;
    assert!(res.headers().get("access-control-allow-origin").is_none());

    let config = Config {
        allowed_origins: vec!["https://chat.example".into()],
        ..Config::for_tests()
    };
    let open = TestServer::start_with(config).await;
    let res = open.web().send(preflight(open.addr)).await;
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://chat.example"
    );
    let allowed = res.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("x-grpc-web") && allowed.contains("content-type"),
        "{allowed}"
    );

    // Real calls expose the grpc status headers to the page's script.
    let res = open
        .web()
        .send(
            http::Request::post(format!(
                "http://{}/grpcchat.ChatService/SendMessage",
                open.addr
            ))
            .header("origin", "https://chat.example")
            .header("content-type", "application/grpc-web+proto")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(&[
                0, 0, 0, 0, 0,
            ])))
            .unwrap(),
        )
        .await;
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("grpc-status") && exposed.contains("grpc-message"),
        "{exposed}"
    );
}
