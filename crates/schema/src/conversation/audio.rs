//! Audio is counted, never stored: format sizes, base64 lengths, and audio stripped from
//! items.

use std::collections::HashMap;

use super::{Conversation, ResponseState};
use crate::item::{AudioContent, ContentPart, Item};
use crate::session::{AudioFormat, SessionConfig};

impl Conversation {
    // The bytes per second of the session's input audio (PCM16 when it says none).
    pub(super) fn input_bytes_per_second(&self) -> Option<u32> {
        self.session
            .as_ref()
            .and_then(SessionConfig::input_format)
            .map_or(Some(2 * crate::audio::PCM_SAMPLE_RATE), bytes_per_second)
    }

    // The bytes per second of a response's output audio (0 when unknown).
    pub(super) fn part_bytes_per_second(&self, response_id: &str) -> u32 {
        format_bytes_per_second(self.output_format(response_id))
    }
}

// A copy of the item without audio bytes, and the audio it held: (content index, bytes,
// bytes per second when the part names its format).
pub(super) fn without_audio(item: &Item) -> (Item, Vec<(u32, u64, Option<u32>)>) {
    let Item::Message(message) = item else {
        return (item.clone(), Vec::new());
    };
    let mut audio = Vec::new();
    let content = message
        .content
        .iter()
        .enumerate()
        .map(|(index, part)| {
            let mut strip = |a: &AudioContent| {
                if let Some(data) = &a.audio {
                    // Legacy parts name their format; GA ones leave it to the session.
                    let bps = match a.format.as_deref() {
                        Some("g711_ulaw" | "g711_alaw") => Some(8_000),
                        Some("pcm16") => Some(2 * crate::audio::PCM_SAMPLE_RATE),
                        _ => None,
                    };
                    audio.push((
                        u32::try_from(index).unwrap_or(u32::MAX),
                        base64_decoded_len(data.as_str()),
                        bps,
                    ));
                }
                AudioContent {
                    audio: None,
                    transcript: a.transcript.clone(),
                    format: a.format.clone(),
                    extra: a.extra.clone(),
                }
            };
            match part {
                ContentPart::InputAudio(a) => ContentPart::InputAudio(strip(a)),
                ContentPart::OutputAudio(a) => ContentPart::OutputAudio(strip(a)),
                ContentPart::Audio(a) => ContentPart::Audio(strip(a)),
                other => other.clone(),
            }
        })
        .collect();
    let stripped = crate::item::MessageItem {
        id: message.id.clone(),
        object: message.object.clone(),
        status: message.status.clone(),
        role: message.role.clone(),
        content,
        extra: message.extra.clone(),
    };
    (Item::Message(stripped), audio)
}

pub(super) fn is_audio(part: &ContentPart) -> bool {
    matches!(
        part,
        ContentPart::Audio(_) | ContentPart::OutputAudio(_) | ContentPart::InputAudio(_)
    )
}

// A response's output format, else the session's (free of `self`, so that the audio path
// can read it while it holds an item mutably).
pub(super) fn format_of<'a>(
    responses: &'a HashMap<super::Id, ResponseState>,
    session: Option<&'a SessionConfig>,
    response_id: &str,
) -> Option<&'a AudioFormat> {
    responses
        .get(response_id)
        .and_then(ResponseState::own_output_format)
        .or_else(|| session?.output_format())
}

// Bytes per second of output audio in `format` (PCM16 when none is known; 0 for formats
// this crate does not know).
pub(super) fn format_bytes_per_second(format: Option<&AudioFormat>) -> u32 {
    format
        .map_or(Some(2 * crate::audio::PCM_SAMPLE_RATE), bytes_per_second)
        .unwrap_or(0)
}

// Bytes per second of a format; `None` for formats this crate does not know.
pub(super) fn bytes_per_second(format: &AudioFormat) -> Option<u32> {
    match format {
        AudioFormat::Pcm(_) => format.sample_rate().map(|r| r.saturating_mul(2)),
        AudioFormat::Pcmu(_) | AudioFormat::Pcma(_) => Some(8_000),
        AudioFormat::Unknown(_) => None,
    }
}

// The length base64 text decodes to, from its length and padding, without reading it:
// O(1) on the audio path. Invalid text gives what its length suggests.
pub(super) fn base64_decoded_len(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let padding = bytes
        .iter()
        .rev()
        .take(2)
        .take_while(|&&b| b == b'=')
        .count();
    ((bytes.len() / 4 * 3).saturating_sub(padding)) as u64
}
