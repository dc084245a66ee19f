//! The grpc-web framing target: one fuzz input is a method, a content type, an
//! authorization header and a request body, sent in-process through the app's real router
//! (grpc-web layer, tonic, the handlers, a real SQLite store). The server must not panic,
//! and must answer with a gRPC status (in the headers, the grpc-web trailer frame, or HTTP
//! trailers), or, for a stream that is valid and stays open, with its first event.
use std::{
    path::PathBuf,
    sync::OnceLock,
    time::{Duration, Instant},
};

use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use chat_server::{
    accounts::Accounts, app, sessions::Sessions, stream_caps::StreamCaps, Config, Shutdown,
};
use http::header::CONTENT_TYPE;
use http_body_util::BodyExt;
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// Every ChatService method, and one that does not exist.
pub const METHODS: &[(&str, Kind)] = &[
    ("SendMessage", Kind::Unary),
    ("Broadcast", Kind::Stream),
    ("Subscribe", Kind::Stream),
    ("History", Kind::Unary),
    ("Join", Kind::Unary),
    ("Leave", Kind::Unary),
    ("ListRooms", Kind::Unary),
    ("Typing", Kind::Unary),
    ("Register", Kind::Unary),
    ("SignIn", Kind::Unary),
    ("ChangePassword", Kind::Unary),
    ("SignOutEverywhere", Kind::Unary),
    ("NoSuchMethod", Kind::Unary),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Unary,
    /// A valid request opens a stream that stays open: its first event is its answer.
    Stream,
}

/// How the body is sent. `TextEncoded` base64-encodes the fuzzer's bytes, so the
/// grpc-web-text path reaches the framing underneath; `Text` sends them as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Web,
    WebProto,
    Text,
    TextEncoded,
    /// Native gRPC over HTTP/2, and over HTTP/1.1 (which only grpc-web may use).
    Native,
    NativeHttp1,
}

const WIRES: [Wire; 6] = [
    Wire::Web,
    Wire::WebProto,
    Wire::Text,
    Wire::TextEncoded,
    Wire::Native,
    Wire::NativeHttp1,
];

impl Wire {
    fn content_type(self) -> &'static str {
        match self {
            Wire::Web => "application/grpc-web",
            Wire::WebProto => "application/grpc-web+proto",
            Wire::Text | Wire::TextEncoded => "application/grpc-web-text",
            Wire::Native | Wire::NativeHttp1 => "application/grpc",
        }
    }

    fn is_native(self) -> bool {
        matches!(self, Wire::Native | Wire::NativeHttp1)
    }
}

/// A unary call (or a refused stream) answering later than this is a hang: a finding.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// A stream that is still open and silent after this long was accepted (a Broadcast
/// whose first request only joins sends nothing until someone posts).
const OPEN_STREAM_WAIT: Duration = Duration::from_millis(100);

struct Server {
    rt: Runtime,
    app: axum::Router,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static DB: OnceLock<PathBuf> = OnceLock::new();

/// One server per process, with its own temp database, removed when the process exits
/// (libFuzzer ends with `exit`, which runs `atexit` handlers; statics are never dropped).
fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        let config = Config::for_tests();
        let db = config
            .db
            .sqlite_path()
            .expect("a test database file")
            .to_owned();
        DB.set(db).expect("one server per process");
        // SAFETY: registers a plain `extern "C" fn` with no captured state.
        unsafe { libc::atexit(remove_db) };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let app = rt.block_on(async {
            let hub = app::open_hub(&config).await.expect("open the store");
            let account_store = hub.store().accounts().expect("open the account store");
            let accounts = Accounts::open(account_store, Sessions::new(config.limits()))
                .await
                .expect("accounts");
            let streams = StreamCaps::new(config.max_streams, config.max_streams_per_ip);
            app::router(&config, hub, accounts, streams, Shutdown::new())
                .await
                .expect("router")
        });
        Server { rt, app }
    })
}

