//! `reelthyme timeline RECORDING`: a picture of a recorded session — who spoke when, what
//! was said, how long each answer took to start, where the user barged in — as one
//! self-contained HTML file (inline SVG and CSS: no script, no external resource).
//!
//! The analysis reads the events as JSON rather than typed events: a recording may come
//! from another version, and a picture should show what it can of an odd one.

mod html;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;

#[derive(Debug, Args)]
pub(crate) struct TimelineArgs {
    /// The recording: a file from `chat --record FILE`, or the DIR of `talk --record DIR`.
    recording: PathBuf,
    /// Where to write the HTML (default: the recording's name with `.html`; `-` for
    /// standard output).
    #[arg(short, long, value_name = "OUT.html")]
    output: Option<PathBuf>,
}

pub(crate) fn run(args: TimelineArgs) -> Result<ExitCode> {
    let mut path = args.recording.clone();
    if path.is_dir() {
        path = path.join("events.jsonl");
    }
    let file = std::fs::File::open(&path)
        .map_err(|e| crate::Usage(format!("cannot open {}: {e}", path.display())))?;
    let entries = reelthyme_sim::read_recording(std::io::BufReader::new(file))
        .map_err(|e| crate::Usage(format!("{}: {e}", path.display())))?;
    let timeline = Timeline::from_entries(&entries);
    let title = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let page = html::page(&timeline, &title, model(&path).as_deref());
    match args.output.as_deref() {
        Some(out) if out == Path::new("-") => {
            use std::io::Write;
            std::io::stdout().lock().write_all(page.as_bytes())?;
        }
        out => {
            let out = out.map_or_else(|| path.with_extension("html"), Path::to_owned);
            std::fs::write(&out, page)
                .with_context(|| format!("cannot write {}", out.display()))?;
            // The path alone on stdout, for scripts; the rest for the person.
            println!("{}", out.display());
            eprintln!(
                "reelthyme timeline: {} turn{}, {} barge-in{} — open {} in a browser",
                timeline.turns.len(),
                if timeline.turns.len() == 1 { "" } else { "s" },
                timeline.barge_ins(),
                if timeline.barge_ins() == 1 { "" } else { "s" },
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The model named in the recording's header, if any.
fn model(path: &Path) -> Option<String> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).ok()?;
    let line = std::io::BufReader::new(file).lines().next()?.ok()?;
    let header: Value = serde_json::from_str(&line).ok()?;
    header.get("model")?.as_str().map(str::to_owned)
}

/// A span of user speech, as the server's VAD reported it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Speech {
    pub(crate) item_id: String,
    /// When `speech_started` arrived (ms since the recording began).
    pub(crate) start_t: u64,
    /// When `speech_stopped` arrived.
    pub(crate) end_t: Option<u64>,
    /// Positions in the input audio the server gave.
    pub(crate) audio_start_ms: Option<u64>,
    pub(crate) audio_end_ms: Option<u64>,
    pub(crate) transcript: Option<String>,
}

/// A typed user message (`conversation.item.create` with a user `input_text`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UserText {
    pub(crate) t: u64,
    pub(crate) text: String,
}

/// One response, `response.created` → `response.done`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Response {
    pub(crate) id: String,
    pub(crate) created_t: u64,
    pub(crate) done_t: Option<u64>,
    pub(crate) status: Option<String>,
    /// The assistant's words (transcript or text), as they streamed.
    pub(crate) text: String,
    /// The first output delta of any kind (audio, transcript, text).
    pub(crate) first_delta_t: Option<u64>,
    /// The first and last audio delta.
    pub(crate) audio: Option<(u64, u64)>,
    /// A barge-in or a cancel cut it short.
    pub(crate) interrupted: bool,
    /// Where its audio was truncated (`conversation.item.truncate`'s `audio_end_ms`).
    pub(crate) truncated_at_ms: Option<u64>,
    items: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MarkKind {
    /// The user started speaking while a response was active.
    BargeIn,
    /// The client sent `response.cancel`.
    Cancel,
    /// The client sent `conversation.item.truncate` (the server's `truncated` is folded in).
    Truncate { audio_end_ms: u64 },
    /// An `error` event.
    Error { message: String },
}

/// Something that happened at an instant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mark {
    pub(crate) t: u64,
    pub(crate) kind: MarkKind,
    /// The response it concerns, as an index into `responses`.
    pub(crate) response: Option<usize>,
}

/// What started a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    Speech(usize),
    Text(usize),
}

