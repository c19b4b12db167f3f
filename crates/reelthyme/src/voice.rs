//! A voice conversation on the sound devices as one value: [`Voice`] connects, plays the
//! answers ([`stream_with`](crate::stream_with): playback, barge-in), captures the
//! microphone ([`capture_audio`](crate::capture_audio)) and reads the events, giving the
//! application the transcript line by line. What every voice application's `main` writes
//! by hand, in the right order: capture starts after playback (so that echo control has the
//! speaker's reference), events keep being read while it waits (so tools, playback and
//! barge-in progress), and at the end the microphone stops before what is queued is let
//! play out.

use std::fmt;
use std::time::Duration;

use futures_util::StreamExt;
use reelthyme_schema::{Role, ServerEvent};

use crate::audio::{AudioControl, AudioEvents, CaptureHandle, CaptureOptions, StreamOptions};
use crate::{Config, Result, SessionSender};

/// How long [`Voice::finish`] lets queued audio play out at most.
pub const DRAIN_BOUND: Duration = Duration::from_secs(30);

/// A voice conversation on the default (or named) sound devices; see the module
/// documentation.
///
/// ```no_run
/// # async fn run(config: reelthyme::Config) -> reelthyme::Result<()> {
/// let mut voice = reelthyme::Voice::start(config).await?;
/// while let Some(line) = voice.next_line().await? {
///     println!("{line}"); // "you: …", "assistant: …"
/// }
/// voice.finish().await
/// # }
/// ```
pub struct Voice {
    events: AudioEvents,
    audio: AudioControl,
    capture: Option<CaptureHandle>,
    sender: SessionSender,
    // The event stream ended: the session is over, there is nothing to close.
    ended: bool,
}

impl fmt::Debug for Voice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Voice")
            .field("capturing", &self.capture.is_some())
            .finish_non_exhaustive()
    }
}

/// One line of a voice conversation's transcript: what the user said (their transcribed
/// speech) or what the assistant said (the transcript of a spoken answer).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Line {
    /// Who said it: [`Role::User`] or [`Role::Assistant`].
    pub role: Role,
    /// What was said.
    pub text: String,
    /// The item it belongs to.
    pub item_id: String,
}

/// `you: …` or `assistant: …`.
impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.role {
            Role::User => "you",
            _ => "assistant",
        };
        write!(f, "{who}: {}", self.text)
    }
}

impl Line {
    /// The line an event finishes, if it finishes one.
    pub fn of(event: &ServerEvent) -> Option<Self> {
        match event {
            ServerEvent::InputAudioTranscriptionCompleted(t) => Some(Self {
                role: Role::User,
                text: t.transcript.clone(),
                item_id: t.item_id.clone(),
            }),
            ServerEvent::ResponseOutputAudioTranscriptDone(t) => Some(Self {
                role: Role::Assistant,
                text: t.transcript.clone(),
                item_id: t.item_id.clone(),
            }),
            _ => None,
        }
    }
}

impl Voice {
    /// Connects with `config`, plays on the default speaker and captures the default
    /// microphone.
    ///
    /// # Errors
    /// What [`connect`](crate::connect) fails with, and a missing or failing sound device.
    pub async fn start(config: Config) -> Result<Self> {
        Self::start_with(config, StreamOptions::default(), CaptureOptions::default()).await
    }

    /// [`Self::start`] with the playback and capture options.
    ///
    /// # Errors
    /// As [`Self::start`].
    pub async fn start_with(
        config: Config,
        playback: StreamOptions,
        capture: CaptureOptions,
    ) -> Result<Self> {
        let session = crate::connect(config).await?;
        let sender = session.sender();
        let (events, audio) = crate::stream_with(session, playback)?;
        // After playback: capture takes the speaker's reference for echo control.
        let capture = crate::capture_audio(&sender, capture)?;
        Ok(Self {
            events,
            audio,
            capture: Some(capture),
            sender,
            ended: false,
        })
    }

    /// A sender for this session (text turns, `response.create`, …).
    pub fn sender(&self) -> &SessionSender {
        &self.sender
    }

    /// The playback's control: barge in by hand, what was played, drained.
    pub fn audio(&self) -> &AudioControl {
        &self.audio
    }

    /// The next server event (audio deltas are played, not yielded): for applications that
    /// want more than the transcript. Interleaves with [`Self::next_line`].
    pub async fn next_event(&mut self) -> Option<Result<ServerEvent>> {
        let event = self.events.next().await;
        self.ended |= event.is_none();
        event
    }

    /// The next line of the transcript, reading the events until one finishes — tools,
    /// playback and barge-in make progress meanwhile. `None` when the session ended.
    ///
    /// # Errors
    /// The error that ended the session (or one the error handler did not take).
    pub async fn next_line(&mut self) -> Result<Option<Line>> {
        while let Some(event) = self.next_event().await {
            if let Some(line) = Line::of(&event?) {
                return Ok(Some(line));
            }
        }
        Ok(None)
    }

    /// Ends the conversation: stops the microphone, lets what is queued play out (at most
    /// [`DRAIN_BOUND`]), and closes the session.
    ///
    /// # Errors
    /// When the capture could not be stopped cleanly, or the close failed (a session whose
    /// events already ended has nothing to close).
    pub async fn finish(mut self) -> Result<()> {
        if let Some(capture) = self.capture.take() {
            capture.stop().await?;
        }
        if tokio::time::timeout(DRAIN_BOUND, self.audio.drained())
            .await
            .is_err()
        {
            tracing::warn!("the answer had not played out after {DRAIN_BOUND:?}");
        }
        if self.ended {
            return Ok(());
        }
        self.sender.close().await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(value: serde_json::Value) -> ServerEvent {
        ServerEvent::from_value(value).unwrap()
    }

    // The two events that finish a line, and nothing else (a transcript delta, a text
    // answer's done) make one.
    #[test]
    fn lines_are_the_users_transcripts_and_the_spoken_answers() {
        let heard = event(
            json!({"type": "conversation.item.input_audio_transcription.completed",
            "event_id": "e", "item_id": "u1", "content_index": 0, "transcript": "Hi there"}),
        );
        let said = event(json!({"type": "response.output_audio_transcript.done",
            "event_id": "e", "response_id": "r1", "item_id": "a1", "output_index": 0,
            "content_index": 0, "transcript": "Hello!"}));
        let delta = event(json!({"type": "response.output_audio_transcript.delta",
            "event_id": "e", "response_id": "r1", "item_id": "a1", "output_index": 0,
            "content_index": 0, "delta": "Hel"}));
        let you = Line::of(&heard).unwrap();
        assert_eq!((you.role.clone(), you.item_id.as_str()), (Role::User, "u1"));
        assert_eq!(you.to_string(), "you: Hi there");
        assert_eq!(Line::of(&said).unwrap().to_string(), "assistant: Hello!");
        assert_eq!(Line::of(&delta), None);
    }
}
