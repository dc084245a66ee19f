//! Arbitrary bytes as every request message, and what decodes through the server's
//! validation: never a panic, and every answer obeys the rule it claims.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chat_fuzz::decoders::check(data));