/// A user input and the response that answered it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Turn {
    pub(crate) input: Option<Input>,
    pub(crate) response: usize,
    /// End of the user's input (speech stopped, or the typed message) → the response's
    /// first delta, in ms.
    pub(crate) latency_ms: Option<u64>,
    pub(crate) barge_in: bool,
}

/// Everything the picture shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Timeline {
    pub(crate) end_t: u64,
    pub(crate) speech: Vec<Speech>,
    pub(crate) texts: Vec<UserText>,
    pub(crate) responses: Vec<Response>,
    pub(crate) marks: Vec<Mark>,
    pub(crate) turns: Vec<Turn>,
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

fn u64_at(value: &Value, path: &[&str]) -> Option<u64> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_u64)
}

/// The words of a finished response's output items.
fn output_text(response: &Value) -> String {
    let mut text = String::new();
    for item in response
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for part in item
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(words) = str_at(part, &["transcript"]).or_else(|| str_at(part, &["text"])) {
                text.push_str(words);
            }
        }
    }
    text
}

impl Timeline {
    pub(crate) fn from_entries(entries: &[reelthyme_sim::Entry]) -> Self {
        let mut timeline = Self::default();
        let mut active: Option<usize> = None;
        for entry in entries {
            let (t, event) = (entry.t_ms, &entry.event);
            let kind = str_at(event, &["type"]).unwrap_or_default();
            // Appends go on through silence: the picture ends with the last other event.
            if kind != "input_audio_buffer.append" {
                timeline.end_t = timeline.end_t.max(t);
            }
            if entry.from_server {
                timeline.server_event(t, kind, event, &mut active);
            } else {
                timeline.client_event(t, kind, event, active);
            }
        }
        timeline.pair_turns();
        timeline
    }

    fn response_by_id(&self, id: Option<&str>) -> Option<usize> {
        let id = id?;
        self.responses.iter().rposition(|r| r.id == id)
    }

    fn response_of_item(&self, item: Option<&str>) -> Option<usize> {
        let item = item?;
        self.responses
            .iter()
            .rposition(|r| r.items.iter().any(|i| i == item))
    }

    fn server_event(&mut self, t: u64, kind: &str, event: &Value, active: &mut Option<usize>) {
        match kind {
            "input_audio_buffer.speech_started" => {
                if let Some(index) = *active {
                    self.responses[index].interrupted = true;
                    self.marks.push(Mark {
                        t,
                        kind: MarkKind::BargeIn,
                        response: Some(index),
                    });
                }
                self.speech.push(Speech {
                    item_id: str_at(event, &["item_id"]).unwrap_or_default().to_owned(),
                    start_t: t,
                    end_t: None,
                    audio_start_ms: u64_at(event, &["audio_start_ms"]),
                    audio_end_ms: None,
                    transcript: None,
                });
            }
            "input_audio_buffer.speech_stopped" => {
                let item = str_at(event, &["item_id"]).unwrap_or_default();
                if let Some(speech) = self
                    .speech
                    .iter_mut()
                    .rev()
                    .find(|s| s.item_id == item && s.end_t.is_none())
                {
                    speech.end_t = Some(t);
                    speech.audio_end_ms = u64_at(event, &["audio_end_ms"]);
                }
            }
            "conversation.item.input_audio_transcription.delta"
            | "conversation.item.input_audio_transcription.completed" => {
                let item = str_at(event, &["item_id"]).unwrap_or_default();
                if let Some(speech) = self.speech.iter_mut().rev().find(|s| s.item_id == item) {
                    if let Some(done) = str_at(event, &["transcript"]) {
                        speech.transcript = Some(done.to_owned());
                    } else if let Some(delta) = str_at(event, &["delta"]) {
                        speech.transcript.get_or_insert_default().push_str(delta);
                    }
                }
            }
            "response.created" => {
                self.responses.push(Response {
                    id: str_at(event, &["response", "id"])
                        .unwrap_or_default()
                        .to_owned(),
                    created_t: t,
                    done_t: None,
                    status: None,
                    text: String::new(),
                    first_delta_t: None,
                    audio: None,
                    interrupted: false,
                    truncated_at_ms: None,
                    items: Vec::new(),
                });
                *active = Some(self.responses.len() - 1);
            }
            "response.output_item.added" => {
                if let (Some(index), Some(item)) = (
                    self.response_by_id(str_at(event, &["response_id"])),
                    str_at(event, &["item", "id"]),
                ) {
                    self.responses[index].items.push(item.to_owned());
                }
            }
            "response.output_audio.delta"
            | "response.output_audio_transcript.delta"
            | "response.output_text.delta" => {
                if let Some(index) = self.response_by_id(str_at(event, &["response_id"])) {
                    let response = &mut self.responses[index];
                    response.first_delta_t.get_or_insert(t);
                    if kind == "response.output_audio.delta" {
                        let (first, _) = response.audio.unwrap_or((t, t));
                        response.audio = Some((first, t));
                    } else if let Some(delta) = str_at(event, &["delta"]) {
                        response.text.push_str(delta);
                    }
                }
            }
            "response.done" => {
                let body = event.get("response").unwrap_or(&Value::Null);
                if let Some(index) = self.response_by_id(str_at(body, &["id"])) {
                    let response = &mut self.responses[index];
                    response.done_t = Some(t);
                    response.status = str_at(body, &["status"]).map(str::to_owned);
                    if response.status.as_deref() == Some("cancelled") {
                        response.interrupted = true;
                    }
                    // The finished output is the whole text; deltas may have been cut.
                    let finished = output_text(body);
                    if !finished.is_empty() {
                        response.text = finished;
                    }
                    if *active == Some(index) {
                        *active = None;
                    }
                }
            }
            "conversation.item.truncated" => {
                // The server's acknowledgement: the client's truncate is the mark, unless
                // the recording has only this side.
                let response = self.response_of_item(str_at(event, &["item_id"]));
                let audio_end_ms = u64_at(event, &["audio_end_ms"]).unwrap_or_default();
                let known = self
                    .marks
                    .iter()
                    .any(|m| m.response == response && matches!(m.kind, MarkKind::Truncate { .. }));
                if !known {
                    self.truncate(t, response, audio_end_ms);
                }
            }
            "error" => self.marks.push(Mark {
                t,
                kind: MarkKind::Error {
                    message: str_at(event, &["error", "message"])
                        .unwrap_or("error")
                        .to_owned(),
                },
                response: *active,
            }),
            _ => {}
        }
    }

