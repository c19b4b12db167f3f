//! `cargo xtask demo`: README's first command. Builds and runs `reelthyme chat` for one
//! turn — against OpenAI with `OPENAI_API_KEY`, else the built-in simulator.
//!
//! It installs nothing: a text conversation needs no system library, so on a machine
//! without ALSA's headers it builds the CLI without its `audio` feature (no `talk`) and
//! says how to get it, instead of failing in alsa-sys's build script.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::system;

/// The question README's first command asks.
pub const MESSAGE: &str = "What is the weather like in Paris today?";

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut command = Command::new(crate::cargo());
    command
        .current_dir(root)
        .args(["run", "--locked", "-p", "reelthyme-cli"]);
    if !system::alsa_present() {
        if !cli_has_feature(root, "audio")? {
            bail!(
                "ALSA's headers are missing and this reelthyme-cli cannot be built without them; \
                 run:\n  sudo sh -c '{}'",
                system::install_command(&["libasound2-dev", "pkg-config"])
            );
        }
        eprintln!(
            "note: no ALSA headers (pkg-config finds no `alsa`): building the CLI without its \
             `audio` feature, so `chat` works and `talk` is left out. For voice:\n  \
             sudo sh -c '{}'",
            system::install_command(&["libasound2-dev", "pkg-config"])
        );
        command.arg("--no-default-features");
    }
    command.arg("--").arg("chat");
    if args.is_empty() {
        command.args(["--message", MESSAGE]);
    } else {
        command.args(args);
    }
    let status = command.status().context("running cargo")?;
    std::process::exit(status.code().unwrap_or(1));
}

/// Whether the workspace's reelthyme-cli declares `feature`.
fn cli_has_feature(root: &Path, feature: &str) -> Result<bool> {
    let output = Command::new(crate::cargo())
        .current_dir(root)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "reelthyme-cli")
        .any(|p| p["features"].get(feature).is_some()))
}
