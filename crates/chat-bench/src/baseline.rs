//! The yardstick: the same deliveries of the same bytes through the least a tokio fan-out
//! can do. No HTTP, no gRPC: a subscriber socket gets the very grpc-web frames of the
//! ChatEvents the chat server would send, and each socket's writer coalesces whatever is
//! pending into one write (one write per message per socket is syscall-bound and many
//! times slower, so it would not be a limit worth comparing to).
//!
//! It runs as a child process (`chat-bench baseline-server`) so that, like the chat
//! server, it has its own pid, CPU time and memory, and competes for the cores the same
//! way.
use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use chat_proto::{chat_event, ChatEvent, MessageRequest, MessageResponse, Welcome};
use prost::Message;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    process::{Child, Command},
    sync::mpsc,
};

use crate::wire::{self, FrameBuf};

/// First frame of a subscriber connection; the payload is the room name.
pub const SUBSCRIBE: u8 = 1;
/// Every frame of a sender connection; the payload is a MessageRequest. Each is answered,
/// in order, by a DATA frame (accepted) or a TRAILERS frame holding the reason.
pub const POST: u8 = 2;

/// Frames a subscriber's writer takes per write at most.
const COALESCE: usize = 4096;

#[derive(Clone, Default)]
struct Rooms(Arc<Mutex<HashMap<String, Room>>>);

#[derive(Default)]
struct Room {
    last_id: u64,
    subscribers: Vec<mpsc::UnboundedSender<Bytes>>,
}

/// Serves the baseline protocol until the process is killed.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    let rooms = Rooms::default();
    loop {
        let (sock, _) = listener.accept().await?;
        let _ = sock.set_nodelay(true);
        tokio::spawn(connection(sock, rooms.clone()));
    }
}

async fn connection(mut sock: TcpStream, rooms: Rooms) -> io::Result<()> {
    // Small until the side is known: an idle subscriber should cost what a minimal
    // server's connection costs, so the memory figures compare too.
    let mut buf = vec![0u8; 1024];
    let mut frames = FrameBuf::default();
    // The first byte says which side this is; a sender's frames stay in the buffer.
    loop {
        match frames.peek_flag() {
            Some(POST) => return sender(sock, frames, rooms).await,
            Some(SUBSCRIBE) => {
                if let Some((_, room)) = frames.next_frame() {
                    let room = String::from_utf8_lossy(room).into_owned();
                    return subscriber(sock, room, rooms).await;
                }
            }
            Some(_) => return Ok(()),
            None => {}
        }
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        frames.extend(&buf[..n]);
    }
}

async fn subscriber(mut sock: TcpStream, room: String, rooms: Rooms) -> io::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let last_id = {
        let mut map = rooms.0.lock().unwrap();
        let r = map.entry(room.clone()).or_default();
        r.subscribers.push(tx);
        r.last_id
    };
    let welcome = ChatEvent {
        event: Some(chat_event::Event::Welcome(Welcome {
            room,
            last_id,
            ..Default::default()
        })),
    };
    sock.write_all(&wire::frame(wire::DATA, &welcome.encode_to_vec()))
        .await?;
    let (mut batch, mut out) = (Vec::new(), Vec::new());
    while rx.recv_many(&mut batch, COALESCE).await > 0 {
        out.clear();
        for frame in batch.drain(..) {
            out.extend_from_slice(&frame);
        }
        sock.write_all(&out).await?;
    }
    Ok(())
}

async fn sender(mut sock: TcpStream, mut frames: FrameBuf, rooms: Rooms) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut acks = Vec::new();
    loop {
        while let Some((_, payload)) = frames.next_frame() {
            match MessageRequest::decode(payload) {
                Ok(req) => {
                    rooms.post(req);
                    acks.extend_from_slice(&wire::frame(wire::DATA, &[]));
                }
                Err(e) => acks.extend_from_slice(&wire::frame(
                    wire::TRAILERS,
                    format!("bad MessageRequest: {e}").as_bytes(),
                )),
            }
        }
        frames.compact();
        if !acks.is_empty() {
            sock.write_all(&acks).await?;
            acks.clear();
        }
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        frames.extend(&buf[..n]);
    }
}

impl Rooms {
    /// Numbers the message and queues the same encoded frame to every subscriber of its
    /// room: encoded once, shared by reference count.
    fn post(&self, req: MessageRequest) {
        let sent_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let mut map = self.0.lock().unwrap();
        let room = map.entry(req.room.clone()).or_default();
        room.last_id += 1;
        // The same fields the chat server fills, so the frames have the same size.
        let event = ChatEvent {
            event: Some(chat_event::Event::Message(MessageResponse {
                message: format!("[{}]: {}", req.username, req.message),
                id: room.last_id,
                username: req.username,
                room: req.room,
                text: req.message,
                sent_at_ms,
                guest: false,
                ..Default::default()
            })),
        };
        let frame = Bytes::from(wire::frame(wire::DATA, &event.encode_to_vec()));
        room.subscribers.retain(|s| s.send(frame.clone()).is_ok());
    }
}

/// The baseline server running as a child process; killed when dropped.
pub struct BaselineProcess {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
}

impl BaselineProcess {
    /// Starts `exe baseline-server` and waits for the address it prints.
    pub async fn spawn(exe: &Path) -> Result<BaselineProcess, String> {
        let mut child = Command::new(exe)
            .arg("baseline-server")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting the baseline ({}): {e}", exe.display()))?;
        let pid = child.id().ok_or("the baseline exited at once")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("the baseline said {line:?}, not its address"))?;
        Ok(BaselineProcess { child, addr, pid })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The `baseline-server` subcommand: binds loopback, prints the address, serves.
pub async fn main() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on {}", listener.local_addr()?);
    serve(listener).await
}
