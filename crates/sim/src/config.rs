//! What a simulator does: keys, models, pacing, scripted answers, faults, recording.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// How the simulator answers a user turn.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// Answer with this text (spoken, with a synthesized voice, when the response is audio).
    Text(String),
    /// Call a function tool with these arguments (JSON text).
    FunctionCall {
        /// The tool's name.
        name: String,
        /// The arguments, as JSON text.
        arguments: String,
    },
    /// Call several function tools in one response, as the service does when the model
    /// makes parallel tool calls: one `function_call` item each, in this order, each with
    /// its own `call_id` — `(name, arguments as JSON text)` — then `response.done`.
    FunctionCalls(Vec<(String, String)>),
    /// Ask the client to approve a call of a tool of an MCP server (an
    /// `mcp_approval_request` output item), then end the response; the client answers with
    /// an `mcp_approval_response` item.
    McpApprovalRequest {
        /// The MCP server's label.
        server_label: String,
        /// The tool to run.
        name: String,
        /// Its arguments, as JSON text.
        arguments: String,
    },
    /// Fail the response with this error (`response.done` with `status: "failed"`).
    Fail {
        /// The error code.
        code: String,
        /// The error message.
        message: String,
    },
    /// Answer by speaking the user's own last audio back (echo), with this transcript.
    Echo(String),
}

/// Which user inputs a rule answers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Match {
    /// Every input.
    Any,
    /// Inputs whose text (or transcript) contains this, ignoring case.
    Contains(String),
    /// The turn after a function call's output came back.
    AfterToolOutput,
    /// The turn after the output of a call to the function tool of this name (exactly, case
    /// included) came back.
    AfterTool(String),
}

/// A scripted rule: when the latest input matches, answer so.
///
/// Build with [`Rule::new`] and [`Rule::delay`]; add with [`SimConfig::add_rule`] (or in
/// one go with [`SimConfig::rule`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Rule {
    /// What it answers.
    pub when: Match,
    /// The answer.
    pub reply: Reply,
    /// How long the response waits after `response.created` before its first output (the
    /// output item and its first delta; for [`Reply::Fail`], `response.done`). Wall-clock
    /// time, not scaled by [`SimConfig::speed`].
    pub delay: Duration,
}

impl Rule {
    /// A rule that answers `when` with `reply`, without a delay.
    #[must_use]
    pub fn new(when: Match, reply: Reply) -> Self {
        Self {
            when,
            reply,
            delay: Duration::ZERO,
        }
    }

    /// Waits this long after `response.created` before the reply's first output (default:
    /// no wait). Wall-clock time, not scaled by [`SimConfig::speed`]: a client's
    /// time-to-first-delta is at least this.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Faults to inject into every session, for testing clients' error handling.
///
/// Counts of "events sent" are of server events written to the socket (injected frames
/// not included). Build with struct-update syntax: `Faults { kill_after: Some(3),
/// ..Faults::default() }`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Close the socket with this code and reason after sending this many events (when the
    /// next event is due).
    pub close_after: Option<(usize, u16, String)>,
    /// Stop reading and writing (no pongs either) after sending this many events (when the
    /// next event is due).
    pub stall_after: Option<usize>,
    /// Send a text frame that is not JSON after this many events.
    pub malformed_after: Option<usize>,
    /// Send a binary frame after this many events.
    pub binary_after: Option<usize>,
    /// Drop the TCP connection abruptly, without a close frame, right after sending this many
    /// events (`Some(0)`: right after the 101, before `session.created`). The client sees an
    /// abnormal end (1006).
    pub kill_after: Option<usize>,
    /// When the n-th (1-based) client event whose `type` is the string arrives, process it,
    /// then do the action; e.g. `("input_audio_buffer.append", 3, FaultAction::Kill)` ends the
    /// connection mid-append, and `("response.create", 1,
    /// FaultAction::Delayed(Duration::from_millis(200), Box::new(FaultAction::Kill)))`
    /// mid-response.
    pub on_client: Option<(String, usize, FaultAction)>,
    /// Close with this code and reason right after the 101, before `session.created`.
    pub close_before_session_created: Option<(u16, String)>,
    /// Applies the faults above to the first this-many sessions only (numbered from 1 in
    /// the order the simulator starts them; default: every session). `Some(1)` faults the
    /// first connection and lets a client's reconnect through.
    pub sessions: Option<usize>,
    /// Refuses sessions `(first, count, code, reason)`: those numbered `first..first +
    /// count` (from 1, in the order the simulator starts them) are closed with this code and
    /// reason right after the 101, before `session.created`, whatever [`Faults::sessions`]
    /// says. `(2, 3, 1013, "try again later".into())` refuses the three reconnects after the
    /// first session; code 3000 refuses them as a revoked key would (the client's
    /// [`ErrorKind::Auth`](reelthyme_transport::ErrorKind::Auth)).
    pub refuse_sessions: Option<(usize, usize, u16, String)>,
}

