//! chat-cli as a person uses it: lines in, the room's messages out.
use std::{
    process::{Output, Stdio},
    time::Duration,
};

use chat_proto::{
    chat_service_client::ChatServiceClient, HistoryRequest, JoinRequest, MessageRequest,
    MessageResponse, RegisterRequest, SignInRequest,
};
use chat_server::{app, Config, Shutdown};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
    process::{Child, Command},
};
use tonic::{Code, Status};

const WAIT: Duration = Duration::from_secs(15);

async fn start_server() -> (String, DbFiles) {
    start_server_with(Config::for_tests()).await
}

/// A server in this process, at the returned URL; its database goes with the `DbFiles`.
async fn start_server_with(config: Config) -> (String, DbFiles) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let db = DbFiles(
        config
            .db
            .sqlite_path()
            .expect("a test database file")
            .to_owned(),
    );
    tokio::spawn(app::serve(listener, config, Shutdown::new()));
    (url, db)
}

/// A test server's database file, removed with its WAL files when the test ends.
struct DbFiles(std::path::PathBuf);

impl Drop for DbFiles {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Waits for the CLI to exit and returns what it printed.
async fn exited(child: Child) -> Output {
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("chat-cli did not exit")
        .unwrap()
}

/// Types `input` into the CLI, closes its stdin, and waits for it to exit.
async fn run_with_input(mut child: Child, input: &[u8]) -> Output {
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    exited(child).await
}

fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newest `limit` messages of `general`, oldest first.
async fn general_history(
    client: &mut ChatServiceClient<tonic::transport::Channel>,
    limit: u32,
) -> Vec<MessageResponse> {
    client
        .history(HistoryRequest {
            room: "general".into(),
            before_id: 0,
            limit,
        })
        .await
        .unwrap()
        .into_inner()
        .messages
}

fn cli(url: &str, name: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-cli"));
    cmd.args(["--name", name, "--server", url])
        // Whatever the shell running the tests has set, the CLI starts as a guest.
        .env_remove("CHAT_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn piped_lines_are_posted_and_the_room_is_printed() {
    let (url, _db) = start_server().await;
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
        ..Default::default()
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
    let sender = cli(&url, "dave").spawn().unwrap();
    let done = run_with_input(sender, b"hello from dave\n\n   \nsecond line\n").await;
    assert_success(&done);

    let texts: Vec<_> = general_history(&mut client, 10)
        .await
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
async fn a_bad_name_is_explained_before_anything_is_sent() {
    // Nobody listens there: the name is refused before the CLI tries to connect.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    for (name, why) in [
        ("not valid", "username \"not valid\" contains a space"),
        ("\u{430}nn", "mixes Latin and Cyrillic letters"),
    ] {
        let out = tokio::time::timeout(WAIT, cli(&url, name).output())
            .await
            .unwrap()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why) && !err.contains("cannot reach"), "{err}");
    }
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

async fn client(url: &str) -> ChatServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    ChatServiceClient::new(channel)
}

async fn join(
    client: &mut ChatServiceClient<tonic::transport::Channel>,
    name: &str,
) -> Result<String, Status> {
    let joined = client
        .join(JoinRequest {
            username: name.into(),
        })
        .await?;
    Ok(joined.into_inner().token)
}

