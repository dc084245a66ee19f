//! A grpc-web call over HTTP/1.1 by hand: the request is written in one go, the response
//! head is parsed with `httparse`, and the chunked body is un-chunked into a `FrameBuf`.
//!
//! A general HTTP client (hyper) would cost a task, a channel and a buffer per chunk on
//! every subscriber; here one read of the socket can carry hundreds of frames and they are
//! un-chunked with one copy. That keeps the load generator cheap per delivery.
use prost::Message;

use crate::wire::{self, FrameBuf};

/// The full HTTP/1.1 request for a unary-request grpc-web call.
pub fn request(host: &str, method: &str, msg: &impl Message) -> Vec<u8> {
    let body = wire::frame(wire::DATA, &msg.encode_to_vec());
    let mut req = format!(
        "POST /grpcchat.ChatService/{method} HTTP/1.1\r\n\
         host: {host}\r\n\
         content-type: application/grpc-web+proto\r\n\
         accept: application/grpc-web+proto\r\n\
         x-grpc-web: 1\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    req
}

/// The parts of a response head the caller acts on.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Set when the whole call failed before any message (a trailers-only response).
    pub grpc_status: Option<String>,
    pub grpc_message: Option<String>,
    pub chunked: bool,
    /// Bytes of the head, to skip in the buffer it was parsed from.
    pub len: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    Partial,
    Invalid(String),
}

pub fn parse_head(buf: &[u8]) -> Result<Head, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let value = |name: &str| {
                res.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            Ok(Head {
                status: res.code.unwrap_or(0),
                grpc_status: value("grpc-status"),
                grpc_message: value("grpc-message"),
                chunked: value("transfer-encoding")
                    .is_some_and(|v| v.eq_ignore_ascii_case("chunked")),
                len,
            })
        }
        Ok(httparse::Status::Partial) => Err(HeadError::Partial),
        Err(e) => Err(HeadError::Invalid(e.to_string())),
    }
}

/// Undoes `transfer-encoding: chunked`, a byte at a time through the framing and a
/// slice at a time through the data.
#[derive(Debug, Default)]
pub struct Dechunker {
    state: State,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a size line.
    #[default]
    Size,
    /// Inside the hex size; the value so far.
    SizeDigits(usize),
    /// Skipping a chunk extension or the CR, up to the LF that ends the size line.
    SizeLineEnd(usize),
    Data(usize),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The zero-size chunk arrived: the body is complete.
    Done,
}

#[derive(Debug, PartialEq, Eq)]
pub struct BadChunk;

impl Dechunker {
    /// Appends the data carried by `input` to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut FrameBuf) -> Result<(), BadChunk> {
        while let Some(&b) = input.first() {
            match self.state {
                State::Size | State::SizeDigits(_) => {
                    let so_far = match self.state {
                        State::SizeDigits(n) => n,
                        _ => 0,
                    };
                    input = &input[1..];
                    self.state = match (b as char).to_digit(16) {
                        Some(d) => State::SizeDigits(
                            so_far
                                .checked_mul(16)
                                .and_then(|n| n.checked_add(d as usize))
                                .ok_or(BadChunk)?,
                        ),
                        None if self.state == State::Size => return Err(BadChunk),
                        None if b == b'\n' => Self::after_size(so_far),
                        None => State::SizeLineEnd(so_far),
                    };
                }
                State::SizeLineEnd(n) => {
                    if b == b'\n' {
                        self.state = Self::after_size(n);
                    }
                    input = &input[1..];
                }
                State::Data(left) => {
                    let take = left.min(input.len());
                    out.extend(&input[..take]);
                    input = &input[take..];
                    self.state = match left - take {
                        0 => State::DataEnd,
                        left => State::Data(left),
                    };
                }
                State::DataEnd => {
                    if b == b'\n' {
                        self.state = State::Size;
                    } else if b != b'\r' {
                        return Err(BadChunk);
                    }
                    input = &input[1..];
                }
                State::Done => return Ok(()),
            }
        }
        Ok(())
    }

    fn after_size(n: usize) -> State {
        if n == 0 {
            State::Done
        } else {
            State::Data(n)
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }
}

/// The grpc-status in a trailer frame's payload (`grpc-status:0\r\ngrpc-message:...`).
pub fn trailer_status(payload: &[u8]) -> (Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(payload);
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    };
    (field("grpc-status"), field("grpc-message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_with_chunked_body_and_trailers_only_head() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/grpc-web+proto\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n";
        let head = parse_head(ok).unwrap();
        assert_eq!((head.status, head.chunked), (200, true));
        assert_eq!(&ok[head.len..], b"5\r\n");
        let failed = b"HTTP/1.1 200 OK\r\ngrpc-status: 3\r\ngrpc-message: bad%20room\r\ncontent-length: 0\r\n\r\n";
        let head = parse_head(failed).unwrap();
        assert_eq!(head.grpc_status.as_deref(), Some("3"));
        assert!(!head.chunked);
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n"), Err(HeadError::Partial));
    }

    #[test]
    fn chunks_split_anywhere_give_back_the_frames() {
        let mut body = Vec::new();
        let frames = [
            wire::frame(0, b"first"),
            wire::frame(0x80, b"grpc-status:0"),
        ];
        for f in &frames {
            body.extend(format!("{:x};ext=1\r\n", f.len()).bytes());
            body.extend(f);
            body.extend(b"\r\n");
        }
        body.extend(b"0\r\n\r\n");
        for step in [1, 2, 3, 7, body.len()] {
            let mut d = Dechunker::default();
            let mut out = FrameBuf::default();
            for piece in body.chunks(step) {
                d.feed(piece, &mut out).unwrap();
            }
            assert!(d.is_done(), "step {step}");
            assert_eq!(out.next_frame(), Some((0, &b"first"[..])));
            assert_eq!(out.next_frame(), Some((0x80, &b"grpc-status:0"[..])));
            assert_eq!(out.next_frame(), None);
        }
    }

    #[test]
    fn garbage_is_not_a_chunk() {
        let mut out = FrameBuf::default();
        assert_eq!(
            Dechunker::default().feed(b"zz\r\n", &mut out),
            Err(BadChunk)
        );
    }

    #[test]
    fn trailer_fields() {
        assert_eq!(
            trailer_status(b"grpc-status:10\r\ngrpc-message:you fell behind\r\n"),
            (Some("10".into()), Some("you fell behind".into()))
        );
    }
}
