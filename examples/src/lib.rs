//! Runnable examples of reelthyme: `cargo run --example NAME` (see README.md). Each is one
//! self-contained file you can copy; this library is empty (cargo wants a target besides
//! examples).

#![forbid(unsafe_code)]
