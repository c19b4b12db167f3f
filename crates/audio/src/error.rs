//! The crate's one error type: a kind to branch on (and to ask whether a retry can help),
//! a message for people, and the underlying error as the source.

use std::sync::Arc;

/// What went wrong, coarsely: enough to decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No device by that name, or no default device of that direction.
    DeviceNotFound,
    /// The device exists but another program holds it.
    DeviceBusy,
    /// The system refused access to the device (microphone permission).
    PermissionDenied,
    /// A stream could not be built or started, or failed while running (the device was
    /// unplugged, the backend died), or a thread for it could not be started.
    StreamFailed,
    /// The device stopped consuming or answering (a stalled playback, a full backlog).
    Stalled,
    /// The device offers a sample format this crate cannot convert.
    UnsupportedFormat,
    /// A sample rate (or ratio) that cannot be used.
    Rate,
    /// An audio payload that does not decode: bad base64, an odd PCM16 length.
    Decode,
}

impl ErrorKind {
    /// Whether trying the same thing again later can succeed: a busy or failed device may
    /// come back; a missing one, a refused permission or a bad payload will not change by
    /// themselves.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::DeviceBusy | Self::StreamFailed | Self::Stalled)
    }

    /// Whether the error is about a sound device (for "check your devices" hints).
    pub fn is_device(self) -> bool {
        matches!(
            self,
            Self::DeviceNotFound
                | Self::DeviceBusy
                | Self::PermissionDenied
                | Self::StreamFailed
                | Self::Stalled
                | Self::UnsupportedFormat
        )
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Rate => "unusable sample rate",
            Self::Decode => "audio payload",
            _ => "audio device",
        }
    }
}

type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why audio could not be handled.
///
/// Cloneable (a device error is kept and handed to every caller of
/// [`Player::error`](crate::Player::error)); two errors are equal when their kind and
/// message are (the source is not compared).
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Source>,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The same error, of another kind.
    #[cfg(feature = "devices")]
    pub(crate) fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether trying again later can help (see [`ErrorKind::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// The message, without the kind's prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source.as_ref().map(ToString::to_string))
            .finish()
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.prefix(), self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_source_and_retry() {
        let error = Error::new(ErrorKind::Decode, "a delta")
            .with_source(reelthyme_schema::AudioError::InvalidBase64);
        assert_eq!(error.to_string(), "audio payload: a delta");
        let source = std::error::Error::source(&error).expect("the source is kept");
        assert!(source.to_string().contains("base64"), "{source}");
        assert!(!error.is_retryable());
        assert!(ErrorKind::DeviceBusy.is_retryable() && ErrorKind::DeviceBusy.is_device());
        assert!(!ErrorKind::Rate.is_device());
        assert_eq!(error, Error::new(ErrorKind::Decode, "a delta"));
    }
}
