//! Arbitrary request bodies, in every gRPC content type, to every ChatService method,
//! through the real router: never a panic, always a gRPC status.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_fuzz::framing::check(data));