impl Faults {
    /// The faults session number `n` (from 1) gets.
    pub(crate) fn for_session(&self, n: u64) -> Self {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let mut faults = match self.sessions {
            Some(sessions) if n > sessions => Self::default(),
            _ => self.clone(),
        };
        if let Some((first, count, code, reason)) = &self.refuse_sessions
            && n >= *first
            && n - *first < *count
        {
            faults.close_before_session_created = Some((*code, reason.clone()));
        }
        faults
    }
}

/// What a [`Faults::on_client`] trigger does.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FaultAction {
    /// Send a close frame with this code and reason (then wait briefly for the client's).
    Close(u16, String),
    /// Drop the TCP connection without a close frame (the client sees 1006).
    Kill,
    /// Stop reading, writing and answering pings, until the simulator shuts down.
    Stall,
    /// Do the action after this delay (the session goes on meanwhile).
    Delayed(Duration, Box<FaultAction>),
}

/// What the beta header (`OpenAI-Beta: realtime=v1`) gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BetaMode {
    /// What api.openai.com does today: `beta_api_shape_disabled`, then close 4000.
    #[default]
    Reject,
    /// Speak the beta dialect, as legacy servers do.
    Speak,
}

/// One frame as it crossed the simulator's socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The session it belongs to (`sess_…`).
    pub session_id: String,
    /// `true` for server → client.
    pub from_server: bool,
    /// The frame, parsed (frames that are not JSON are recorded as strings).
    pub json: Value,
    /// Whether the session spoke the beta dialect.
    pub beta: bool,
}

/// Every frame of every session, shared with the test that configured it.
#[derive(Debug, Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Recorded>>>);

impl Recorder {
    /// A new, empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&self, record: Recorded) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(record);
    }

    /// What was recorded so far.
    pub fn frames(&self) -> Vec<Recorded> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// How a simulator behaves. Build with [`SimConfig::default`] and the setters.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub(crate) api_keys: Vec<String>,
    pub(crate) models: Option<Vec<String>>,
    pub(crate) speed: f64,
    pub(crate) beta: BetaMode,
    pub(crate) script: Vec<Rule>,
    pub(crate) transcripts: Vec<String>,
    pub(crate) transcript_delay: Duration,
    pub(crate) faults: Faults,
    pub(crate) session_duration: Duration,
    pub(crate) recorder: Option<Recorder>,
    pub(crate) audio_chunk: Duration,
    pub(crate) stamp_event_ids: bool,
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) voice: Option<crate::synth::Voice>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            models: None,
            speed: 1.0,
            beta: BetaMode::Reject,
            script: Vec::new(),
            transcripts: Vec::new(),
            transcript_delay: Duration::ZERO,
            faults: Faults::default(),
            session_duration: Duration::from_secs(3600),
            recorder: None,
            audio_chunk: Duration::from_millis(100),
            stamp_event_ids: false,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            voice: None,
        }
    }
}

