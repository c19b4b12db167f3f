//! Running the real capture and playback code without a sound card: ALSA's user-space
//! `file` and `null` plugins as the default devices (Linux).

use std::path::{Path, PathBuf};

/// Writes an ALSA configuration whose default capture device reads raw samples from
/// `infile` and whose default playback device writes them to `outfile`, and returns the
/// value `ALSA_CONFIG_PATH` must have — set it before the first device is opened (ALSA reads
/// its configuration once per process).
///
/// The samples are in the device's default format (48 kHz stereo f32 on Debian's `null`
/// device: see [`crate::Player::format`]). These devices are not paced in real time, and
/// capture repeats stale data after `infile` ends: pad it with silence.
///
/// # Errors
/// When the configuration file cannot be written.
pub fn alsa_file_devices(dir: &Path, infile: &Path, outfile: &Path) -> std::io::Result<String> {
    let conf: PathBuf = dir.join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            "pcm.!default {{\n  type asym\n  capture.pcm {{ type file slave.pcm \"null\" file \"/dev/null\" infile \"{}\" format \"raw\" }}\n  playback.pcm {{ type file slave.pcm \"null\" file \"{}\" format \"raw\" }}\n}}\n",
            infile.display(),
            outfile.display()
        ),
    )?;
    Ok(format!("/usr/share/alsa/alsa.conf:{}", conf.display()))
}
