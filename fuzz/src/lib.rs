//! What the fuzz targets check, as plain functions: the cargo-fuzz entry points
//! (`fuzz_targets/`) call them on nightly, and `tests/replay.rs` runs the committed
//! corpus through them on stable, so the corpus keeps guarding the code without cargo-fuzz.

pub mod decoders;
pub mod framing;
