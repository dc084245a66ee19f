//! One grpc-web call over `tonic-web-wasm-client`'s fetch transport, without tonic's
//! generic client (`Grpc`, its codecs and `Streaming`): the page passes its messages as
//! prost bytes, so all it needs of gRPC's framing is the 5-byte prefix of each message and
//! the status, which this module reads. tonic's client code is generic over body, codec and
//! stream types, and cost the page 12.7 KB brotli (BENCHMARKS.md, "Under the budget").
//!
//! What it follows of the protocol: each message is a flag byte (0: not compressed; the
//! page asks for no compression, so anything else is refused) and a big-endian u32 length
//! before the bytes; the call's status is the `grpc-status`/`grpc-message` trailers that
//! the transport parses from the last frame, or the same headers on a reply that has
//! nothing else ("trailers-only"), or, with neither, the HTTP status as gRPC maps it. A
//! failed call is a [`Failure`] rather than tonic's `Status`, whose parsing (status
//! details, metadata maps) the page has no use for.

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use tonic::body::Body;
use tonic::codegen::http::{self, HeaderMap, HeaderValue, StatusCode};
use tonic::codegen::Service;
use tonic::Code;
use tonic_web_wasm_client::{Client, ResponseBody};

const NO_STATUS: &str = "the reply ended without a status";
/// The transport's own errors (fetch failed, the stream broke) are not spelled out: the
/// page treats them all as "cannot reach the server", and formatting them would bring
/// every error type's text along.
const BROKE: &str = "the connection failed";

/// The largest message the page accepts, as tonic's default decoding limit.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// How a call failed: its gRPC code and message (empty when the server gave none), and
/// how long until the server allows the call again, when it refused for a limit (its
/// `retry-after-ms` metadata).
#[derive(Debug, PartialEq)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    pub retry_after_ms: Option<u32>,
}

