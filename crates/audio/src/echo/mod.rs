//! Echo control: the assistant must not hear — and interrupt — itself.
//!
//! On laptop speakers the microphone hears the answer being played; server VAD takes it for
//! the user and barges in. Two remedies, chosen by [`Echo`]:
//!
//! - [`Echo::Aec`] (feature `aec`): acoustic echo cancellation ([`EchoCanceller`], WebRTC's
//!   AEC3 in pure Rust) of the microphone against exactly what the speaker played — the
//!   [`Player`](crate::Player)'s callback hands every frame it gives the device to an
//!   [`EchoReference`](crate::EchoReference), and the capture worker subtracts its echo at
//!   the device rate, before resampling to the session's.
//! - [`Echo::HalfDuplex`]: while the assistant is heard, the microphone goes through only
//!   above an echo-relative level ([`HalfDuplex`]), silence otherwise — for devices where
//!   echo cancellation cannot converge.
//!
//! [`room`] is the simulated room the tests and the benchmark (`benches/aec.rs`) measure
//! echo control in.

#[cfg(feature = "aec")]
mod canceller;
mod gate;
pub mod room;

#[cfg(feature = "aec")]
pub use canceller::{AEC_RATES, EchoCanceller};
pub use gate::HalfDuplex;

/// How the microphone is kept from hearing the assistant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Echo {
    /// Acoustic echo cancellation against what the speaker played (feature `aec`; without
    /// it, [`Echo::HalfDuplex`] stands in). A capture backs it with the half-duplex gate
    /// while it converges: during the first 5 s the assistant is heard.
    #[default]
    Aec,
    /// While the assistant is heard, only a voice clearly louder than its echo goes
    /// through.
    HalfDuplex,
    /// The microphone as it is (headphones).
    Off,
}

impl Echo {
    /// What runs when this is asked for: [`Echo::Aec`] without the `aec` feature is
    /// [`Echo::HalfDuplex`].
    pub fn effective(self) -> Self {
        match self {
            Self::Aec if !cfg!(feature = "aec") => Self::HalfDuplex,
            other => other,
        }
    }

    /// The name the CLI uses: `aec`, `half-duplex`, `off`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Aec => "aec",
            Self::HalfDuplex => "half-duplex",
            Self::Off => "off",
        }
    }
}

impl std::fmt::Display for Echo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
