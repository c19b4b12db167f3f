//! What the example tests share: running an example as a user does, and the device format
//! ALSA's file devices record.

#![allow(dead_code)] // each test binary uses its own part

use std::process::{Command, Output};

/// `cargo run --example EXAMPLE` with no OpenAI key or base URL from the environment (so the
/// example starts its built-in simulator), plus `env`.
pub fn cargo_run(example: &str, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "--offline",
            "-p",
            "reelthyme-examples",
            "--example",
            example,
        ])
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("REELTHYME_BASE_URL")
        .env("RUST_BACKTRACE", "0")
        .envs(env.iter().copied())
        .output()
        .expect("cargo runs")
}

/// 24 kHz mono PCM16 as 48 kHz stereo f32 bytes (what Debian's `null` device records).
pub fn as_device_bytes(samples: &[i16]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|&s| std::iter::repeat_n(f32::from(s) / 32_768.0, 4))
        .flat_map(f32::to_le_bytes)
        .collect()
}
