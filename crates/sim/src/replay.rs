//! Replaying a recorded session as a server: the recorded server events are sent in order,
//! and each recorded client event is waited for (any client event stands for it), so an
//! application can be regression-tested deterministically without the network (over the
//! WebSocket, or in process).
//!
//! The recording format (`reelthyme` recording, version 1) is JSON Lines: a header line
//! `{"reelthyme_recording": 1, ...}`, then one line per event,
//! `{"t_ms": <ms since start>, "direction": "client"|"server", "event": {...}}` — the row
//! format `reelthyme events check` reads, so recordings can be checked too.

use std::io::BufRead;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::frames::{Ending, EventIo, FrameTx, Inbound, Outbound};

/// The version this crate writes and reads.
pub const RECORDING_VERSION: u64 = 1;

/// One recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Milliseconds since the recording started.
    pub t_ms: u64,
    /// `true` for server → client.
    pub from_server: bool,
    /// The event as it crossed the wire.
    pub event: Value,
}

impl Entry {
    /// The entry as a recording line.
    pub fn to_line(&self) -> String {
        json!({"t_ms": self.t_ms, "direction": if self.from_server { "server" } else { "client" }, "event": self.event})
            .to_string()
    }
}

/// The header line of a recording.
pub fn header(model: &str) -> String {
    json!({"reelthyme_recording": RECORDING_VERSION, "model": model}).to_string()
}

/// Why a recording could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// Reading failed.
    #[error("cannot read the recording: {0}")]
    Io(#[from] std::io::Error),
    /// The first line is not a recording header.
    #[error("not a reelthyme recording (line 1 has no `reelthyme_recording`)")]
    NotARecording,
    /// A version this crate does not read.
    #[error(
        "recording version {0} is not supported (this build reads version {RECORDING_VERSION})"
    )]
    Version(u64),
    /// A line is not an entry.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Reads a recording.
///
/// # Errors
/// See [`RecordingError`].
pub fn read_recording(reader: impl BufRead) -> Result<Vec<Entry>, RecordingError> {
    let mut lines = reader.lines();
    let header: Value = match lines.next() {
        Some(line) => serde_json::from_str(&line?).map_err(|_| RecordingError::NotARecording)?,
        None => return Err(RecordingError::NotARecording),
    };
    match header.get("reelthyme_recording").and_then(Value::as_u64) {
        Some(RECORDING_VERSION) => {}
        Some(other) => return Err(RecordingError::Version(other)),
        None => return Err(RecordingError::NotARecording),
    }
    let mut entries = Vec::new();
    for (index, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: &str| RecordingError::Line {
            line: index + 2,
            message: message.to_owned(),
        };
        let value: Value = serde_json::from_str(&line).map_err(|e| bad(&e.to_string()))?;
        let from_server = match value.get("direction").and_then(Value::as_str) {
            Some("server") => true,
            Some("client") => false,
            _ => return Err(bad("`direction` must be \"client\" or \"server\"")),
        };
        let event = value
            .get("event")
            .filter(|e| e.is_object())
            .cloned()
            .ok_or_else(|| bad("no `event` object"))?;
        let t_ms = value.get("t_ms").and_then(Value::as_u64).unwrap_or(0);
        entries.push(Entry {
            t_ms,
            from_server,
            event,
        });
    }
    Ok(entries)
}

/// How long the end of a replay waits for the client's close to complete.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Plays `entries` to one client, on any transport.
pub(crate) async fn serve<I: EventIo>(mut io: I, mut tx: I::Tx, entries: &[Entry]) -> I::Output {
    let ending = 'play: {
        for entry in entries {
            if entry.from_server {
                if !tx.send(Outbound::Text(entry.event.to_string())).await {
                    break 'play Ending::Dropped;
                }
                continue;
            }
            // A recorded client event: wait for the client's next event before going on.
            match io.recv().await {
                Inbound::Text(_) | Inbound::Binary => {}
                Inbound::Closed => break 'play Ending::PeerClosed,
                Inbound::Gone | Inbound::TooLarge | Inbound::Broken(..) => {
                    break 'play Ending::Dropped;
                }
            }
        }
        // The recording is over: stay until the client leaves.
        loop {
            match io.recv().await {
                Inbound::Text(_) | Inbound::Binary => {}
                Inbound::Closed => break Ending::PeerClosed,
                Inbound::Gone | Inbound::TooLarge | Inbound::Broken(..) => break Ending::Dropped,
            }
        }
    };
    io.conclude(Some(tx), ending, Instant::now() + CLOSE_WAIT)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_round_trip_and_bad_ones_are_named() {
        let entries = vec![
            Entry {
                t_ms: 0,
                from_server: true,
                event: json!({"type": "session.created"}),
            },
            Entry {
                t_ms: 5,
                from_server: false,
                event: json!({"type": "response.create"}),
            },
        ];
        let text = format!(
            "{}\n{}\n{}\n",
            header("m"),
            entries[0].to_line(),
            entries[1].to_line()
        );
        assert_eq!(read_recording(text.as_bytes()).unwrap(), entries);
        assert!(matches!(
            read_recording("{}\n".as_bytes()),
            Err(RecordingError::NotARecording)
        ));
        assert!(matches!(
            read_recording("{\"reelthyme_recording\":9}\n".as_bytes()),
            Err(RecordingError::Version(9))
        ));
        let bad = format!("{}\n{{\"direction\":\"up\",\"event\":{{}}}}\n", header("m"));
        assert!(matches!(
            read_recording(bad.as_bytes()),
            Err(RecordingError::Line { line: 2, .. })
        ));
    }
}