extern "C" fn remove_db() {
    if let Some(db) = DB.get() {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = db.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Input layout: byte 0 picks the method, byte 1 the content type, byte 2 the
/// authorization header (none, a well-formed unknown token, or a malformed one) and
/// whether `accept` asks for the content type sent; the rest is the request body.
pub fn check(data: &[u8]) {
    let Some((&[method, wire, auth], body)) = data.split_first_chunk::<3>() else {
        return;
    };
    let (method, kind) = METHODS[method as usize % METHODS.len()];
    let wire = WIRES[wire as usize % WIRES.len()];
    let body = match wire {
        Wire::TextEncoded => Bytes::from(base64::engine::general_purpose::STANDARD.encode(body)),
        _ => Bytes::copy_from_slice(body),
    };
    let mut req = http::Request::post(format!("/grpcchat.ChatService/{method}"))
        .header(CONTENT_TYPE, wire.content_type());
    if wire == Wire::Native {
        req = req.version(http::Version::HTTP_2);
    }
    if !wire.is_native() {
        req = req.header("x-grpc-web", "1");
    }
    if (auth / 3) % 2 == 1 {
        req = req.header("accept", wire.content_type());
    }
    req = match auth % 3 {
        0 => req,
        1 => req.header("authorization", format!("Bearer {}", "ab".repeat(32))),
        _ => req.header("authorization", "Basic Zm9vOmJhcg=="),
    };
    let req = req.body(axum::body::Body::from(body)).expect("request");

    let server = server();
    server.rt.block_on(async {
        let answer = tokio::time::timeout(ANSWER_WAIT, server.app.clone().oneshot(req))
            .await
            .unwrap_or_else(|_| panic!("{method} ({wire:?}): no response headers"));
        let Ok(res) = answer;
        if let Some(code) = res.headers().get("grpc-status") {
            assert_code(method, code.as_bytes());
            return;
        }
        let http_status = res.status();
        // tonic-web answers in the encoding the request's `accept` asks for (binary when
        // there is none), and says which in the response's content type.
        let text_answer = res
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc-web-text"));
        let started = Instant::now();
        let mut frames = WebFrames::default();
        let mut body = res.into_body();
        loop {
            let wait = match kind {
                Kind::Stream => OPEN_STREAM_WAIT,
                Kind::Unary => ANSWER_WAIT,
            };
            let frame = match tokio::time::timeout(wait, body.frame()).await {
                Ok(frame) => frame,
                Err(_) if kind == Kind::Stream => return,
                Err(_) => panic!("{method} ({wire:?}): no gRPC status after {ANSWER_WAIT:?}"),
            };
            let frame = match frame {
                None => panic!(
                    "{method} ({wire:?}): HTTP {http_status} ended without a gRPC status \
                     after {:?}",
                    started.elapsed()
                ),
                Some(Err(err)) => panic!("{method} ({wire:?}): the response body failed: {err}"),
                Some(Ok(frame)) => frame,
            };
            match frame.into_data() {
                Ok(data) if wire.is_native() => {
                    if kind == Kind::Stream && !data.is_empty() {
                        return;
                    }
                }
                Ok(data) => {
                    frames.push(&data, text_answer);
                    if let Some(code) = frames.status() {
                        assert_code(method, &code);
                        return;
                    }
                    if kind == Kind::Stream && frames.saw_message {
                        return;
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let code = trailers.get("grpc-status").unwrap_or_else(|| {
                            panic!("{method} ({wire:?}): trailers without grpc-status")
                        });
                        assert_code(method, code.as_bytes());
                        return;
                    }
                }
            }
        }
    });
}

fn assert_code(method: &str, code: &[u8]) {
    let code: i32 = std::str::from_utf8(code)
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or_else(|| panic!("{method}: grpc-status {code:?} is not a number"));
    assert!(
        (0..=16).contains(&code),
        "{method}: grpc-status {code} is not a gRPC code"
    );
}

/// The grpc-web response body, read as it arrives: data frames, then one trailer frame
/// (flag 0x80) holding `grpc-status`. grpc-web-text bodies are base64 in chunks that
/// are each padded, so they are decoded four characters at a time.
#[derive(Default)]
struct WebFrames {
    text: Vec<u8>,
    bytes: BytesMut,
    saw_message: bool,
    trailer: Option<Bytes>,
}

impl WebFrames {
    fn push(&mut self, data: &[u8], is_text: bool) {
        if is_text {
            self.text.extend_from_slice(data);
            let whole = self.text.len() / 4 * 4;
            for group in self.text[..whole].chunks(4) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(group)
                    .unwrap_or_else(|err| panic!("grpc-web-text answer is not base64: {err}"));
                self.bytes.extend_from_slice(&decoded);
            }
            self.text.drain(..whole);
        } else {
            self.bytes.extend_from_slice(data);
        }
        while self.bytes.len() >= 5 {
            let len = u32::from_be_bytes(self.bytes[1..5].try_into().unwrap()) as usize;
            if self.bytes.len() < 5 + len {
                break;
            }
            let flag = self.bytes[0];
            self.bytes.advance(5);
            let payload = self.bytes.split_to(len).freeze();
            if flag & 0x80 != 0 {
                self.trailer = Some(payload);
            } else {
                self.saw_message = true;
            }
        }
    }

    fn status(&self) -> Option<Vec<u8>> {
        let trailer = self.trailer.as_ref()?;
        let code = trailer
            .split(|&b| b == b'\n')
            .find_map(|line| line.strip_prefix(b"grpc-status:"))
            .unwrap_or_else(|| panic!("grpc-web trailer frame without grpc-status: {trailer:?}"));
        Some(code.trim_ascii().to_vec())
    }
}
