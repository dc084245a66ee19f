//! The server's codec: tonic's prost codec with smaller starting buffers.
//!
//! tonic gives every streaming response an 8 KiB encode buffer up front, and every
//! request stream a decode buffer of the same size. A chat server holds thousands of
//! mostly idle Subscribe streams whose events are a few hundred bytes, so those buffers
//! would be most of what an idle subscriber costs. Here they start at 1 KiB and grow when
//! a burst needs it; the yield threshold (how much tonic coalesces into one write) stays
//! at tonic's 32 KiB.
use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

const BUFFER_SIZE: usize = 1024;
const YIELD_THRESHOLD: usize = 32 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct ChatCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for ChatCodec<T, U> {
    fn default() -> Self {
        ChatCodec(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

impl<T, U> Codec for ChatCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(settings())
    }
}
