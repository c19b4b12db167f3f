//! What the CLI's integration tests share: a `reelthyme` child process that is killed
//! when the test ends, and starting one that prints its base URL first (`sim`, `replay`).

#![allow(dead_code)] // each test binary uses its part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A child process, killed (and reaped) when dropped, however the test ends.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `reelthyme ARGS` (a server: `sim`, `replay`); returns it and the first line it
/// printed (its base URL).
pub fn start(args: &[&str]) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reelthyme"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Killed from here on, even if reading fails.
    let child = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    (child, line.trim().to_owned())
}