fn legacy_post(name: &str, text: &str) -> MessageRequest {
    MessageRequest {
        username: name.into(),
        message: text.into(),
        room: String::new(),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_cli_holds_its_name_posts_with_its_token_and_leaves_on_ctrl_c() {
    let (url, _db) = start_server().await;
    let mut carol = cli(&url, "carol").spawn().unwrap();
    let mut out = BufReader::new(carol.stdout.take().unwrap()).lines();
    let mut client = client(&url).await;

    // Carol's stream is open once she prints something: post until she does.
    tokio::time::timeout(WAIT, async {
        loop {
            client
                .send_message(legacy_post("web", "ping"))
                .await
                .unwrap();
            if let Ok(line) =
                tokio::time::timeout(Duration::from_millis(300), out.next_line()).await
            {
                break line.unwrap().unwrap();
            }
        }
    })
    .await
    .unwrap();

    // The name is hers: nobody can join as her or post as her without her token.
    let taken = join(&mut client, "carol").await.unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");
    let impostor = client
        .send_message(legacy_post("carol", "it is me, honest"))
        .await
        .unwrap_err();
    assert_eq!(impostor.code(), Code::PermissionDenied, "{impostor:?}");

    // Her own lines go through, so her stream carries the token.
    let mut stdin = carol.stdin.take().unwrap();
    stdin.write_all(b"it is really me\n").await.unwrap();
    let line = loop {
        let line = tokio::time::timeout(WAIT, out.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if !line.ends_with("[web]: ping") {
            break line;
        }
    };
    assert!(line.ends_with("[carol]: it is really me"), "{line}");

    // Ctrl-C: she leaves, so the name is free at once, not after the idle timeout.
    let pid = carol.id().unwrap().to_string();
    let kill = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    assert_success(&exited(carol).await);
    join(&mut client, "carol").await.unwrap();
}

#[tokio::test]
async fn a_one_shot_sender_leaves_when_stdin_ends() {
    let (url, _db) = start_server().await;
    let erin = cli(&url, "erin").spawn().unwrap();
    assert_success(&run_with_input(erin, b"bye\n").await);
    let mut client = client(&url).await;
    join(&mut client, "erin").await.unwrap();
}

#[tokio::test]
async fn a_taken_name_is_explained_and_exits_non_zero() {
    let (url, _db) = start_server().await;
    let mut client = client(&url).await;
    join(&mut client, "ann").await.unwrap();

    let out = tokio::time::timeout(WAIT, cli(&url, "ann").output())
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AlreadyExists") && err.contains("in use by someone signed in"),
        "{err}"
    );
}

#[tokio::test]
async fn no_join_speaks_the_original_protocol() {
    let (url, _db) = start_server().await;
    let mut client = client(&url).await;
    join(&mut client, "fay").await.unwrap();

    let legacy = |name: &str| {
        let mut cmd = cli(&url, name);
        cmd.arg("--no-join");
        cmd
    };
    // Without a token, a name someone has joined as is not ours to use...
    let fay = legacy("fay").spawn().unwrap();
    let out = run_with_input(fay, b"hi\n").await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PermissionDenied"), "{err}");

    // ...and any other name works as it always did, without reserving it.
    let gus = legacy("gus").spawn().unwrap();
    assert_success(&run_with_input(gus, b"old school\n").await);
    let history = general_history(&mut client, 10).await;
    let posted: Vec<_> = history
        .iter()
        .map(|m| (m.username.as_str(), m.text.as_str()))
        .collect();
    assert_eq!(posted, [("gus", "old school")]);
}

#[tokio::test]
async fn a_paste_faster_than_the_rate_limit_is_paced_not_cut_off() {
    let (url, _db) = start_server_with(Config {
        max_messages_per_sec: 50,
        message_burst: 2,
        ..Config::for_tests()
    })
    .await;
    let hal = cli(&url, "hal").spawn().unwrap();
    let lines: Vec<String> = (1..=12).map(|i| format!("line {i}")).collect();
    let done = run_with_input(hal, format!("{}\n", lines.join("\n")).as_bytes()).await;
    assert_success(&done);
    let history = general_history(&mut client(&url).await, 50).await;
    let texts: Vec<_> = history.into_iter().map(|m| m.text).collect();
    assert_eq!(texts, lines);
}

const PASSWORD: &str = "correct horse battery";

/// Everything the CLI printed, to check no password is in it.
fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn a_password_file_signs_in_to_the_account() {
    let (url, _db) = start_server().await;
    let mut client = client(&url).await;
    client
        .register(RegisterRequest {
            username: "ann".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let right = dir.path().join("right");
    std::fs::write(&right, format!("{PASSWORD}\n")).unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not the password\n").unwrap();

    let mut signed_in = cli(&url, "ann");
    signed_in.arg("--password-file").arg(&right);
    let out = run_with_input(signed_in.spawn().unwrap(), b"from my account\n").await;
    assert_success(&out);
    assert!(!printed(&out).contains(PASSWORD));
    let last = general_history(&mut client, 1).await.pop().unwrap();
    assert_eq!(
        (last.username.as_str(), last.text.as_str(), last.guest),
        ("ann", "from my account", false)
    );

    let mut refused = cli(&url, "ann");
    refused.arg("--password-file").arg(&wrong);
    let out = run_with_input(refused.spawn().unwrap(), b"hi\n").await;
    assert!(!out.status.success());
    let said = printed(&out);
    assert!(said.contains("wrong name or password"), "{said}");
    assert!(!said.contains("not the password"), "{said}");

    // Without a password the registered name is refused, with the way in.
    let out = run_with_input(cli(&url, "ann").spawn().unwrap(), b"hi\n").await;
    assert!(!out.status.success());
    assert!(
        printed(&out).contains("sign in with its password"),
        "{}",
        printed(&out)
    );
}

#[tokio::test]
async fn chat_password_registers_a_name_with_register() {
    let (url, _db) = start_server().await;
    let mut registering = cli(&url, "bob");
    registering.arg("--register").env("CHAT_PASSWORD", PASSWORD);
    let out = run_with_input(registering.spawn().unwrap(), b"mine for good\n").await;
    assert_success(&out);
    assert!(!printed(&out).contains(PASSWORD));

    let mut client = client(&url).await;
    let signed_in = client
        .sign_in(SignInRequest {
            username: "bob".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!signed_in.guest);
    let last = general_history(&mut client, 1).await.pop().unwrap();
    assert_eq!((last.text.as_str(), last.guest), ("mine for good", false));

    // CHAT_PASSWORD alone signs in.
    let mut again = cli(&url, "bob");
    again.env("CHAT_PASSWORD", PASSWORD);
    let out = run_with_input(again.spawn().unwrap(), b"back again\n").await;
    assert_success(&out);
    let last = general_history(&mut client, 1).await.pop().unwrap();
    assert_eq!(
        (last.username.as_str(), last.text.as_str()),
        ("bob", "back again")
    );
}

#[tokio::test]
async fn an_https_url_reaches_chat_server_serving_tls_itself() {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let (url, _db) = start_server_with(Config {
        tls_cert: Some(cert.clone()),
        tls_key: Some(key),
        ..Config::for_tests()
    })
    .await;
    let url = url.replace("http://", "https://");

    let mut sender = cli(&url, "erin");
    sender.arg("--ca-cert").arg(&cert);
    let done = run_with_input(sender.spawn().unwrap(), b"hello over TLS\n").await;
    assert_success(&done);
    let channel = tonic::transport::Channel::from_shared(url.clone())
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(made.cert.pem())),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    let texts: Vec<_> = general_history(&mut ChatServiceClient::new(channel), 10)
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["hello over TLS"]);

    // Without --ca-cert the certificate is checked against the system's authorities,
    // which do not know it: refused, saying why.
    let refused = run_with_input(cli(&url, "frank").spawn().unwrap(), b"never sent\n").await;
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("cannot reach") && said.contains("certificate"),
        "{said}"
    );
}

#[tokio::test]
async fn room_at_a_name_is_the_direct_conversation_with_that_account() {
    let (url, _db) = start_server().await;
    let mut client = client(&url).await;
    for name in ["ann", "bob"] {
        client
            .register(RegisterRequest {
                username: name.into(),
                password: PASSWORD.into(),
            })
            .await
            .unwrap();
    }
    let mut ann = cli(&url, "ann");
    ann.args(["--room", "@bob"]).env("CHAT_PASSWORD", PASSWORD);
    let out = run_with_input(ann.spawn().unwrap(), b"just us\n").await;
    assert_success(&out);

    // Bob reads it in his `@ann`; general has none of it.
    let token = client
        .sign_in(SignInRequest {
            username: "bob".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut request = tonic::Request::new(HistoryRequest {
        room: "@ann".into(),
        before_id: 0,
        limit: 10,
    });
    let bearer = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", bearer);
    let page = client.history(request).await.unwrap().into_inner();
    let texts: Vec<_> = page.messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["just us"]);
    assert!(general_history(&mut client, 10).await.is_empty());

    // A guest is told what `@NAME` needs, and exits non-zero.
    let mut guest = cli(&url, "cy");
    guest.args(["--room", "@bob"]);
    let out = run_with_input(guest.spawn().unwrap(), b"hi\n").await;
    assert!(!out.status.success());
    assert!(
        printed(&out).contains("only registered accounts"),
        "{}",
        printed(&out)
    );
}
