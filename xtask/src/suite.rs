//! `cargo xtask test`: README's test command. Installs what the tests need when it can
//! (the system packages of [`crate::system`], the official Python SDK in a virtualenv),
//! then runs `cargo test --workspace --locked` (`cargo xtask test -p CRATE …` tests only
//! those packages).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::system;

/// The SDK release PROTOCOL.md was checked against.
const SDK: &str = "openai[realtime]==3.54.0";
const SDK_VERSION: &str = "3.54.0";

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let python = setup(root)?;
    // `--workspace` unless the caller names packages (it would override them).
    let names_packages = args
        .iter()
        .any(|a| a == "-p" || a.starts_with("--package") || a.starts_with("-p"));
    let mut command = Command::new(crate::cargo());
    command.current_dir(root).args(["test", "--locked"]);
    if !names_packages {
        command.arg("--workspace");
    }
    let status = command
        .args(args)
        .env("REELTHYME_SDK_PYTHON", &python)
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("cargo test failed");
    }
    Ok(())
}

/// `cargo xtask setup`: everything the tests need besides the toolchain — the system
/// packages and the official SDK's venv — without running them. Returns the venv's Python
/// (also printed last, as `REELTHYME_SDK_PYTHON=…`).
pub fn setup(root: &Path) -> Result<PathBuf> {
    system::ensure_all()?;
    let python = sdk_python(&target_dir(root))?;
    println!("REELTHYME_SDK_PYTHON={}", python.display());
    Ok(python)
}

/// Where cargo builds — `CARGO_BUILD_BUILD_DIR` (intermediate artifacts), else
/// `CARGO_TARGET_DIR`, else `target/` — and where the venv lives, so that a fresh clone
/// that shares a build dir (as `.ci/run`'s does) shares the venv too.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_BUILD_BUILD_DIR")
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR"))
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// `TARGET/sdk-venv/bin/python`, with the pinned SDK: a venv of our own, so the machine's
/// Python is left alone.
fn sdk_python(target: &Path) -> Result<PathBuf> {
    let venv = target.join("sdk-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        std::fs::create_dir_all(target)?;
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("running python3 (the official SDK's test needs Python 3)")?;
        if !status.success() {
            bail!("`python3 -m venv {}` failed", venv.display());
        }
    }
    let current = Command::new(&python)
        .args([
            "-c",
            &format!(
                "import openai, websockets, sys; sys.exit(openai.__version__ != '{SDK_VERSION}')"
            ),
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !current {
        println!("installing {SDK} into {}", venv.display());
        let status = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", SDK])
            .status()
            .context("running pip")?;
        if !status.success() {
            bail!("pip install {SDK} failed");
        }
    }
    Ok(python)
}
