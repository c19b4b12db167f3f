//! Performing a response's steps: the events each produces, the item it builds (stored in
//! the conversation unless out-of-band), and the `response.done` that ends it.

use reelthyme_audio::codec::rate_of;
use serde_json::{Value, json};

use super::{OpenItem, PartKind, Step};
use crate::engine::{Engine, Stored, set, usage};

impl Engine {
    pub(super) fn perform(&mut self, index: usize, step: Step) -> bool {
        let response_id = self.responses[index].id.clone();
        let in_conversation = self.responses[index].in_conversation;
        match step {
            Step::Created => {
                let response = self.responses[index].response.clone();
                self.emit("response.created", json!({ "response": response }));
            }
            Step::MessageAdded | Step::FunctionAdded { .. } | Step::McpApprovalAdded { .. } => {
                let id = self.ids.next("item");
                let item = match step {
                    // Complete as it is added, and without `object` or `status` (the
                    // service's MCP items have neither).
                    Step::McpApprovalAdded {
                        server_label,
                        name,
                        arguments,
                    } => {
                        json!({"id": id, "type": "mcp_approval_request",
                        "server_label": server_label, "name": name, "arguments": arguments})
                    }
                    Step::FunctionAdded { call_id, name } => {
                        json!({"id": id, "object": "realtime.item",
                        "type": "function_call", "status": "in_progress", "name": name, "call_id": call_id,
                        "arguments": ""})
                    }
                    _ => {
                        json!({"id": id, "object": "realtime.item", "type": "message", "status": "in_progress",
                        "role": "assistant", "content": []})
                    }
                };
                let output_index = self.responses[index].output.len();
                self.emit(
                    "response.output_item.added",
                    json!({"response_id": response_id, "output_index": output_index, "item": item}),
                );
                if in_conversation {
                    let previous = self.last_item_id();
                    let rate = rate_of(Some(&self.responses[index].output_format));
                    self.items.push(Stored::new(item.clone(), Vec::new(), rate));
                    self.prune_conversation();
                    self.emit(
                        "conversation.item.added",
                        json!({"previous_item_id": previous, "item": item}),
                    );
                }
                self.responses[index].open = Some(OpenItem {
                    id,
                    output_index,
                    item,
                    part: None,
                    text: String::new(),
                    audio: Vec::new(),
                    has_audio: false,
                });
            }
            Step::PartAdded(kind) => {
                let part = match kind {
                    PartKind::Text => json!({"type": "text", "text": ""}),
                    PartKind::Audio => json!({"type": "audio", "transcript": ""}),
                };
                let Some(open) = self.responses[index].open.as_mut() else {
                    return false;
                };
                open.part = Some(kind);
                let (item_id, output_index) = (open.id.clone(), open.output_index);
                self.emit(
                    "response.content_part.added",
                    json!({"response_id": response_id, "item_id": item_id, "output_index": output_index,
                        "content_index": 0, "part": part}),
                );
            }
            Step::TextDelta(delta) => {
                let Some(open) = self.responses[index].open.as_mut() else {
                    return false;
                };
                open.text.push_str(&delta);
                let kind = if open.part == Some(PartKind::Audio) {
                    "response.output_audio_transcript.delta"
                } else {
                    "response.output_text.delta"
                };
                let (item_id, output_index) = (open.id.clone(), open.output_index);
                self.emit_delta(
                    kind,
                    json!({"response_id": response_id, "item_id": item_id, "output_index": output_index,
                        "content_index": 0, "delta": delta}),
                );
            }
            Step::ArgsDelta(delta) => {
                let Some(open) = self.responses[index].open.as_mut() else {
                    return false;
                };
                open.text.push_str(&delta);
                let (item_id, output_index) = (open.id.clone(), open.output_index);
                let call_id = open.item["call_id"].clone();
                self.emit_delta(
                    "response.function_call_arguments.delta",
                    json!({"response_id": response_id, "item_id": item_id, "output_index": output_index,
                        "call_id": call_id, "delta": delta}),
                );
            }
            Step::AudioDelta(range) => {
                let samples = self.responses[index]
                    .audio
                    .as_ref()
                    .map(|source| source.samples(range))
                    .unwrap_or_default();
                let Some(open) = self.responses[index].open.as_mut() else {
                    return false;
                };
                if in_conversation {
                    open.audio.extend_from_slice(&samples);
                }
                open.has_audio = true;
                let (item_id, output_index) = (open.id.clone(), open.output_index);
                self.speak(index, item_id, output_index, samples);
            }
            Step::PartDone => self.close_part(index),
            Step::ItemDone => self.close_item(index, "completed"),
            Step::Done => {
                self.finish(index, "completed", None);
                return true;
            }
        }
        false
    }

