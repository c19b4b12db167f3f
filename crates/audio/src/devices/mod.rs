//! Microphone and speaker through cpal. Each stream lives on a thread of its own (cpal's
//! streams are not `Send`); the handles here are `Send` and talk to it through shared
//! state. No audio callback blocks: each only moves samples through a lock-free ring and
//! counts with atomics; the work (resampling, chunking, tracking) is on other threads.
//!
//! - [`Player`] (`player.rs`): 24 kHz mono PCM16 in, resampled to the device's rate and
//!   channel count; the callback (`render.rs`, shared with [`Clock`]) counts the frames the
//!   device really consumed into a [`PlaybackTracker`](crate::PlaybackTracker), so a
//!   barge-in knows exactly what was heard.
//! - [`Capture`] (`capture.rs`): the device's native rate, format and channels in; mono
//!   24 kHz PCM16 out, in chunks of a chosen duration, to a callback.

mod capture;
mod echo;
mod player;
mod render;

use cpal::traits::{DeviceTrait, HostTrait};

pub use capture::{Capture, CaptureClock, Captured};
pub use echo::EchoPath;
pub use player::{Cut, Drained, EchoReference, Player};
pub use render::Clock;

use crate::{Error, ErrorKind, Result};

/// The rate the API speaks.
const API_RATE: u32 = crate::codec::API_RATE;

/// A cpal failure while doing `what`, classified (cpal's error is the source).
fn device_error(what: &str, error: cpal::Error) -> Error {
    let kind = match error.kind() {
        cpal::ErrorKind::DeviceBusy => ErrorKind::DeviceBusy,
        cpal::ErrorKind::DeviceNotAvailable | cpal::ErrorKind::HostUnavailable => {
            ErrorKind::DeviceNotFound
        }
        cpal::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        cpal::ErrorKind::UnsupportedConfig => ErrorKind::UnsupportedFormat,
        _ => ErrorKind::StreamFailed,
    };
    Error::new(kind, format!("{what}: {error}")).with_source(error)
}

/// A cpal failure of a running stream: a device that went away may come back, so it is a
/// failed stream (worth a retry), not a missing device.
fn stream_error(what: &str, error: cpal::Error) -> Error {
    let error = device_error(what, error);
    if error.kind() == ErrorKind::DeviceNotFound {
        error.with_kind(ErrorKind::StreamFailed)
    } else {
        error
    }
}

/// A failure to start one of the threads a stream needs.
fn thread_error(what: &str, error: std::io::Error) -> Error {
    Error::new(ErrorKind::StreamFailed, format!("{what}: {error}")).with_source(error)
}

/// A stream thread that ended before answering (it panicked).
fn thread_died(which: &str) -> Error {
    Error::new(ErrorKind::StreamFailed, format!("the {which} thread died"))
}

/// Which way audio flows through a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Direction {
    /// A microphone: audio comes in.
    Input,
    /// A speaker: audio goes out.
    Output,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
        }
    }
}

/// A device's name, as `--input-device`/`--output-device` take it.
fn device_name(device: &cpal::Device) -> String {
    device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_else(|_| "<unnamed>".to_owned())
}

fn devices_of(
    host: &cpal::Host,
    direction: Direction,
) -> Result<Box<dyn Iterator<Item = cpal::Device>>> {
    let devices: Box<dyn Iterator<Item = cpal::Device>> = match direction {
        Direction::Input => Box::new(
            host.input_devices()
                .map_err(|e| device_error("listing devices", e))?,
        ),
        Direction::Output => Box::new(
            host.output_devices()
                .map_err(|e| device_error("listing devices", e))?,
        ),
    };
    Ok(devices)
}

/// The names of the devices of one direction.
///
/// # Errors
/// When the host cannot list devices.
pub fn list_devices(direction: Direction) -> Result<Vec<String>> {
    let host = cpal::default_host();
    Ok(devices_of(&host, direction)?
        .map(|d| device_name(&d))
        .collect())
}

fn find_device(direction: Direction, name: Option<&str>) -> Result<cpal::Device> {
    let host = cpal::default_host();
    match name {
        None => match direction {
            Direction::Input => host.default_input_device(),
            Direction::Output => host.default_output_device(),
        }
        .ok_or_else(|| {
            Error::new(
                ErrorKind::DeviceNotFound,
                format!("no default {} device", direction.name()),
            )
        }),
        Some(name) => devices_of(&host, direction)?
            .find(|d| device_name(d) == name)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::DeviceNotFound,
                    format!("no device named {name:?}"),
                )
            }),
    }
}

/// The sample format a stream runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SampleFormat {
    /// Signed 16-bit integers.
    I16,
    /// Unsigned 16-bit integers.
    U16,
    /// Signed 32-bit integers.
    I32,
    /// 32-bit floats.
    F32,
    /// 64-bit floats.
    F64,
}

impl SampleFormat {
    /// cpal's name for it (`"F32"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::I16 => "I16",
            Self::U16 => "U16",
            Self::I32 => "I32",
            Self::F32 => "F32",
            Self::F64 => "F64",
        }
    }

    /// The formats streams can be opened at; `None` for the others.
    fn from_cpal(format: cpal::SampleFormat) -> Option<Self> {
        Some(match format {
            cpal::SampleFormat::I16 => Self::I16,
            cpal::SampleFormat::U16 => Self::U16,
            cpal::SampleFormat::I32 => Self::I32,
            cpal::SampleFormat::F32 => Self::F32,
            cpal::SampleFormat::F64 => Self::F64,
            _ => return None,
        })
    }

    /// The device's format, or the error of a format this crate cannot convert.
    fn of_device(format: cpal::SampleFormat, direction: Direction) -> Result<Self> {
        Self::from_cpal(format).ok_or_else(|| {
            Error::new(
                ErrorKind::UnsupportedFormat,
                format!("unsupported {} sample format {format:?}", direction.name()),
            )
        })
    }
}

impl std::fmt::Display for SampleFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a stream runs at.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceFormat {
    /// The device's name.
    pub name: String,
    /// Frames per second.
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// The sample format.
    pub sample_format: SampleFormat,
}

/// A device opened at its default configuration, with the format it runs at.
fn open_default(
    direction: Direction,
    name: Option<&str>,
) -> Result<(cpal::Device, cpal::StreamConfig, DeviceFormat)> {
    let device = find_device(direction, name)?;
    let supported = match direction {
        Direction::Input => device.default_input_config(),
        Direction::Output => device.default_output_config(),
    }
    .map_err(|e| device_error(&format!("{} configuration", direction.name()), e))?;
    let format = DeviceFormat {
        name: device_name(&device),
        rate: supported.sample_rate(),
        channels: supported.channels(),
        sample_format: SampleFormat::of_device(supported.sample_format(), direction)?,
    };
    Ok((device, supported.config(), format))
}
