//! The conversation: its items (audio kept apart), created, retrieved, deleted and
//! truncated as the client asks, and capped as the service's context truncation caps them.

use reelthyme_schema::{Base64Audio, Item};
use serde_json::{Value, json};

use super::{Engine, codec, sane_rate, set};

/// Conversation items kept; past it the oldest go, as the service's context truncation
/// drops them.
pub(crate) const MAX_ITEMS: usize = 1024;
/// Bytes of conversation (items as JSON, and their audio) kept, likewise.
const MAX_CONVERSATION_BYTES: usize = 64 << 20;

/// A conversation item with its audio, kept apart so events can omit it.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub(super) item: Value,
    pub(super) audio: Vec<i16>,
    pub(super) rate: u32,
    /// The size of `item` as JSON, for the conversation's cap.
    pub(super) json_bytes: usize,
}

impl Stored {
    pub(super) fn new(item: Value, audio: Vec<i16>, rate: u32) -> Self {
        let json_bytes = item.to_string().len();
        Self {
            item,
            audio,
            rate: sane_rate(rate),
            json_bytes,
        }
    }

    pub(super) fn id(&self) -> &str {
        self.item
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub(super) fn bytes(&self) -> usize {
        self.json_bytes + self.audio.len() * 2
    }

    pub(super) fn set_item(&mut self, item: Value) {
        self.json_bytes = item.to_string().len();
        self.item = item;
    }
}

impl Engine {
    /// A fresh item id: not in the conversation, not announced by `speech_started`.
    pub(super) fn new_item_id(&mut self) -> String {
        loop {
            let id = self.ids.next("item");
            if self.find(&id).is_none() && self.speech_item.as_deref() != Some(id.as_str()) {
                return id;
            }
        }
    }

    pub(super) fn last_item_id(&self) -> Value {
        self.items
            .last()
            .map_or(Value::Null, |s| Value::String(s.id().to_owned()))
    }

    pub(super) fn find(&self, item_id: &str) -> Option<usize> {
        self.items.iter().position(|s| s.id() == item_id)
    }

    pub(super) fn item_create(
        &mut self,
        item: Item,
        previous: Option<Option<String>>,
        event_id: Option<&str>,
    ) {
        if matches!(item, Item::Reference(_)) {
            let message = "item_reference can only be used in response.create input.";
            return self.error(Some("invalid_value"), message, Some("item.type"), event_id);
        }
        let index = match previous.flatten() {
            None => self.items.len(),
            Some(id) if id == "root" => 0,
            Some(id) => match self.find(&id) {
                Some(index) => index + 1,
                None => {
                    let message = format!("Previous item with item_id not found: {id}");
                    return self.error(
                        Some("item_not_found"),
                        &message,
                        Some("previous_item_id"),
                        event_id,
                    );
                }
            },
        };
        let mut value = serde_json::to_value(&item).unwrap_or_default();
        if value
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|id| self.find(id).is_some() || self.speech_item.as_deref() == Some(id))
        {
            let message = format!("Item with id already exists: {}", value["id"]);
            return self.error(
                Some("duplicate_item_id"),
                &message,
                Some("item.id"),
                event_id,
            );
        }
        if value.get("id").is_none() {
            let id = self.new_item_id();
            set(&mut value, "id", Value::String(id));
        }
        // MCP items (an approval's answer) have neither `object` nor `status`.
        let mcp = value["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("mcp_"));
        if !mcp {
            set(&mut value, "object", Value::String("realtime.item".into()));
        }
        if value.get("status").is_none() && !mcp {
            set(&mut value, "status", Value::String("completed".into()));
        }
        // Audio is kept apart and left out of the events, as the API does.
        let mut audio = Vec::new();
        if let Some(Value::Array(parts)) = value.get_mut("content") {
            for part in parts {
                if let Some(text) = part.get("audio").and_then(Value::as_str) {
                    let decoded = Base64Audio::from_base64(text)
                        .decode_pcm16()
                        .unwrap_or_default();
                    audio.extend(decoded);
                    part.as_object_mut().map(|p| p.remove("audio"));
                    if part.get("transcript").is_none() {
                        set(part, "transcript", Value::Null);
                    }
                }
            }
        }
        let previous = if index == 0 {
            Value::Null
        } else {
            Value::String(self.items[index - 1].id().to_owned())
        };
        self.items.insert(
            index,
            Stored::new(value.clone(), audio, reelthyme_schema::PCM_SAMPLE_RATE),
        );
        self.prune_conversation();
        self.emit(
            "conversation.item.added",
            json!({"previous_item_id": previous, "item": value}),
        );
        self.emit(
            "conversation.item.done",
            json!({"previous_item_id": previous, "item": value}),
        );
    }

