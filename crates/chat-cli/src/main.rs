//! `chat-cli`: the seed's own usage, over native gRPC (HTTP/2). Joins as a guest, or signs
//! in to an account when a password is given (so the name is ours), follows the room (see `room` for how), sends each stdin line as
//! a message, prints every message of the room as `HH:MM:SS [name]: text` (local time).
//! When stdin ends it waits until the server has echoed back everything it sent, then
//! leaves and exits, so `echo hi | chat-cli --name me` posts once.
use std::{path::PathBuf, process::ExitCode, time::Duration};

use chat_proto::{change::Kind, MessageRequest, MessageResponse};
use chrono::{Local, TimeZone};
use clap::Parser;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    sync::mpsc,
};

use crate::session::{Identity, Session};

mod endpoint;
mod password;
mod resume;
mod room;
mod session;

/// Same bound as the server's, checked here so a long line is refused locally instead of
/// ending the stream.
const MAX_TEXT_BYTES: usize = 4096;
/// After stdin ends, how long to wait for the echoes of what we sent.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(name = "chat-cli", version, about = "Chat from the terminal")]
struct Args {
    /// Your name in the chat.
    #[arg(long, env = "CHAT_NAME")]
    name: String,
    /// Room to join (default: general); `@NAME` is your direct conversation with the
    /// account NAME (signed in to an account only).
    #[arg(long, env = "CHAT_ROOM", default_value = "general")]
    room: String,
    /// Server URL: http:// for chat-server itself, https:// for a server behind TLS
    /// (e.g. nginx, deploy/nginx.conf).
    #[arg(long, env = "CHAT_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// PEM certificate of the authority to trust for an https:// server, instead of the
    /// system's (a self-signed or private certificate).
    #[arg(long, env = "CHAT_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Skip Join and send the name with each message, as the original client did. The
    /// name is then not reserved, and a server refuses it while someone has joined as it.
    #[arg(long, conflicts_with_all = ["sign_in", "register", "password_file"])]
    no_join: bool,
    /// Sign in to the account registered as NAME. The password comes from
    /// --password-file, else the CHAT_PASSWORD environment variable, else a prompt.
    /// (Either of those alone also signs in; without any, you chat as a guest.)
    #[arg(long, conflicts_with = "register")]
    sign_in: bool,
    /// Register NAME with a password (from --password-file, CHAT_PASSWORD, or a prompt
    /// asked twice), so it is yours for good, and sign in.
    #[arg(long)]
    register: bool,
    /// Read the password from FILE (all of it but a trailing newline).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
}

