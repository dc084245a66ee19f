//! What an operator runs: `chat-server backup FILE` while the server serves, `chat-server
//! check`, `--version`, and `--log-format json` for log shippers (which must never carry a
//! token or a message's text).
mod common;

use std::path::Path;

use chat_proto::{
    chat_service_client::ChatServiceClient, ChangePasswordRequest, HistoryRequest, JoinRequest,
    MessageRequest, RegisterRequest, SignOutEverywhereRequest, SubscribeRequest,
};
use chat_server::Config;
use common::{connect_when_ready, free_addr, within, TestServer};
use tokio::process::Command;
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_chat-server");

/// The binary run to completion with `args`: (exit code, stderr).
async fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = within(Command::new(BIN).args(args).output()).await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

async fn post(client: &mut ChatServiceClient<Channel>, token: &str, room: &str, text: &str) {
    let mut req = tonic::Request::new(MessageRequest {
        room: room.into(),
        message: text.into(),
        ..Default::default()
    });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    within(client.send_message(req)).await.unwrap();
}

async fn join(client: &mut ChatServiceClient<Channel>, name: &str) -> String {
    within(client.join(JoinRequest {
        username: name.into(),
    }))
    .await
    .unwrap()
    .into_inner()
    .token
}

/// A server process on `db`, stderr into `log`.
async fn spawn_server(db: &Path, log: &Path, extra: &[&str]) -> (tokio::process::Child, Channel) {
    let addr = free_addr();
    let mut server = Command::new(BIN)
        .args([
            "--addr",
            &addr,
            "--static-dir",
            "/nonexistent",
            "--db",
            path(db),
        ])
        // Bulk posting as one person; the rate limit has tests of its own.
        .args(["--max-messages-per-sec", "0"])
        .args(extra)
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let channel = connect_when_ready(&addr, &mut server, Some(log)).await;
    (server, channel)
}

async fn sigterm(server: &mut tokio::process::Child) {
    let pid = server.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap()
        .success());
    assert!(within(server.wait()).await.unwrap().success());
}

#[tokio::test]
async fn version_names_the_release() {
    let out = Command::new(BIN).arg("--version").output().await.unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("chat-server {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn backup_while_serving_holds_every_message_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (db, copy) = (dir.path().join("chat.db"), dir.path().join("copy.db"));
    let (mut server, channel) = spawn_server(&db, &dir.path().join("log"), &[]).await;
    let mut client = ChatServiceClient::new(channel);
    let token = join(&mut client, "ann").await;
    for i in 1..=30 {
        post(&mut client, &token, "general", &format!("before {i}")).await;
    }
    // A live stream, as during any real backup.
    let mut stream = within(client.subscribe(SubscribeRequest::default()))
        .await
        .unwrap()
        .into_inner();
    within(stream.message()).await.unwrap().expect("welcome");

    let (code, said) = run(&["--db", path(&db), "backup", path(&copy)]).await;
    assert_eq!(code, Some(0), "{said}");
    // The server goes on as before.
    post(&mut client, &token, "general", "after").await;
    sigterm(&mut server).await;

    let (code, said) = run(&["check", "--db", path(&copy)]).await;
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("ok"), "{said}");
    // The copy is a database a server starts on, holding exactly what came before.
    let restored = TestServer::start_with(Config {
        db: copy.clone().into(),
        ..Config::for_tests()
    })
    .await;
    let history = within(restored.client().await.history(HistoryRequest {
        room: "general".into(),
        limit: 100,
        ..Default::default()
    }))
    .await
    .unwrap()
    .into_inner();
    let texts: Vec<String> = history.messages.into_iter().map(|m| m.text).collect();
    let expected: Vec<String> = (1..=30).map(|i| format!("before {i}")).collect();
    assert_eq!(texts, expected);
    assert!(!Path::new(&format!("{}.partial", path(&copy))).exists());
}