    fn truncate(&mut self, t: u64, response: Option<usize>, audio_end_ms: u64) {
        if let Some(index) = response {
            self.responses[index].truncated_at_ms = Some(audio_end_ms);
            self.responses[index].interrupted = true;
        }
        self.marks.push(Mark {
            t,
            kind: MarkKind::Truncate { audio_end_ms },
            response,
        });
    }

    fn client_event(&mut self, t: u64, kind: &str, event: &Value, active: Option<usize>) {
        match kind {
            "response.cancel" => {
                let response = self
                    .response_by_id(str_at(event, &["response_id"]))
                    .or(active)
                    .or_else(|| self.responses.len().checked_sub(1));
                self.marks.push(Mark {
                    t,
                    kind: MarkKind::Cancel,
                    response,
                });
            }
            "conversation.item.truncate" => {
                let response = self.response_of_item(str_at(event, &["item_id"]));
                let audio_end_ms = u64_at(event, &["audio_end_ms"]).unwrap_or_default();
                self.truncate(t, response, audio_end_ms);
            }
            "conversation.item.create" if str_at(event, &["item", "role"]) == Some("user") => {
                let text: String = event
                    .pointer("/item/content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|part| str_at(part, &["text"]))
                    .collect();
                if !text.is_empty() {
                    self.texts.push(UserText { t, text });
                }
            }
            _ => {}
        }
    }

    /// Each response answers the latest user input before it that no earlier response
    /// answered: speech that had stopped, or a typed message.
    fn pair_turns(&mut self) {
        let mut claimed_speech = vec![false; self.speech.len()];
        let mut claimed_text = vec![false; self.texts.len()];
        for (index, response) in self.responses.iter().enumerate() {
            let speech = self
                .speech
                .iter()
                .enumerate()
                .filter(|(i, s)| {
                    !claimed_speech[*i] && s.end_t.is_some_and(|e| e <= response.created_t)
                })
                .map(|(i, s)| (s.end_t.unwrap_or_default(), Input::Speech(i)))
                .next_back();
            let text = self
                .texts
                .iter()
                .enumerate()
                .filter(|(i, u)| !claimed_text[*i] && u.t <= response.created_t)
                .map(|(i, u)| (u.t, Input::Text(i)))
                .next_back();
            let input = match (speech, text) {
                (Some(s), Some(t)) => Some(if s.0 >= t.0 { s } else { t }),
                (s, t) => s.or(t),
            };
            // Inputs older than the one answered are not answered later either.
            if let Some((at, _)) = input {
                for (claimed, speech) in claimed_speech.iter_mut().zip(&self.speech) {
                    *claimed |= speech.end_t.is_some_and(|end| end <= at);
                }
                for (claimed, text) in claimed_text.iter_mut().zip(&self.texts) {
                    *claimed |= text.t <= at;
                }
            }
            let latency_ms = match (input, response.first_delta_t) {
                (Some((end, _)), Some(first)) => Some(first.saturating_sub(end)),
                _ => None,
            };
            self.turns.push(Turn {
                input: input.map(|(_, input)| input),
                response: index,
                latency_ms,
                barge_in: self
                    .marks
                    .iter()
                    .any(|m| m.kind == MarkKind::BargeIn && m.response == Some(index)),
            });
        }
    }

    /// How many times the user barged in.
    pub(crate) fn barge_ins(&self) -> usize {
        self.marks
            .iter()
            .filter(|m| m.kind == MarkKind::BargeIn)
            .count()
    }

    /// The median turn latency.
    pub(crate) fn median_latency_ms(&self) -> Option<u64> {
        let mut latencies: Vec<u64> = self.turns.iter().filter_map(|t| t.latency_ms).collect();
        latencies.sort_unstable();
        latencies.get(latencies.len() / 2).copied()
    }

    /// What the user said or typed in `input`.
    pub(crate) fn input_text(&self, input: Option<Input>) -> Option<&str> {
        match input? {
            Input::Speech(i) => self.speech[i].transcript.as_deref(),
            Input::Text(i) => Some(&self.texts[i].text),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A hand-made session: a spoken turn answered in 420 ms, a second spoken turn that
    /// barges in 300 ms after its answer started, and a typed turn.
    pub(crate) fn session() -> Vec<reelthyme_sim::Entry> {
        let rows = [
            (
                0,
                true,
                r#"{"type":"session.created","event_id":"e0","session":{}}"#,
            ),
            (
                1000,
                true,
                r#"{"type":"input_audio_buffer.speech_started","event_id":"e1","audio_start_ms":900,"item_id":"u1"}"#,
            ),
            (
                1000,
                false,
                r#"{"type":"input_audio_buffer.append","audio":"AAAA"}"#,
            ),
            (
                3000,
                true,
                r#"{"type":"input_audio_buffer.speech_stopped","event_id":"e2","audio_end_ms":2950,"item_id":"u1"}"#,
            ),
            (
                3050,
                true,
                r#"{"type":"response.created","event_id":"e3","response":{"id":"r1","status":"in_progress"}}"#,
            ),
            (
                3100,
                true,
                r#"{"type":"response.output_item.added","event_id":"e4","response_id":"r1","output_index":0,"item":{"id":"a1","type":"message","role":"assistant","content":[]}}"#,
            ),
            (
                3400,
                true,
                r#"{"type":"conversation.item.input_audio_transcription.completed","event_id":"e5","item_id":"u1","content_index":0,"transcript":"What's the weather in Paris?"}"#,
            ),
            (
                3420,
                true,
                r#"{"type":"response.output_audio.delta","event_id":"e6","response_id":"r1","item_id":"a1","output_index":0,"content_index":0,"delta":"AAAA"}"#,
            ),
            (
                3430,
                true,
                r#"{"type":"response.output_audio_transcript.delta","event_id":"e7","response_id":"r1","item_id":"a1","output_index":0,"content_index":0,"delta":"Sunny, "}"#,
            ),
            (
                4000,
                true,
                r#"{"type":"response.output_audio.delta","event_id":"e8","response_id":"r1","item_id":"a1","output_index":0,"content_index":0,"delta":"AAAA"}"#,
            ),
            (
                4100,
                true,
                r#"{"type":"response.done","event_id":"e9","response":{"id":"r1","status":"completed","output":[{"type":"message","role":"assistant","content":[{"type":"output_audio","transcript":"Sunny, 22 degrees."}]}]}}"#,
            ),
            (
                6000,
                true,
                r#"{"type":"input_audio_buffer.speech_started","event_id":"e10","audio_start_ms":5900,"item_id":"u2"}"#,
            ),
            (
                7000,
                true,
                r#"{"type":"input_audio_buffer.speech_stopped","event_id":"e11","audio_end_ms":6950,"item_id":"u2"}"#,
            ),
            (
                7100,
                true,
                r#"{"type":"response.created","event_id":"e12","response":{"id":"r2"}}"#,
            ),
            (
                7110,
                true,
                r#"{"type":"response.output_item.added","event_id":"e13","response_id":"r2","output_index":0,"item":{"id":"a2","type":"message","role":"assistant","content":[]}}"#,
            ),
            (
                7600,
                true,
                r#"{"type":"response.output_audio.delta","event_id":"e14","response_id":"r2","item_id":"a2","output_index":0,"content_index":0,"delta":"AAAA"}"#,
            ),
            (
                7700,
                true,
                r#"{"type":"response.output_audio_transcript.delta","event_id":"e15","response_id":"r2","item_id":"a2","output_index":0,"content_index":0,"delta":"Once upon a time"}"#,
            ),
            (
                7900,
                true,
                r#"{"type":"input_audio_buffer.speech_started","event_id":"e16","audio_start_ms":7800,"item_id":"u3"}"#,
            ),
            (7910, false, r#"{"type":"response.cancel"}"#),
            (
                7920,
                false,
                r#"{"type":"conversation.item.truncate","item_id":"a2","content_index":0,"audio_end_ms":300}"#,
            ),
            (
                7950,
                true,
                r#"{"type":"conversation.item.truncated","event_id":"e17","item_id":"a2","content_index":0,"audio_end_ms":300}"#,
            ),
            (
                7960,
                true,
                r#"{"type":"response.done","event_id":"e18","response":{"id":"r2","status":"cancelled"}}"#,
            ),
            (
                8500,
                true,
                r#"{"type":"input_audio_buffer.speech_stopped","event_id":"e19","audio_end_ms":8400,"item_id":"u3"}"#,
            ),
            (
                8800,
                true,
                r#"{"type":"conversation.item.input_audio_transcription.completed","event_id":"e20","item_id":"u3","content_index":0,"transcript":"Stop, thanks."}"#,
            ),
            (
                9000,
                false,
                r#"{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":"Bye!"}]}}"#,
            ),
            (9001, false, r#"{"type":"response.create"}"#),
            (
                9010,
                true,
                r#"{"type":"response.created","event_id":"e21","response":{"id":"r3"}}"#,
            ),
            (
                9260,
                true,
                r#"{"type":"response.output_text.delta","event_id":"e22","response_id":"r3","item_id":"a3","output_index":0,"content_index":0,"delta":"Goodbye."}"#,
            ),
            (
                9300,
                true,
                r#"{"type":"response.done","event_id":"e23","response":{"id":"r3","status":"completed"}}"#,
            ),
        ];
        rows.iter()
            .map(|(t_ms, from_server, event)| reelthyme_sim::Entry {
                t_ms: *t_ms,
                from_server: *from_server,
                event: serde_json::from_str(event).unwrap(),
            })
            .collect()
    }

    #[test]
    fn the_numbers_of_a_hand_made_session() {
        let timeline = Timeline::from_entries(&session());
        assert_eq!(timeline.end_t, 9300);
        assert_eq!(timeline.speech.len(), 3);
        assert_eq!(
            (timeline.speech[0].start_t, timeline.speech[0].end_t),
            (1000, Some(3000))
        );
        assert_eq!(timeline.speech[0].audio_end_ms, Some(2950));
        let r1 = &timeline.responses[0];
        assert_eq!(
            (r1.created_t, r1.done_t, r1.audio),
            (3050, Some(4100), Some((3420, 4000)))
        );
        assert_eq!(r1.text, "Sunny, 22 degrees.");
        assert!(!r1.interrupted);
        let r2 = &timeline.responses[1];
        assert!(r2.interrupted);
        assert_eq!(r2.status.as_deref(), Some("cancelled"));
        assert_eq!(r2.truncated_at_ms, Some(300));
        // Three turns: speech → r1 in 420 ms, speech → r2 in 600 ms (barged in), text → r3.
        let turns: Vec<(Option<Input>, Option<u64>, bool)> = timeline
            .turns
            .iter()
            .map(|t| (t.input, t.latency_ms, t.barge_in))
            .collect();
        assert_eq!(
            turns,
            [
                (Some(Input::Speech(0)), Some(420), false),
                (Some(Input::Speech(1)), Some(600), true),
                (Some(Input::Text(0)), Some(260), false),
            ]
        );
        assert_eq!(
            timeline.input_text(timeline.turns[0].input),
            Some("What's the weather in Paris?")
        );
        assert_eq!(timeline.median_latency_ms(), Some(420));
        let marks: Vec<(u64, &MarkKind)> = timeline.marks.iter().map(|m| (m.t, &m.kind)).collect();
        assert_eq!(
            marks,
            [
                (7900, &MarkKind::BargeIn),
                (7910, &MarkKind::Cancel),
                (7920, &MarkKind::Truncate { audio_end_ms: 300 }),
            ]
        );
        // The interrupting speech was never answered: it is no turn.
        assert!(
            timeline
                .turns
                .iter()
                .all(|t| t.input != Some(Input::Speech(2)))
        );
    }
}
