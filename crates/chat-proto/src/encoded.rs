//! A protobuf message encoded once, carried as shared bytes.
//!
//! The server sends each chat message to every subscriber of a room. Encoding it per
//! subscriber would cost an allocation and an encode per delivery; instead it is encoded
//! once into `Bytes`, and `Encoded` implements `prost::Message` by writing those bytes
//! verbatim, so tonic's ordinary prost codec frames it (grpc and grpc-web alike) with one
//! copy into the connection's buffer and nothing else. It is encode-only: the server
//! never decodes what it sends.
use std::{fmt, marker::PhantomData};

use bytes::{BufMut, Bytes, BytesMut};
use prost::{
    encoding::{self, DecodeContext, WireType},
    DecodeError, Message,
};

use crate::{chat_event, ChatEvent, MessageResponse};

/// The encoding of one `M`.
pub struct Encoded<M> {
    bytes: Bytes,
    _kind: PhantomData<fn() -> M>,
}

impl<M: Message> Encoded<M> {
    pub fn new(message: &M) -> Self {
        Encoded::from_bytes(message.encode_to_vec().into())
    }
}

impl<M> Encoded<M> {
    fn from_bytes(bytes: Bytes) -> Self {
        Encoded {
            bytes,
            _kind: PhantomData,
        }
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

/// One chat message encoded once as both shapes it travels in: a `ChatEvent` (Subscribe)
/// and a bare `MessageResponse` (SendMessage's answer, Broadcast). `ChatEvent.message` is
/// field 1, so the event is a two-part prefix followed by exactly the response's bytes:
/// one buffer, two views. A change event (an edit, delete or reaction) is the same bytes
/// under `ChatEvent.change` (field 6); its bare view is not for MessageResponse streams
/// (see `MessageResponse.change`).
pub fn encode_message(message: &MessageResponse) -> (Encoded<ChatEvent>, Encoded<MessageResponse>) {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(len + 11);
    let field = if message.change.is_some() { 6 } else { 1 };
    encoding::encode_key(field, WireType::LengthDelimited, &mut buf);
    encoding::encode_varint(len as u64, &mut buf);
    let prefix = buf.len();
    message
        .encode(&mut buf)
        .expect("a BytesMut grows as needed");
    let event = buf.freeze();
    let response = event.slice(prefix..);
    (Encoded::from_bytes(event), Encoded::from_bytes(response))
}

impl Encoded<ChatEvent> {
    /// Any other event (welcome, presence, ...): rarer, encoded the plain way.
    pub fn event(event: chat_event::Event) -> Self {
        Encoded::new(&ChatEvent { event: Some(event) })
    }
}

impl<M> Clone for Encoded<M> {
    fn clone(&self) -> Self {
        Encoded::from_bytes(self.bytes.clone())
    }
}

impl<M> Default for Encoded<M> {
    fn default() -> Self {
        Encoded::from_bytes(Bytes::new())
    }
}

impl<M> fmt::Debug for Encoded<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encoded({} bytes)", self.bytes.len())
    }
}

impl<M> Message for Encoded<M> {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.bytes);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl bytes::Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        // Encode-only; a decode (never done by the server) keeps nothing.
        encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    fn clear(&mut self) {
        self.bytes = Bytes::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_views_decode_to_the_message() {
        let msg = MessageResponse {
            message: "[ann]: hi".into(),
            id: 300,
            username: "ann".into(),
            room: "general".into(),
            text: "hi ".repeat(100),
            sent_at_ms: 1_700_000_000_000,
            guest: true,
            ..Default::default()
        };
        let (event, response) = encode_message(&msg);
        assert_eq!(
            MessageResponse::decode(response.bytes().clone()).unwrap(),
            msg
        );
        assert_eq!(
            ChatEvent::decode(event.bytes().clone()).unwrap(),
            ChatEvent {
                event: Some(chat_event::Event::Message(msg.clone()))
            }
        );
        // Written through prost's own entry point, exactly the same bytes.
        assert_eq!(event.encode_to_vec(), event.bytes().to_vec());
    }

    #[test]
    fn a_change_travels_as_a_change_event() {
        let msg = MessageResponse {
            id: 7,
            username: "ann".into(),
            text: "fixed".into(),
            change: Some(crate::Change {
                target_id: 3,
                ..Default::default()
            }),
            ..Default::default()
        };
        let (event, _) = encode_message(&msg);
        assert_eq!(
            ChatEvent::decode(event.bytes().clone()).unwrap(),
            ChatEvent {
                event: Some(chat_event::Event::Change(msg))
            }
        );
    }
}