/// Guest or account, and the password, asked for here, before anything else runs, so a
/// prompt has the terminal to itself.
fn identity(args: &Args) -> Result<Identity, String> {
    let asked = args.sign_in || args.register;
    let prompt_for = asked.then_some(args.name.as_str());
    let password = password::find(args.password_file.as_deref(), prompt_for, args.register)?;
    Ok(match (password, args.register) {
        (None, _) => Identity::Guest,
        (Some(password), true) => Identity::Register(password),
        (Some(password), false) => Identity::SignIn(password),
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let identity = match args.no_join {
        true => Identity::Guest,
        false => match identity(&args) {
            Ok(identity) => identity,
            Err(err) => {
                eprintln!("chat-cli: {err}");
                return ExitCode::FAILURE;
            }
        },
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("chat-cli: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args, identity));
    // Stdin is read on a blocking thread that nothing can interrupt; after Ctrl-C it may
    // still be waiting for a line, and an orderly shutdown would wait with it.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("chat-cli: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, identity: Identity) -> Result<(), String> {
    // The server's own rule (chat_proto::names), so a bad name is explained before
    // anything is sent, in the words the server would use.
    let name = chat_proto::names::display_form(&args.name).map_err(|err| err.to_string())?;
    let channel = endpoint::connect(&args.server, args.ca_cert.as_deref()).await?;
    let session = match args.no_join {
        true => Session::anonymous(channel, &name),
        false => Session::start(channel, &name, identity).await?,
    };
    let result = chat(&session, &args.room).await;
    session.leave().await;
    result
}

/// The conversation: stdin lines out, the room's messages in, until stdin ends and what
/// we sent is confirmed, or Ctrl-C, or the feed fails.
async fn chat(session: &Session, room: &str) -> Result<(), String> {
    let (name, room) = (session.name.clone(), room.to_owned());
    let mut ids = LineIds::new();
    // Each line gets its own client_msg_id, which its retries keep (see `room::Poster`),
    // so a line sent again after a lost answer is never posted twice.
    let mut request = move |message: String| MessageRequest {
        username: name.clone(),
        client_msg_id: match message.is_empty() {
            true => String::new(),
            false => ids.next_id(),
        },
        message,
        room: room.clone(),
        ..Default::default()
    };
    let (mut feed, mut poster) = room::open(session, request(String::new())).await?;

    // Counted before each post: our echo can arrive before the post call returns.
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<()>();
    // Ok at the end of stdin, Err when the server refused a line for good.
    let (done_tx, mut done_rx) = mpsc::channel::<Result<(), String>>(1);
    let stdin_task = tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim().is_empty() {
                continue;
            }
            if line.len() > MAX_TEXT_BYTES {
                eprintln!("chat-cli: not sent: the line is {} bytes, at most {MAX_TEXT_BYTES} are allowed", line.len());
                continue;
            }
            let _ = sent_tx.send(());
            match poster.post(request(line)).await {
                Ok(()) => {}
                Err(Some(refused)) => {
                    let _ = done_tx.send(Err(refused)).await;
                    return;
                }
                Err(None) => return,
            }
        }
        let _ = done_tx.send(Ok(())).await;
        // Keep `poster` alive: for Broadcast it holds the stream's request side open
        // while we drain.
        std::future::pending::<()>().await;
    });

    let mut unconfirmed = 0usize;
    let mut stdin_done = false;
    let deadline = tokio::time::sleep(Duration::MAX);
    tokio::pin!(deadline);
    // One listener for the whole loop: a fresh one per iteration could miss a Ctrl-C
    // that arrives while a message is being printed.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let result = loop {
        tokio::select! {
            msg = feed.next() => match msg {
                Some(Ok(msg)) => {
                    if let Some(line) = line(&msg) {
                        println!("{line}");
                    }
                    if msg.change.is_some() {
                        continue; // not one of our lines coming back
                    }
                    while sent_rx.try_recv().is_ok() {
                        unconfirmed += 1;
                    }
                    if msg.username == session.name && unconfirmed > 0 {
                        unconfirmed -= 1;
                    }
                    if stdin_done && unconfirmed == 0 {
                        break Ok(());
                    }
                }
                None => break Err("the server closed the stream".to_owned()),
                Some(Err(status)) => break Err(room::describe(&status)),
            },
            Some(done) = done_rx.recv(), if !stdin_done => {
                if let Err(refused) = done {
                    break Err(refused);
                }
                stdin_done = true;
                while sent_rx.try_recv().is_ok() {
                    unconfirmed += 1;
                }
                if unconfirmed == 0 {
                    break Ok(());
                }
                deadline.as_mut().reset(tokio::time::Instant::now() + DRAIN_TIMEOUT);
            }
            _ = &mut deadline => break Err(format!("{unconfirmed} message(s) not confirmed by the server")),
            _ = &mut ctrl_c => break Ok(()),
        }
    };
    stdin_task.abort();
    result
}

/// Client message ids for the lines of one run: a random prefix for the run and the
/// line's number, so no two lines of any run share one (the server remembers them a day).
struct LineIds {
    run: u64,
    lines: u64,
}

impl LineIds {
    fn new() -> Self {
        LineIds {
            run: rand::random(),
            lines: 0,
        }
    }

    fn next_id(&mut self) -> String {
        self.lines += 1;
        format!("cli-{:016x}-{}", self.run, self.lines)
    }
}

/// How a message (or an edit or delete of one) prints: `HH:MM:SS [name]: text` in local
/// time. Reactions print nothing: a line per click would drown the conversation.
fn line(msg: &MessageResponse) -> Option<String> {
    let time = Local
        .timestamp_millis_opt(msg.sent_at_ms)
        .single()
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "--:--:--".into());
    let said = match msg.change.as_ref() {
        Some(change) => match change.kind() {
            Kind::Edit => format!(
                "[{}] edited message {}: {}",
                msg.username, change.target_id, msg.text
            ),
            Kind::Delete => format!("[{}] deleted message {}", msg.username, change.target_id),
            Kind::React => return None,
        },
        // Old servers fill only the display form.
        None if msg.username.is_empty() => msg.message.clone(),
        None => format!("[{}]: {}", msg.username, msg.text),
    };
    Some(format!("{time} {said}"))
}

#[cfg(test)]
mod tests {
    use super::{line, LineIds};
    use chat_proto::{change::Kind, Change, MessageResponse};

    #[test]
    fn edits_and_deletes_print_a_line_and_reactions_none() {
        let change = |kind: Kind, text: &str| MessageResponse {
            username: "ann".into(),
            text: text.into(),
            change: Some(Change {
                target_id: 7,
                kind: kind.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let edited = line(&change(Kind::Edit, "fixed")).unwrap();
        assert!(
            edited.ends_with(" [ann] edited message 7: fixed"),
            "{edited}"
        );
        let deleted = line(&change(Kind::Delete, "")).unwrap();
        assert!(deleted.ends_with(" [ann] deleted message 7"), "{deleted}");
        assert_eq!(line(&change(Kind::React, "")), None);
    }

    #[test]
    fn every_line_gets_its_own_id_within_the_servers_rule() {
        let (mut a, mut b) = (LineIds::new(), LineIds::new());
        let ids = [a.next_id(), a.next_id(), b.next_id()];
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2], "another run starts elsewhere");
        for id in ids {
            assert!(
                id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()),
                "{id}"
            );
        }
    }
}
