//! Planning a response: the reply, its output format and limits, and the steps that will
//! produce it, each at its time (text paced per word, audio at `speed`× real time).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use reelthyme_schema::{AudioFormat, MaxTokens, Modality, ResponseParams};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Active, AudioSource, MAX_STEP_DELAY, PartKind, Step};
use crate::config::Reply;
use crate::engine::reply::{chunk_text, split_keep_spaces};
use crate::engine::{Engine, sane_rate, truncate_chars, usage};
use crate::synth;

/// What `max_output_tokens: "inf"` allows: the service's largest number.
const DEFAULT_MAX_TOKENS: u64 = 4096;
/// The most synthesized audio one response speaks.
const MAX_REPLY_AUDIO: Duration = Duration::from_secs(5 * 60);

impl Engine {
    pub(in crate::engine) fn start_response(&mut self, params: ResponseParams, now: Instant) {
        let id = self.ids.next("resp");
        let in_conversation = params.conversation.as_deref() != Some("none");
        let modalities = params
            .output_modalities
            .clone()
            .or_else(|| self.session.output_modalities.clone())
            .unwrap_or_else(|| vec![Modality::Audio]);
        let audio_out = modalities.contains(&Modality::Audio);
        let tools = params
            .tools
            .clone()
            .or_else(|| self.session.tools.clone())
            .unwrap_or_default();
        let tool_choice = params
            .tool_choice
            .clone()
            .or_else(|| self.session.tool_choice.clone());
        let (reply, delay) = self.choose_reply(&params, &tools, tool_choice.as_ref());
        let session_output = self
            .session
            .audio
            .as_ref()
            .and_then(|a| a.output.clone())
            .unwrap_or_default();
        let params_output = params
            .audio
            .as_ref()
            .and_then(|a| a.output.clone())
            .unwrap_or_default();
        let format = params_output
            .format
            .or(session_output.format)
            .unwrap_or_else(AudioFormat::pcm);
        let voice = params_output
            .voice
            .or(session_output.voice)
            .unwrap_or_else(|| "marin".into());
        let max_tokens = params
            .max_output_tokens
            .or(self.session.max_output_tokens)
            .unwrap_or(MaxTokens::Inf(reelthyme_schema::Infinite::Inf));
        let token_limit = match max_tokens {
            MaxTokens::Limit(n) => u64::from(n).clamp(1, DEFAULT_MAX_TOKENS),
            _ => DEFAULT_MAX_TOKENS,
        };
        let metadata = params.metadata.clone().flatten();
        let response = json!({
            "object": "realtime.response", "id": id, "status": "in_progress", "status_details": null,
            "output": [], "conversation_id": if in_conversation { Value::String(self.conversation_id.clone()) } else { Value::Null },
            "output_modalities": modalities, "max_output_tokens": max_tokens,
            "audio": {"output": {"format": format, "voice": voice}},
            "usage": null, "metadata": metadata,
        });
        let input_tokens = usage::InputTokens::of(&self.items);
        let mut steps = VecDeque::new();
        let speed = self.config.speed;
        // `speed` is clamped where it is set; a step is never scheduled past a year.
        let pace = |d: Duration| {
            Duration::try_from_secs_f64(d.as_secs_f64() / speed)
                .unwrap_or(MAX_STEP_DELAY)
                .min(MAX_STEP_DELAY)
        };
        let mut at = Duration::ZERO;
        let advance = |at: Duration, d: Duration| at.saturating_add(pace(d)).min(MAX_STEP_DELAY);
        steps.push_back((at, Step::Created));
        // A scripted delay is the model's thinking time: wall-clock, not paced by `speed`.
        at = at.saturating_add(delay).min(MAX_STEP_DELAY);
        let mut failure = None;
        let mut truncated = false;
        let mut audio = None;
        // The answer's text, cut at the token limit (and, for speech, at the audio cap).
        let max_chars = usize::try_from(token_limit * usage::CHARS_PER_TOKEN).unwrap_or(usize::MAX);
        let mut limit = |text: String, max_chars: usize| -> String {
            if text.chars().count() > max_chars {
                truncated = true;
                truncate_chars(&text, max_chars).to_owned()
            } else {
                text
            }
        };
        match reply {
            Reply::Fail { code, message } => failure = Some((code, message)),
            reply @ (Reply::FunctionCall { .. } | Reply::FunctionCalls(_)) => {
                let calls = match reply {
                    Reply::FunctionCall { name, arguments } => vec![(name, arguments)],
                    Reply::FunctionCalls(calls) => calls,
                    _ => Vec::new(),
                };
                // Parallel calls: one item after the other in the same response.
                for (name, arguments) in calls {
                    let call_id = self.ids.next("call");
                    let arguments = limit(arguments, max_chars);
                    steps.push_back((at, Step::FunctionAdded { call_id, name }));
                    for piece in chunk_text(&arguments, 12) {
                        at = advance(at, Duration::from_millis(10));
                        steps.push_back((at, Step::ArgsDelta(piece)));
                    }
                    steps.push_back((at, Step::ItemDone));
                }
            }
            Reply::McpApprovalRequest {
                server_label,
                name,
                arguments,
            } => {
                let arguments = limit(arguments, max_chars);
                steps.push_back((
                    at,
                    Step::McpApprovalAdded {
                        server_label,
                        name,
                        arguments,
                    },
                ));
                steps.push_back((at, Step::ItemDone));
            }
            Reply::Text(text) | Reply::Echo(text) if !audio_out => {
                let text = limit(text, max_chars);
                steps.push_back((at, Step::MessageAdded));
                steps.push_back((at, Step::PartAdded(PartKind::Text)));
                for word in split_keep_spaces(&text) {
                    at = advance(at, Duration::from_millis(10));
                    steps.push_back((at, Step::TextDelta(word)));
                }
                steps.push_back((at, Step::PartDone));
                steps.push_back((at, Step::ItemDone));
            }
            reply => {
                let (text, echo) = match reply {
                    Reply::Echo(text) => (text, true),
                    Reply::Text(text) => (text, false),
                    // Failures and calls were planned above; any other reply is spoken as
                    // nothing rather than taking the session down.
                    _ => (String::new(), false),
                };
                let rate = sane_rate(reelthyme_audio::codec::rate_of(Some(&format)));
                let max_samples =
                    (MAX_REPLY_AUDIO.as_secs() as usize).saturating_mul(rate as usize);
                // 65 ms of speech per character: the audio cap is a character cap too.
                let spoken_chars = (MAX_REPLY_AUDIO.as_millis() / 65) as usize;
                let text = limit(text, max_chars.min(spoken_chars));
                let echoed = echo
                    .then(|| {
                        self.items
                            .iter()
                            .rev()
                            .find(|s| !s.audio.is_empty() && s.item["role"] == "user")
                            .map(|s| Arc::<[i16]>::from(&s.audio[..s.audio.len().min(max_samples)]))
                    })
                    .flatten();
                let (source, total) = match echoed {
                    Some(samples) => {
                        let total = samples.len();
                        (AudioSource::Echo(samples), total)
                    }
                    None => {
                        let spoken = Arc::from(text.as_str());
                        let source = match &self.config.voice {
                            Some(voice) => AudioSource::Voice(voice.clone(), spoken, rate),
                            None => AudioSource::Synth(spoken, rate),
                        };
                        (source, synth::length(&text, rate).min(max_samples))
                    }
                };
                audio = Some(source);
                steps.push_back((at, Step::MessageAdded));
                steps.push_back((at, Step::PartAdded(PartKind::Audio)));
                let chunk =
                    ((self.config.audio_chunk.as_secs_f64() * f64::from(rate)) as usize).max(1);
                let chunks = total.div_ceil(chunk);
                let words = split_keep_spaces(&text);
                let mut next_word = 0;
                for k in 0..chunks {
                    let range = k * chunk..((k + 1) * chunk).min(total);
                    let due_words = ((k + 1) * words.len()).div_ceil(chunks.max(1));
                    while next_word < due_words.min(words.len()) {
                        steps.push_back((at, Step::TextDelta(words[next_word].clone())));
                        next_word += 1;
                    }
                    let seconds = range.len() as f64 / f64::from(rate);
                    steps.push_back((at, Step::AudioDelta(range)));
                    at = advance(at, Duration::from_secs_f64(seconds));
                }
                while next_word < words.len() {
                    steps.push_back((at, Step::TextDelta(words[next_word].clone())));
                    next_word += 1;
                }
                steps.push_back((at, Step::PartDone));
                steps.push_back((at, Step::ItemDone));
            }
        }
        steps.push_back((at, Step::Done));
        self.responses.push(Active {
            id,
            in_conversation,
            started: now,
            steps,
            response,
            output: Vec::new(),
            open: None,
            failure,
            output_format: format,
            input_tokens,
            audio_samples: 0,
            audio,
            truncated,
        });
        self.release(now);
    }
}
