//! Writing recordings (`chat --record FILE`, `talk --record DIR`): private files, and every
//! write error reported — a recording holds the user's voice and words, and a silently
//! truncated one is worse than none (review #19k).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

#[cfg_attr(not(feature = "audio"), allow(dead_code))] // only `talk --record DIR` makes one
/// Creates `dir` (and its parents) readable by the user only (0700 where that means
/// something). An existing directory is left as it is.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates (or truncates) `path`, readable and writable by the user only (0600).
pub(crate) fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    // `mode` applies to new files only: an existing one keeps its permissions otherwise.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(file)
}

/// A recording's events: the header, then one timestamped line per event, flushed as it
/// goes so that a crash loses nothing already seen.
#[derive(Debug)]
pub(crate) struct EventsLog {
    file: BufWriter<File>,
    started: Instant,
}

impl EventsLog {
    pub(crate) fn create(path: &Path, model: &str) -> io::Result<Self> {
        let mut file = BufWriter::new(create_private_file(path)?);
        writeln!(file, "{}", reelthyme_sim::recording_header(model))?;
        file.flush()?;
        Ok(Self {
            file,
            started: Instant::now(),
        })
    }

    pub(crate) fn write(&mut self, from_server: bool, event: serde_json::Value) -> io::Result<()> {
        let entry = reelthyme_sim::Entry {
            t_ms: self.started.elapsed().as_millis() as u64,
            from_server,
            event,
        };
        writeln!(self.file, "{}", entry.to_line())?;
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn recordings_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("reelthyme-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        create_private_dir(&dir.join("inner")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("inner")), 0o700);
        let file = dir.join("inner/events.jsonl");
        std::fs::write(&file, "old").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut log = EventsLog::create(&file, "gpt-realtime").unwrap();
        log.write(true, serde_json::json!({"type": "session.created"}))
            .unwrap();
        assert_eq!(mode(&file), 0o600);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("{\"") && text.lines().count() == 2,
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_is_an_error_not_a_silent_truncation() {
        // /dev/full accepts the open and fails every write with ENOSPC.
        let mut log = EventsLog {
            file: BufWriter::new(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/full")
                    .unwrap(),
            ),
            started: Instant::now(),
        };
        let error = log
            .write(true, serde_json::json!({"type": "session.created"}))
            .unwrap_err();
        assert_eq!(error.raw_os_error(), Some(28), "{error}");
    }
}