    pub(super) fn item_retrieve(&mut self, item_id: &str, event_id: Option<&str>) {
        let Some(index) = self.find(item_id) else {
            let message = format!("Item with item_id not found: {item_id}");
            return self.error(
                Some("item_retrieve_invalid_item_id"),
                &message,
                Some("item_id"),
                event_id,
            );
        };
        let stored = &self.items[index];
        let mut item = stored.item.clone();
        if !stored.audio.is_empty() {
            // Audio stored at 24 kHz is PCM16 (the client's own, or a PCM answer); G.711
            // answers are stored at 8 kHz and given back in the session's G.711 format.
            let audio = if stored.rate == reelthyme_schema::PCM_SAMPLE_RATE {
                Base64Audio::from_pcm16(&stored.audio)
            } else {
                codec::encode(&self.output_format(), &stored.audio)
            };
            if let Some(part) = item
                .get_mut("content")
                .and_then(Value::as_array_mut)
                .and_then(|parts| parts.first_mut())
            {
                set(part, "audio", Value::String(audio.into_string()));
            }
        }
        self.emit("conversation.item.retrieved", json!({ "item": item }));
    }

    pub(super) fn item_delete(&mut self, item_id: &str, event_id: Option<&str>) {
        let Some(index) = self.find(item_id) else {
            let message = format!("Item with item_id not found: {item_id}");
            return self.error(
                Some("item_delete_invalid_item_id"),
                &message,
                Some("item_id"),
                event_id,
            );
        };
        self.items.remove(index);
        self.emit("conversation.item.deleted", json!({ "item_id": item_id }));
    }

    pub(super) fn item_truncate(
        &mut self,
        item_id: &str,
        content_index: u32,
        audio_end_ms: u64,
        event_id: Option<&str>,
    ) {
        let Some(index) = self.find(item_id) else {
            let message = format!("Item with item_id not found: {item_id}");
            return self.error(
                Some("item_truncate_invalid_item_id"),
                &message,
                Some("item_id"),
                event_id,
            );
        };
        // Audio still being generated counts as the item's audio so far.
        let live: Option<Vec<i16>> = self
            .responses
            .iter()
            .filter_map(|r| r.open.as_ref())
            .find(|open| open.id == item_id)
            .map(|open| open.audio.clone());
        let stored = &mut self.items[index];
        let is_assistant_audio = stored.item["role"] == "assistant"
            && stored.item["content"]
                .get(content_index as usize)
                .is_some_and(|p| matches!(p["type"].as_str(), Some("output_audio" | "audio")));
        if !is_assistant_audio {
            let message = "Only an assistant message's audio content can be truncated.";
            return self.error(
                Some("invalid_value"),
                message,
                Some("content_index"),
                event_id,
            );
        }
        let audio = live.unwrap_or_else(|| stored.audio.clone());
        let rate = u64::from(sane_rate(stored.rate));
        let duration_ms = (audio.len() as u64).saturating_mul(1000) / rate;
        if audio_end_ms > duration_ms {
            let message = format!(
                "Audio content of {duration_ms}ms is shorter than the requested audio_end_ms of {audio_end_ms}ms."
            );
            return self.error(
                Some("invalid_value"),
                &message,
                Some("audio_end_ms"),
                event_id,
            );
        }
        let keep = usize::try_from(audio_end_ms.saturating_mul(rate) / 1000).unwrap_or(usize::MAX);
        stored.audio = audio;
        stored.audio.truncate(keep);
        // The model must forget what the user did not hear: the transcript goes.
        let mut item = stored.item.clone();
        if let Some(part) = item
            .get_mut("content")
            .and_then(Value::as_array_mut)
            .and_then(|parts| parts.get_mut(content_index as usize))
        {
            set(part, "transcript", Value::String(String::new()));
        }
        stored.set_item(item);
        self.emit(
            "conversation.item.truncated",
            json!({"item_id": item_id, "content_index": content_index, "audio_end_ms": audio_end_ms}),
        );
    }

    pub(super) fn prune_conversation(&mut self) {
        let mut bytes: usize = self.items.iter().map(Stored::bytes).sum();
        let mut drop = 0;
        while self.items.len() - drop > MAX_ITEMS
            || (bytes > MAX_CONVERSATION_BYTES && self.items.len() - drop > 1)
        {
            bytes -= self.items[drop].bytes();
            drop += 1;
        }
        if drop > 0 {
            self.items.drain(..drop);
        }
    }
}
