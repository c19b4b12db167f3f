//! Audio for realtime conversations.
//!
//! Pure parts, for everyone (including servers that bridge telephony audio and never touch a
//! sound card): [`Resampler`] (rubato's FFT resampler, streaming, aligned), sample
//! conversions, [`PlaybackTracker`] (frames the device consumed → the exact `audio_end_ms`
//! of a barge-in truncation), the wire formats ([`codec`]: PCM16 and G.711 to and from
//! samples, and the streaming [`Decoder`]/[`Encoder`] that speak 24 kHz to devices), and
//! G.711 itself (re-exported from `reelthyme-schema`).
//!
//! # Features
//! | feature | default | what |
//! |---|---|---|
//! | `devices` | yes | microphone capture and speaker playback through cpal (ALSA on Linux) |
//! | `aec` | yes | acoustic echo cancellation ([`echo::EchoCanceller`]: WebRTC's AEC3, pure Rust), fed with the player's output by the capture worker |
//! | `opus` | no | `OpusEncoder`/`OpusDecoder`: Opus at 48 kHz in 20 ms frames for WebRTC tracks (builds libopus: needs cmake) |

#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub mod codec;
mod convert;
#[cfg(feature = "devices")]
mod devices;
pub mod echo;
mod error;
#[cfg(feature = "devices")]
pub mod headless;
#[cfg(feature = "opus")]
mod opus;
mod resample;
mod tracker;

#[cfg(feature = "opus")]
pub use crate::opus::{OPUS_FRAME_SAMPLES, OPUS_RATE, OpusDecoder, OpusEncoder};
pub use codec::{Codec, Decoder, Encoder};
pub use convert::{downmix, f32_to_i16, i16_to_f32, upmix};
#[cfg(feature = "devices")]
pub use devices::{
    Capture, CaptureClock, Captured, Clock, Cut, DeviceFormat, Direction, Drained, EchoPath,
    EchoReference, Player, SampleFormat, list_devices,
};
pub use error::{Error, ErrorKind, Result};
pub use reelthyme_schema::g711;
pub use resample::Resampler;
pub use tracker::{PlaybackTracker, Truncation};

// README.md's examples are tested as doctests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
