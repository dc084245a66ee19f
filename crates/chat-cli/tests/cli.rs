//! chat-cli as a person uses it: lines in, the room's messages out.
use std::{process::Stdio, time::Duration};

use chat_proto::{chat_service_client::ChatServiceClient, HistoryRequest, MessageRequest};
use chat_server::{app, Config, Shutdown};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
    process::Command,
};

const WAIT: Duration = Duration::from_secs(15);

async fn start_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app::serve(listener, Config::for_tests(), Shutdown::new()));
    url
}

fn cli(url: &str, name: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-cli"));
    cmd.args(["--name", name, "--server", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn piped_lines_are_posted_and_the_room_is_printed() {
    let url = start_server().await;
    let mut listener = cli(&url, "carol").spawn().unwrap();
    let mut out = BufReader::new(listener.stdout.take().unwrap()).lines();
    let channel = tonic::transport::Channel::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ChatServiceClient::new(channel);
    let post = |text: &str| MessageRequest {
        username: "web".into(),
        message: text.into(),
        room: String::new(),
    };

    // Carol has joined once she prints something: post until she does.
    let first = tokio::time::timeout(WAIT, async {
        loop {
            client.send_message(post("ping")).await.unwrap();
            if let Ok(line) =
                tokio::time::timeout(Duration::from_millis(300), out.next_line()).await
            {
                break line.unwrap().unwrap();
            }
        }
    })
    .await
    .unwrap();
    assert!(first.ends_with("[web]: ping"), "{first}");

    // A one-shot sender: posts its lines (blank ones skipped), exits once they are echoed.
    let mut sender = cli(&url, "dave").spawn().unwrap();
    let mut stdin = sender.stdin.take().unwrap();
    stdin
        .write_all(b"hello from dave\n\n   \nsecond line\n")
        .await
        .unwrap();
    drop(stdin);
    let done = tokio::time::timeout(WAIT, sender.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );

    let history = client
        .history(HistoryRequest {
            room: "general".into(),
            before_id: 0,
            limit: 10,
        })
        .await
        .unwrap();
    let texts: Vec<_> = history
        .into_inner()
        .messages
        .into_iter()
        .map(|m| m.text)
        .filter(|t| t != "ping")
        .collect();
    assert_eq!(texts, ["hello from dave", "second line"]);

    // The listener printed both, and prints what others post, as `HH:MM:SS [name]: text`.
    client.send_message(post("<b>hi</b>")).await.unwrap();
    let mut lines = Vec::new();
    while lines.len() < 3 {
        let line = tokio::time::timeout(WAIT, out.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if !line.ends_with("[web]: ping") {
            lines.push(line);
        }
    }
    let shape = |l: &str| {
        l.len() > 9 && l.as_bytes()[2] == b':' && l.as_bytes()[5] == b':' && l.as_bytes()[8] == b' '
    };
    assert!(lines.iter().all(|l| shape(l)), "{lines:?}");
    let bodies: Vec<_> = lines.iter().map(|l| &l[9..]).collect();
    assert_eq!(
        bodies,
        [
            "[dave]: hello from dave",
            "[dave]: second line",
            "[web]: <b>hi</b>"
        ]
    );

    // Typed lines from the long-running client are posted too.
    let mut stdin = listener.stdin.take().unwrap();
    stdin.write_all(b"carol here\n").await.unwrap();
    let line = tokio::time::timeout(WAIT, out.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(line.ends_with("[carol]: carol here"), "{line}");
}

#[tokio::test]
async fn a_refused_name_is_explained_and_exits_non_zero() {
    let url = start_server().await;
    let mut child = cli(&url, "not valid").spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hi\n")
        .await
        .unwrap();
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("InvalidArgument") && err.contains("may only contain letters"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_explained() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let out = tokio::time::timeout(WAIT, cli(&url, "x").output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
