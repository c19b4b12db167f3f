//! The system packages the workspace needs beyond the Rust toolchain: the one list, used by
//! `cargo xtask test` (which installs them when it can), `cargo xtask demo` (which builds
//! without them) and `cargo xtask system-packages` (which prints them for a Dockerfile or
//! a `sudo apt-get install`).

use std::process::{Command, Stdio};

use anyhow::{Result, bail};

/// A Debian package, why it is needed, and how to tell it is already there: by the
/// capability, not the package database, so that a Python from pyenv or a tmux from
/// elsewhere counts too.
pub struct Requirement {
    pub package: &'static str,
    pub why: &'static str,
    present: fn() -> bool,
}

/// Everything, in install order.
pub const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        package: "pkg-config",
        why: "finds ALSA for cpal's alsa-sys",
        present: || succeeds(Command::new(pkg_config()).arg("--version")),
    },
    Requirement {
        package: "libasound2-dev",
        why: "ALSA headers: sound devices (`talk`, `stream`, `capture_audio`)",
        present: alsa_present,
    },
    Requirement {
        package: "cmake",
        why: "builds the bundled libopus (WebRTC audio: `reelthyme-audio`'s `opus` feature)",
        present: || succeeds(Command::new("cmake").arg("--version")),
    },
    Requirement {
        package: "tmux",
        why: "drives the `talk` test like a person at a terminal",
        present: || succeeds(Command::new("tmux").arg("-V")),
    },
    Requirement {
        package: "python3-venv",
        why: "the official Python SDK's virtualenv (the simulator's faithfulness test)",
        present: || succeeds(Command::new("python3").args(["-c", "import ensurepip, venv"])),
    },
    Requirement {
        package: "chromium",
        why: "renders `reelthyme timeline`'s HTML in its test (headless)",
        present: chromium_present,
    },
];

/// Where the timeline test looks: `REELTHYME_CHROMIUM`, or a Chromium/Chrome in /usr/bin.
fn chromium_present() -> bool {
    std::env::var_os("REELTHYME_CHROMIUM")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(
            [
                "/usr/bin/chromium",
                "/usr/bin/chromium-browser",
                "/usr/bin/google-chrome",
            ]
            .map(std::path::PathBuf::from),
        )
        .any(|p| p.exists())
}

/// `$PKG_CONFIG` or `pkg-config`, as the `pkg-config` crate (and so alsa-sys) uses it.
fn pkg_config() -> String {
    std::env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into())
}

/// Whether alsa-sys would find ALSA: what its build script asks pkg-config.
pub fn alsa_present() -> bool {
    succeeds(Command::new(pkg_config()).args(["--exists", "alsa"]))
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The packages of `REQUIREMENTS` that are missing.
pub fn missing() -> Vec<&'static Requirement> {
    REQUIREMENTS.iter().filter(|r| !(r.present)()).collect()
}

/// `apt-get install` for these packages.
pub fn install_command(packages: &[&str]) -> String {
    format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs what is missing when this process can (root, with apt-get); otherwise fails
/// with the exact command to run.
pub fn ensure_all() -> Result<()> {
    let missing = missing();
    if missing.is_empty() {
        println!(
            "system packages: all present ({})",
            REQUIREMENTS
                .iter()
                .map(|r| r.package)
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|r| r.package).collect();
    for requirement in &missing {
        println!("missing: {} ({})", requirement.package, requirement.why);
    }
    let has_apt = succeeds(Command::new("apt-get").arg("--version"));
    if !(is_root() && has_apt) {
        let how = if has_apt {
            format!("sudo sh -c '{}'", install_command(&packages))
        } else {
            format!(
                "install the equivalents of these Debian packages: {}",
                packages.join(" ")
            )
        };
        bail!(
            "the tests need system packages this user cannot install; run:\n  {how}\nthen `cargo xtask test` again"
        );
    }
    println!("installing: {}", packages.join(" "));
    let status = Command::new("sh")
        .args(["-c", &install_command(&packages)])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    if !status.success() {
        bail!("`{}` failed", install_command(&packages));
    }
    let still: Vec<&str> = self::missing().iter().map(|r| r.package).collect();
    if !still.is_empty() {
        bail!("still missing after installing: {}", still.join(" "));
    }
    Ok(())
}