impl Failure {
    fn new(code: Code, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

/// The status in `headers`, if they hold one: `Ok` for OK.
fn status(headers: &HeaderMap) -> Option<Result<(), Failure>> {
    let code = Code::from_bytes(headers.get("grpc-status")?.as_bytes());
    if code == Code::Ok {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .map(|m| percent_decoded(m.as_bytes()))
        .unwrap_or_default();
    let retry_after_ms = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    Some(Err(Failure {
        code,
        message,
        retry_after_ms,
    }))
}

/// `grpc-message` is percent-encoded (UTF-8 bytes outside printable ASCII, and `%`).
fn percent_decoded(bytes: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let pair = bytes
            .get(i + 1..i + 3)
            .and_then(|p| Some(hex(p[0])? * 16 + hex(p[1])?));
        match (bytes[i], pair) {
            (b'%', Some(byte)) => {
                out.push(byte as u8);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Starts the call `path` (e.g. "/grpcchat.ChatService/Join") with one request message,
/// and the session's token as `authorization: Bearer ...` when there is one. Resolves when
/// the response's headers have arrived; the messages follow through [`Reply`].
pub async fn call(
    client: &Client,
    path: &'static str,
    message: &[u8],
    token: Option<&str>,
) -> Result<Reply, Failure> {
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    let mut request = http::Request::new(Body::new(Full::new(Bytes::from(framed))));
    // From its parts: a whole URI's parser (scheme, authority) is code the page need not carry.
    let mut uri = http::uri::Parts::default();
    uri.path_and_query = Some(http::uri::PathAndQuery::from_static(path));
    *request.uri_mut() =
        http::Uri::from_parts(uri).map_err(|_| Failure::new(Code::Internal, "bad method path"))?;
    if let Some(value) = token.and_then(|t| HeaderValue::try_from(format!("Bearer {t}")).ok()) {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
    }
    let response = client
        .clone()
        .call(request)
        .await
        .map_err(|_| Failure::new(Code::Unavailable, BROKE))?;
    // A reply with no message (a refusal, or a stream that ends at once) is its status in
    // the headers alone: then there is nothing more to read.
    let ended = match status(response.headers()) {
        Some(Err(failure)) => return Err(failure),
        Some(Ok(())) => true,
        None => false,
    };
    if response.status() != StatusCode::OK {
        return Err(from_http(response.status()));
    }
    Ok(Reply {
        body: (!ended).then(|| response.into_body()),
        frames: Frames::default(),
    })
}

/// gRPC's mapping of an HTTP status without a gRPC one (a proxy's answer, say).
fn from_http(status: StatusCode) -> Failure {
    let code = match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Failure::new(code, format!("HTTP {}", status.as_u16()))
}

/// A call's response messages, then its status.
pub struct Reply {
    /// None once the status has been read (from the trailers, or already from the headers)
    /// or the body has failed.
    body: Option<ResponseBody>,
    frames: Frames,
}

impl Reply {
    /// The next message; `Ok(None)` when the call ended well, `Err` when it ended with an
    /// error status (or the connection broke).
    pub async fn message(&mut self) -> Result<Option<Bytes>, Failure> {
        loop {
            if let Some(message) = self.frames.next()? {
                return Ok(Some(message));
            }
            let Some(body) = self.body.as_mut() else {
                return Ok(None);
            };
            let frame = match body.frame().await {
                Some(Ok(frame)) => frame,
                Some(Err(_)) => {
                    self.body = None;
                    return Err(Failure::new(Code::Unavailable, BROKE));
                }
                None => {
                    self.body = None;
                    return Err(Failure::new(Code::Unknown, NO_STATUS));
                }
            };
            match frame.into_data() {
                Ok(data) => self.frames.push(&data),
                Err(frame) => {
                    self.body = None;
                    self.frames.finish()?;
                    let trailers = frame.into_trailers().unwrap_or_default();
                    return match status(&trailers) {
                        Some(done) => done.map(|()| None),
                        None => Err(Failure::new(Code::Unknown, NO_STATUS)),
                    };
                }
            }
        }
    }

    /// The one message of a unary call, after its status said OK.
    pub async fn only(mut self) -> Result<Bytes, Failure> {
        let message = self.message().await?;
        if self.message().await?.is_some() {
            return Err(Failure::new(
                Code::Internal,
                "more than one reply to a unary call",
            ));
        }
        message.ok_or_else(|| Failure::new(Code::Internal, "no reply to a unary call"))
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
    fn next(&mut self) -> Result<Option<Bytes>, Failure> {
        let Some(&[flag, a, b, c, d]) = self.buf.get(..5) else {
            return Ok(None);
        };
        if flag != 0 {
            return Err(Failure::new(
                Code::Internal,
                "the server sent a compressed message",
            ));
        }
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        if len > MAX_MESSAGE {
            return Err(Failure::new(
                Code::ResourceExhausted,
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
    fn finish(&self) -> Result<(), Failure> {
        match self.buf.is_empty() {
            true => Ok(()),
            false => Err(Failure::new(
                Code::Internal,
                "the reply ended inside a message",
            )),
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
        assert_eq!(frames.finish().unwrap_err().code, Code::Internal);
    }

    #[test]
    fn compressed_and_oversized_messages_are_refused() {
        let mut frames = Frames::default();
        frames.push(&[1, 0, 0, 0, 1, b'x']);
        assert_eq!(frames.next().unwrap_err().code, Code::Internal);
        let mut frames = Frames::default();
        frames.push(&[0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(frames.next().unwrap_err().code, Code::ResourceExhausted);
    }

    #[test]
    fn statuses_come_from_headers_with_their_message_decoded() {
        let mut headers = HeaderMap::new();
        assert_eq!(status(&headers), None);
        headers.insert("grpc-status", HeaderValue::from_static("0"));
        assert_eq!(status(&headers), Some(Ok(())));
        headers.insert("grpc-status", HeaderValue::from_static("8"));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("try again in 2 s: 100%25 caf%C3%A9 %zz"),
        );
        headers.insert("retry-after-ms", HeaderValue::from_static("2000"));
        let failure = status(&headers).unwrap().unwrap_err();
        assert_eq!(failure.code, Code::ResourceExhausted);
        assert_eq!(failure.message, "try again in 2 s: 100% café %zz");
        assert_eq!(failure.retry_after_ms, Some(2000));
    }

    #[test]
    fn http_statuses_map_as_grpc_says() {
        assert_eq!(from_http(StatusCode::BAD_GATEWAY).code, Code::Unavailable);
        assert_eq!(
            from_http(StatusCode::UNAUTHORIZED).code,
            Code::Unauthenticated
        );
        assert_eq!(from_http(StatusCode::NOT_FOUND).code, Code::Unimplemented);
        assert_eq!(from_http(StatusCode::IM_A_TEAPOT).code, Code::Unknown);
    }
}