#[tokio::test]
async fn backup_never_overwrites_and_never_creates_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let (missing, out) = (dir.path().join("missing.db"), dir.path().join("out.db"));
    let (code, said) = run(&["--db", path(&missing), "backup", path(&out)]).await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("cannot open the database"), "{said}");
    assert!(!missing.exists() && !out.exists());

    std::fs::write(&out, "keep me").unwrap();
    let (code, said) = run(&["--db", path(&missing), "backup", path(&out)]).await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("already exists"), "{said}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
}

/// Both are SQLite's tools: given a PostgreSQL URL they say which tool to use instead,
/// never touching the database, and never print its password.
#[tokio::test]
async fn backup_and_check_point_a_postgres_database_at_its_own_tools() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.db");
    let url = "postgres://chat:s3cret@127.0.0.1:1/chat";
    let (code, said) = run(&["--db", url, "backup", path(&out)]).await;
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("is a PostgreSQL database") && said.contains("pg_dump"),
        "{said}"
    );
    assert!(!said.contains("s3cret"), "{said}");
    assert!(!out.exists());
    let (code, said) = run(&["--db", url, "check"]).await;
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("pg_amcheck"), "{said}");
}

#[tokio::test]
async fn check_tells_a_sound_database_from_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (code, said) = run(&["--db", path(&db), "check"]).await;
    assert_eq!(code, Some(2), "a missing file cannot be checked: {said}");
    assert!(!db.exists());

    let (mut server, channel) = spawn_server(&db, &dir.path().join("log"), &[]).await;
    let mut client = ChatServiceClient::new(channel);
    let token = join(&mut client, "ann").await;
    for i in 0..200 {
        post(
            &mut client,
            &token,
            "general",
            &format!("message {i} {}", "x".repeat(200)),
        )
        .await;
    }
    sigterm(&mut server).await;
    let (code, said) = run(&["--db", path(&db), "check"]).await;
    assert_eq!(code, Some(0), "{said}");

    // Scribble over the second half of the file, as a failing disk might.
    let mut bytes = std::fs::read(&db).unwrap();
    let half = bytes.len() / 2;
    for (i, b) in bytes[half..].iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    std::fs::write(&db, bytes).unwrap();
    let (code, said) = run(&["--db", path(&db), "check"]).await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("damaged"), "{said}");
}

#[tokio::test]
async fn json_logs_carry_sessions_and_rooms_but_no_secret_and_no_text() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("chat.db"), dir.path().join("log"));
    let (mut server, channel) = spawn_server(&db, &log, &["--log-format", "json"]).await;
    let mut client = ChatServiceClient::new(channel);
    let token = join(&mut client, "ann").await;
    let text = "the text of a private message";
    post(&mut client, &token, "ops-room", text).await;
    // An account's life: its passwords must stay out of the log too.
    let (password, new_password) = ("correct horse battery", "staple of the battery");
    let bob = within(client.register(RegisterRequest {
        username: "bob".into(),
        password: password.into(),
    }))
    .await
    .unwrap()
    .into_inner()
    .token;
    within(client.change_password(bearer(
        &bob,
        ChangePasswordRequest {
            old_password: password.into(),
            new_password: new_password.into(),
        },
    )))
    .await
    .unwrap();
    within(client.sign_out_everywhere(bearer(&bob, SignOutEverywhereRequest {})))
        .await
        .unwrap();
    sigterm(&mut server).await;

    let logged = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = logged
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in:\n{logged}"))
    };
    let joined = find("joined");
    assert_eq!(joined["level"], "INFO");
    assert_eq!(joined["name"], "ann");
    assert!(joined["session"].is_u64(), "{joined}");
    for about_bob in ["registered", "password changed", "signed out everywhere"] {
        let line = find(about_bob);
        assert_eq!(line["name"], "bob", "{line}");
        assert!(line["session"].is_u64(), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "room created" && l["room"] == "ops-room"),
        "no room in:\n{logged}"
    );
    assert!(!logged.contains(&token), "the session token is in the log");
    assert!(!logged.contains(text), "a message's text is in the log");
    assert!(!logged.contains(&bob), "a session token is in the log");
    for secret in [password, new_password] {
        assert!(!logged.contains(secret), "a password is in the log");
    }
}

fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    req
}