    fn close_part(&mut self, index: usize) {
        let response_id = self.responses[index].id.clone();
        let Some(open) = self.responses[index].open.as_mut() else {
            return;
        };
        let Some(kind) = open.part.take() else { return };
        let (item_id, output_index, text) = (open.id.clone(), open.output_index, open.text.clone());
        let common = json!({"response_id": response_id, "item_id": item_id, "output_index": output_index, "content_index": 0});
        let part = match kind {
            PartKind::Text => {
                self.emit("response.output_text.done", with(&common, "text", &text));
                json!({"type": "text", "text": text})
            }
            PartKind::Audio => {
                self.emit("response.output_audio.done", common.clone());
                self.emit(
                    "response.output_audio_transcript.done",
                    with(&common, "transcript", &text),
                );
                json!({"type": "audio", "transcript": text})
            }
        };
        self.emit(
            "response.content_part.done",
            with_value(&common, "part", part),
        );
    }

    fn close_item(&mut self, index: usize, status: &str) {
        let response_id = self.responses[index].id.clone();
        let in_conversation = self.responses[index].in_conversation;
        let Some(open) = self.responses[index].open.take() else {
            return;
        };
        let mut item = open.item;
        if item["type"] != "mcp_approval_request" {
            set(&mut item, "status", Value::String(status.to_owned()));
        }
        if item["type"] == "function_call" {
            set(&mut item, "arguments", Value::String(open.text.clone()));
            self.emit(
                "response.function_call_arguments.done",
                json!({"response_id": response_id, "item_id": open.id, "output_index": open.output_index,
                    "call_id": item["call_id"], "name": item["name"], "arguments": open.text}),
            );
        } else if !open.has_audio && !open.text.is_empty() {
            set(
                &mut item,
                "content",
                json!([{"type": "output_text", "text": open.text}]),
            );
        } else if open.has_audio || item["content"].as_array().is_some_and(Vec::is_empty) {
            set(
                &mut item,
                "content",
                json!([{"type": "output_audio", "transcript": open.text}]),
            );
        }
        if in_conversation && let Some(position) = self.find(&open.id) {
            let previous = if position == 0 {
                Value::Null
            } else {
                Value::String(self.items[position - 1].id().to_owned())
            };
            self.items[position].audio = open.audio;
            self.items[position].set_item(item.clone());
            self.emit(
                "conversation.item.done",
                json!({"previous_item_id": previous, "item": item}),
            );
        }
        self.emit(
            "response.output_item.done",
            json!({"response_id": response_id, "output_index": open.output_index, "item": item}),
        );
        self.responses[index].output.push(item);
    }

    /// Ends a response early: open parts and items are closed, then `response.done`.
    pub(in crate::engine) fn cancel(&mut self, index: usize, reason: &str) {
        self.close_part(index);
        self.close_item(index, "incomplete");
        self.finish(index, "cancelled", Some(reason));
    }

    fn finish(&mut self, index: usize, status: &str, reason: Option<&str>) {
        let active = self.responses.remove(index);
        let (response_id, spoken) = (active.id.clone(), active.audio_samples);
        let mut response = active.response;
        let (status, details) = match (&active.failure, reason) {
            (Some((code, message)), _) => (
                "failed",
                json!({"type": "failed", "error": {"type": "server_error", "code": code, "message": message}}),
            ),
            (None, Some(reason)) => (status, json!({"type": status, "reason": reason})),
            (None, None) if active.truncated => (
                "incomplete",
                json!({"type": "incomplete", "reason": "max_output_tokens"}),
            ),
            (None, None) => (status, Value::Null),
        };
        let text_tokens = active
            .output
            .iter()
            .map(|item| {
                let text = item["content"][0]["text"]
                    .as_str()
                    .or(item["content"][0]["transcript"].as_str())
                    .or(item["arguments"].as_str())
                    .unwrap_or_default();
                usage::text_tokens(text)
            })
            .sum::<u64>();
        // The audio the response spoke, at its own rate (8 kHz for G.711).
        let audio_tokens =
            usage::audio_tokens(active.audio_samples, rate_of(Some(&active.output_format)));
        let output_tokens = text_tokens.saturating_add(audio_tokens);
        set(&mut response, "status", Value::String(status.to_owned()));
        set(&mut response, "status_details", details);
        set(&mut response, "output", Value::Array(active.output));
        set(
            &mut response,
            "usage",
            usage::response(active.input_tokens, text_tokens, audio_tokens),
        );
        self.emit("response.done", json!({ "response": response }));
        self.audio_finished(&response_id, spoken, reason == Some("turn_detected"));
        self.emit(
            "rate_limits.updated",
            json!({"rate_limits": usage::rate_limits(output_tokens)}),
        );
    }
}

fn with(common: &Value, key: &str, text: &str) -> Value {
    with_value(common, key, Value::String(text.to_owned()))
}

fn with_value(common: &Value, key: &str, value: Value) -> Value {
    let mut out = common.clone();
    set(&mut out, key, value);
    out
}