impl SimConfig {
    /// Accept this API key (default: any key, or none, is accepted). Call again for more.
    #[must_use]
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_keys.push(key.into());
        self
    }

    /// The models `?model=` may name (default: names starting with `gpt-` that contain
    /// `realtime` or `audio`).
    #[must_use]
    pub fn models(mut self, models: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.models = Some(models.into_iter().map(Into::into).collect());
        self
    }

    /// How many times faster than real time audio is generated (default 1.0). Values that
    /// are not positive and finite are ignored; the rest are clamped to
    /// [`MIN_SPEED`](Self::MIN_SPEED)..=[`MAX_SPEED`](Self::MAX_SPEED).
    #[must_use]
    pub fn speed(mut self, speed: f64) -> Self {
        if speed.is_finite() && speed > 0.0 {
            self.speed = speed.clamp(Self::MIN_SPEED, Self::MAX_SPEED);
        }
        self
    }

    /// The slowest [`speed`](Self::speed): a thousand times slower than real time.
    pub const MIN_SPEED: f64 = 1e-3;
    /// The fastest [`speed`](Self::speed): a million times faster than real time.
    pub const MAX_SPEED: f64 = 1e6;

    /// How many TCP connections are served at once (default 1024). Connections over the cap
    /// get `503 Service Unavailable` and are closed. At least 1.
    #[must_use]
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// How much audio each `response.output_audio.delta` carries (default 100 ms; the
    /// service sends smaller ones). Clamped to 1 ms – 10 s.
    #[must_use]
    pub fn audio_chunk(mut self, chunk: Duration) -> Self {
        self.audio_chunk = chunk.clamp(Duration::from_millis(1), Duration::from_secs(10));
        self
    }

    /// Benchmarks only (default off): every `event_id` the simulator generates ends with
    /// `.t` and the wall-clock time it was emitted, in microseconds since the Unix epoch,
    /// so that a client in another process can measure send → receipt delays without a
    /// side channel. Ids stay unique and valid; official clients just see longer ones.
    #[must_use]
    pub fn stamp_event_ids(mut self, stamp: bool) -> Self {
        self.stamp_event_ids = stamp;
        self
    }

    /// How long a client may take to send its request headers (default 30 s, as hyper's);
    /// an idle or slow connection is closed after it.
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long a write to a session's socket may block (default 30 s): a client that stops
    /// reading for longer is disconnected.
    #[must_use]
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// Speaks every audio answer with this recording (mono PCM16 at `rate` Hz) instead of
    /// the synthesized voice (default): the answer's audio is the recording from its start,
    /// looped and cut to the answer's length (which still follows its transcript, so deltas,
    /// truncation and usage are the same), resampled to the session's output rate. Real
    /// speech is broadband where the synthesized voice is three harmonics — what an echo
    /// canceller needs to adapt to, as it does to a text-to-speech voice. An empty recording
    /// or a zero rate keeps the synthesized voice; so does an output rate the recording
    /// cannot be resampled to.
    #[must_use]
    pub fn voice_samples(mut self, samples: impl Into<Arc<[i16]>>, rate: u32) -> Self {
        self.voice = crate::synth::Voice::new(samples.into(), rate);
        self
    }

    /// What a client that sends the beta header gets (default: rejected, as OpenAI does).
    #[must_use]
    pub fn beta(mut self, mode: BetaMode) -> Self {
        self.beta = mode;
        self
    }

    /// Adds a scripted rule; rules are tried in order before the default behaviour.
    #[must_use]
    pub fn rule(self, when: Match, reply: Reply) -> Self {
        self.add_rule(Rule::new(when, reply))
    }

    /// Adds a scripted rule built with [`Rule::new`] (with its [`delay`](Rule::delay));
    /// rules are tried in order, the first that matches answers, before the default
    /// behaviour (default: no rules).
    #[must_use]
    pub fn add_rule(mut self, rule: Rule) -> Self {
        self.script.push(rule);
        self
    }

    /// Transcripts for the next user audio turns, in order (the simulator does not
    /// recognise speech; without these it transcribes as `"<N.NN> seconds of audio"`).
    #[must_use]
    pub fn transcripts(mut self, transcripts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.transcripts
            .extend(transcripts.into_iter().map(Into::into));
        self
    }

    /// Delivers each input audio transcription (`…input_audio_transcription.delta` and
    /// `.completed`) this long after the audio was committed, instead of right after its
    /// `conversation.item.done` (default: no delay). With server VAD creating the response,
    /// any delay puts the transcript after `response.created`, as the service often does.
    /// Replies are still chosen from the transcript. Wall-clock time, not scaled by
    /// [`speed`](Self::speed).
    #[must_use]
    pub fn transcript_delay(mut self, delay: Duration) -> Self {
        self.transcript_delay = delay;
        self
    }

    /// Faults to inject.
    #[must_use]
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// How long sessions last before `session_expired` (default 60 minutes). A duration too
    /// long to represent (e.g. `Duration::MAX`) means sessions never expire.
    #[must_use]
    pub fn session_duration(mut self, duration: Duration) -> Self {
        self.session_duration = duration;
        self
    }

    /// Records every frame of every session.
    #[must_use]
    pub fn recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    pub(crate) fn model_allowed(&self, model: &str) -> bool {
        match &self.models {
            Some(models) => models.iter().any(|m| m == model),
            None => {
                model.starts_with("gpt-") && (model.contains("realtime") || model.contains("audio"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // #17b: a speed that would overflow a `Duration` is clamped where it is set.
    #[test]
    fn faults_apply_to_the_sessions_they_name() {
        let faults = Faults {
            kill_after: Some(3),
            sessions: Some(1),
            refuse_sessions: Some((2, 2, 1013, "later".into())),
            ..Faults::default()
        };
        assert_eq!(faults.for_session(1).kill_after, Some(3));
        assert_eq!(faults.for_session(1).close_before_session_created, None);
        for n in [2, 3] {
            let refused = faults.for_session(n);
            assert_eq!(refused.kill_after, None);
            assert_eq!(
                refused.close_before_session_created,
                Some((1013, "later".into()))
            );
        }
        assert_eq!(faults.for_session(4), Faults::default());
        // Without `sessions`, every session gets them.
        let every = Faults {
            kill_after: Some(3),
            ..Faults::default()
        };
        assert_eq!(every.for_session(7), every);
    }

    #[test]
    fn speeds_are_clamped_to_what_durations_can_hold() {
        assert_eq!(
            SimConfig::default().speed(1e-300).speed,
            SimConfig::MIN_SPEED
        );
        assert_eq!(
            SimConfig::default().speed(1e300).speed,
            SimConfig::MAX_SPEED
        );
        assert_eq!(SimConfig::default().speed(-1.0).speed, 1.0);
        assert_eq!(SimConfig::default().speed(f64::NAN).speed, 1.0);
        assert_eq!(SimConfig::default().speed(20.0).speed, 20.0);
    }
}
