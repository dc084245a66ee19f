//! The bytes on the wire: grpc-web frames (a flag byte, a big-endian u32 length, the
//! payload) and just enough protobuf to read a `ChatEvent`.
//!
//! The load generator shares two cores with the server, so what it spends per delivery is
//! taken from the server. Decoding a `ChatEvent` with prost allocates four strings per
//! message; walking the fields and borrowing the two we need (id and text) allocates
//! nothing. The tests check this reader against prost's encoder.

/// Flag of a grpc-web data frame; 0x80 marks the trailer frame that ends a response.
pub const DATA: u8 = 0x00;
pub const TRAILERS: u8 = 0x80;
const HEADER_LEN: usize = 5;

/// Prefixes `payload` with a grpc-web frame header.
pub fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(flag);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Bytes received but not yet parsed into frames. Callers append what they read and take
/// out every complete frame; an incomplete tail waits for the next read.
#[derive(Default)]
pub struct FrameBuf {
    buf: Vec<u8>,
    start: usize,
}

impl FrameBuf {
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, as (flag, payload).
    pub fn next_frame(&mut self) -> Option<(u8, &[u8])> {
        let rest = &self.buf[self.start..];
        if rest.len() < HEADER_LEN {
            return None;
        }
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        if rest.len() < HEADER_LEN + len {
            return None;
        }
        let flag = rest[0];
        let from = self.start + HEADER_LEN;
        self.start = from + len;
        Some((flag, &self.buf[from..from + len]))
    }

    /// Drops the frames already taken, keeping a partial one. Call after each batch.
    pub fn compact(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
        } else if self.start > 0 {
            self.buf.drain(..self.start);
        }
        self.start = 0;
    }

    /// The flag of the next frame, before the frame is complete.
    pub fn peek_flag(&self) -> Option<u8> {
        self.buf.get(self.start).copied()
    }

    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// What a subscriber needs from one `ChatEvent`.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Welcome {
        last_id: u64,
    },
    Message {
        id: u64,
        text: &'a [u8],
    },
    /// Heartbeat, presence, typing, or anything added later.
    Other,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// Reads a `ChatEvent` (proto/chat.proto): field 1 is a MessageResponse (id = 2,
/// text = 5), field 2 a Welcome (last_id = 3).
pub fn decode_event(buf: &[u8]) -> Result<Event<'_>, Malformed> {
    let mut fields = Fields(buf);
    let mut event = Event::Other;
    while let Some((number, value)) = fields.next_field()? {
        match (number, value) {
            (1, Value::Bytes(msg)) => event = decode_message(msg)?,
            (2, Value::Bytes(welcome)) => {
                let mut last_id = 0;
                let mut fields = Fields(welcome);
                while let Some((number, value)) = fields.next_field()? {
                    if let (3, Value::Varint(v)) = (number, value) {
                        last_id = v;
                    }
                }
                event = Event::Welcome { last_id };
            }
            _ => event = Event::Other,
        }
    }
    Ok(event)
}

fn decode_message(buf: &[u8]) -> Result<Event<'_>, Malformed> {
    let (mut id, mut text) = (0, &[][..]);
    let mut fields = Fields(buf);
    while let Some((number, value)) = fields.next_field()? {
        match (number, value) {
            (2, Value::Varint(v)) => id = v,
            (5, Value::Bytes(b)) => text = b,
            _ => {}
        }
    }
    Ok(Event::Message { id, text })
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, Malformed> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => self.skip(8)?,
            2 => {
                let len = self.varint()? as usize;
                let bytes = self.0.get(..len).ok_or(Malformed)?;
                self.0 = &self.0[len..];
                Value::Bytes(bytes)
            }
            5 => self.skip(4)?,
            _ => return Err(Malformed),
        };
        Ok(Some((key >> 3, value)))
    }

    fn skip(&mut self, n: usize) -> Result<Value<'a>, Malformed> {
        self.0 = self.0.get(n..).ok_or(Malformed)?;
        Ok(Value::Fixed)
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for (i, &byte) in self.0.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Ok(value);
            }
        }
        Err(Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::{chat_event, ChatEvent, Heartbeat, MessageResponse, Welcome};
    use prost::Message;

    fn encode(event: chat_event::Event) -> Vec<u8> {
        ChatEvent { event: Some(event) }.encode_to_vec()
    }

    #[test]
    fn reads_what_prost_writes() {
        let msg = encode(chat_event::Event::Message(MessageResponse {
            message: "[bench-s1]: hello".into(),
            id: 300_000_000_000,
            username: "bench-s1".into(),
            room: "r".into(),
            text: "hello".into(),
            sent_at_ms: 1_700_000_000_000,
            guest: false,
            ..Default::default()
        }));
        assert_eq!(
            decode_event(&msg),
            Ok(Event::Message {
                id: 300_000_000_000,
                text: b"hello"
            })
        );
        let welcome = encode(chat_event::Event::Welcome(Welcome {
            room: "r".into(),
            epoch: 7,
            last_id: 42,
            reset: true,
            heartbeat_ms: 15_000,
            members: vec!["a".into()],
            member_count: 1,
        }));
        assert_eq!(decode_event(&welcome), Ok(Event::Welcome { last_id: 42 }));
        let heartbeat = encode(chat_event::Event::Heartbeat(Heartbeat {}));
        assert_eq!(decode_event(&heartbeat), Ok(Event::Other));
    }

    #[test]
    fn truncated_input_is_malformed() {
        let msg = encode(chat_event::Event::Message(MessageResponse {
            id: 5,
            text: "hello".into(),
            ..Default::default()
        }));
        assert_eq!(decode_event(&msg[..msg.len() - 2]), Err(Malformed));
    }

    #[test]
    fn frames_split_across_reads_come_out_whole() {
        let mut wire = frame(DATA, b"abc");
        wire.extend(frame(TRAILERS, b"grpc-status:0\r\n"));
        let mut frames = FrameBuf::default();
        frames.extend(&wire[..6]);
        assert_eq!(frames.peek_flag(), Some(DATA));
        assert_eq!(frames.next_frame(), None);
        frames.extend(&wire[6..10]);
        assert_eq!(frames.next_frame(), Some((DATA, &b"abc"[..])));
        assert_eq!(frames.next_frame(), None);
        frames.compact();
        frames.extend(&wire[10..]);
        assert_eq!(
            frames.next_frame(),
            Some((TRAILERS, &b"grpc-status:0\r\n"[..]))
        );
        frames.compact();
        assert_eq!(frames.pending(), 0);
    }
}
