//! Project automation: `cargo xtask <command>`.
//!
//! - `demo [CHAT ARGS…]`: README's first command — builds and runs `reelthyme chat` for one
//!   turn (the built-in simulator without `OPENAI_API_KEY`); without ALSA's headers it
//!   builds the CLI without its `audio` feature instead of failing.
//! - `test [CARGO TEST ARGS…]`: README's test command — installs what the tests need when
//!   it can (system packages, the official Python SDK's venv), then
//!   `cargo test --workspace --locked`.
//! - `setup`: only the installing part of `test` (CI runs it before clippy, which builds
//!   alsa-sys too).
//! - `system-packages`: the Debian packages the tests need, one line (for `apt-get install`).
//! - `regenerate-schemas [--check]`: write `schemas/` from the Rust types, or fail when the
//!   committed files are stale.
//! - `bench [--quick] [--no-webrtc] [--sessions N,N,…]`: run every benchmark, the peers
//!   included, and write `benchmarks/RESULTS.md` and `benchmarks/scaling.svg` (see `bench.rs`).
//! - `fuzz [--seconds N] [TARGET…]`: seed and run the cargo-fuzz targets (see `fuzz.rs`).

#![forbid(unsafe_code)]

mod bench;
mod demo;
mod fuzz;
mod suite;
mod system;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

/// Errors as one readable paragraph (no backtrace, whatever `RUST_BACKTRACE` says): what
/// failed and what to run.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("regenerate-schemas") => regenerate_schemas(args[1..].iter().any(|a| a == "--check")),
        Some("bench") => bench::run(&root(), &args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("demo") => demo::run(&root(), &args[1..]),
        Some("test") => suite::run(&root(), &args[1..]),
        Some("setup") => suite::setup(&root()).map(drop),
        Some("system-packages") => {
            let packages: Vec<&str> = system::REQUIREMENTS.iter().map(|r| r.package).collect();
            println!("{}", packages.join(" "));
            Ok(())
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <demo [chat args] | test [cargo test args] | setup | system-packages | regenerate-schemas [--check] | bench [--quick] [--no-webrtc] [--sessions N,N,...] | fuzz [--seconds N] [TARGET...]>"
            );
            std::process::exit(2);
        }
    }
}

/// The workspace root. `cargo run` tells the binary its manifest's directory at run time;
/// the compile-time one is only the fallback, because cargo hashes path packages relative
/// to the workspace, so a second checkout sharing a build dir can reuse an xtask binary
/// compiled in the first — and would then work on the first checkout's tree.
fn root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn regenerate_schemas(check: bool) -> Result<()> {
    let dir = root().join("schemas");
    let mut stale = Vec::new();
    for file in reelthyme_schema::schema_files() {
        let path = dir.join(file.name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == file.contents {
            continue;
        }
        if check {
            stale.push(file.name);
        } else {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&path, &file.contents)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote schemas/{}", file.name);
        }
    }
    if !stale.is_empty() {
        bail!(
            "stale schema files: {}; run `cargo xtask regenerate-schemas`",
            stale.join(", ")
        );
    }
    if check {
        println!("schemas/ is up to date");
    }
    Ok(())
}

/// The cargo that runs us (`cargo xtask` sets `CARGO`).
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}
