//! One grpc-web call over `tonic-web-wasm-client`'s fetch transport, without tonic's
//! generic client (`Grpc`, its codecs and `Streaming`): the page passes its messages as
//! prost bytes, so all it needs of gRPC's framing is the 5-byte prefix of each message and
//! the status, which this module reads. tonic's client code is generic over body, codec and
//! stream types, and cost the page several KB of wasm (BENCHMARKS.md, "Frontend weight").
//!
//! What it follows of the protocol: each message is a flag byte (0: not compressed; the
//! page asks for no compression, so anything else is refused) and a big-endian u32 length
//! before the bytes; the call's status is the `grpc-status`/`grpc-message` trailers that
//! the transport parses from the last frame, or the same headers on a reply that has
//! nothing else ("trailers-only"), or, with neither, the HTTP status as gRPC maps it.

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use tonic::body::Body;
use tonic::codegen::http::{self, HeaderValue, StatusCode};
use tonic::codegen::Service;
use tonic::{Code, Status};
use tonic_web_wasm_client::{Client, ResponseBody};

/// The largest message the page accepts, as tonic's default decoding limit.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// Starts the call `path` (e.g. "/grpcchat.ChatService/Join") with one request message,
/// and the session's token as `authorization: Bearer ...` when there is one. Resolves when
/// the response's headers have arrived; the messages follow through [`Reply`].
pub async fn call(
    client: &Client,
    path: &'static str,
    message: &[u8],
    token: Option<&str>,
) -> Result<Reply, Status> {
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    let mut request = http::Request::new(Body::new(Full::new(Bytes::from(framed))));
    *request.uri_mut() = http::Uri::from_static(path);
    if let Some(value) = token.and_then(|t| HeaderValue::try_from(format!("Bearer {t}")).ok()) {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
    }
    let response = client
        .clone()
        .call(request)
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    // A refusal before any message comes as headers alone.
    if let Some(status) = Status::from_header_map(response.headers()) {
        if status.code() != Code::Ok {
            return Err(status);
        }
    }
    if response.status() != StatusCode::OK {
        return Err(from_http(response.status()));
    }
    Ok(Reply {
        body: Some(response.into_body()),
        frames: Frames::default(),
    })
}

/// gRPC's mapping of an HTTP status without a gRPC one (a proxy's answer, say).
fn from_http(status: StatusCode) -> Status {
    let code = match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("HTTP {}", status.as_u16()))
}

/// A call's response messages, then its status.
pub struct Reply {
    /// None once the status has been read (or the body has failed).
    body: Option<ResponseBody>,
    frames: Frames,
}

impl Reply {
    /// The next message; `Ok(None)` when the call ended well, `Err` when it ended with an
    /// error status (or the connection broke).
    pub async fn message(&mut self) -> Result<Option<Bytes>, Status> {
        loop {
            if let Some(message) = self.frames.next()? {
                return Ok(Some(message));
            }
            let Some(body) = self.body.as_mut() else {
                return Ok(None);
            };
            let frame = match body.frame().await {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    self.body = None;
                    return Err(Status::unavailable(e.to_string()));
                }
                None => {
                    self.body = None;
                    return Err(Status::unknown("the reply ended without a status"));
                }
            };
            match frame.into_data() {
                Ok(data) => self.frames.push(&data),
                Err(frame) => {
                    self.body = None;
                    self.frames.finish()?;
                    let trailers = frame.into_trailers().unwrap_or_default();
                    return match Status::from_header_map(&trailers) {
                        Some(status) if status.code() == Code::Ok => Ok(None),
                        Some(status) => Err(status),
                        None => Err(Status::unknown("the reply ended without a status")),
                    };
                }
            }
        }
    }

    /// The one message of a unary call, after its status said OK.
    pub async fn only(mut self) -> Result<Bytes, Status> {
        let message = self.message().await?;
        if self.message().await?.is_some() {
            return Err(Status::internal("more than one reply to a unary call"));
        }
        message.ok_or_else(|| Status::internal("no reply to a unary call"))
    }
}

/// Cuts the response's bytes into messages at their 5-byte prefixes; the transport may hand
/// over several messages at once, or one in pieces.
#[derive(Default)]
struct Frames {
    buf: BytesMut,
}

impl Frames {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole message, if the bytes so far hold one.
    fn next(&mut self) -> Result<Option<Bytes>, Status> {
        let Some(&[flag, a, b, c, d]) = self.buf.get(..5) else {
            return Ok(None);
        };
        if flag != 0 {
            return Err(Status::internal("the server sent a compressed message"));
        }
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        if len > MAX_MESSAGE {
            return Err(Status::resource_exhausted(
                "the server sent a message over 4 MiB",
            ));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        self.buf.advance(5);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// The status has come: a message cut short before it is an error.
    fn finish(&self) -> Result<(), Status> {
        match self.buf.is_empty() {
            true => Ok(()),
            false => Err(Status::internal("the reply ended inside a message")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(message: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    #[test]
    fn messages_split_at_their_prefixes_however_the_bytes_arrive() {
        let mut wire = framed(b"hello");
        wire.extend(framed(b""));
        wire.extend(framed(b"world!"));
        // Every way of cutting the bytes in two gives the same three messages.
        for cut in 0..=wire.len() {
            let mut frames = Frames::default();
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                frames.push(part);
                while let Some(m) = frames.next().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, [&b"hello"[..], b"", b"world!"], "cut at {cut}");
            frames.finish().unwrap();
        }
    }

    #[test]
    fn a_message_cut_short_by_the_status_is_an_error() {
        let mut frames = Frames::default();
        frames.push(&framed(b"hello")[..7]);
        assert_eq!(frames.next().unwrap(), None);
        assert_eq!(frames.finish().unwrap_err().code(), Code::Internal);
    }

    #[test]
    fn compressed_and_oversized_messages_are_refused() {
        let mut frames = Frames::default();
        frames.push(&[1, 0, 0, 0, 1, b'x']);
        assert_eq!(frames.next().unwrap_err().code(), Code::Internal);
        let mut frames = Frames::default();
        frames.push(&[0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(frames.next().unwrap_err().code(), Code::ResourceExhausted);
    }

    #[test]
    fn http_statuses_map_as_grpc_says() {
        assert_eq!(from_http(StatusCode::BAD_GATEWAY).code(), Code::Unavailable);
        assert_eq!(
            from_http(StatusCode::UNAUTHORIZED).code(),
            Code::Unauthenticated
        );
        assert_eq!(from_http(StatusCode::NOT_FOUND).code(), Code::Unimplemented);
        assert_eq!(from_http(StatusCode::IM_A_TEAPOT).code(), Code::Unknown);
    }
}
