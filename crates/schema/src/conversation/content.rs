//! Content events: output audio and text deltas, `.done` events, content parts, and
//! function call arguments.

use super::audio::{base64_decoded_len, format_bytes_per_second, format_of, is_audio};
use super::util::floor_char_boundary;
use super::{Applied, Conversation, Ignored, MAX_TEXT_BYTES};
use crate::server::{
    AudioDelta, ContentPartEvent, FunctionCallArgumentsDelta, FunctionCallArgumentsDone, TextDelta,
};

impl Conversation {
    // `response.output_audio.delta`: the hot path.
    pub(super) fn audio_delta(&mut self, delta: &AudioDelta) -> Applied {
        let bytes = base64_decoded_len(delta.delta.as_str());
        let Some(item) = self.items.get_mut(delta.item_id.as_str()) else {
            return Applied::Ignored(Ignored::UnknownItem);
        };
        let Some(content) = item.content_mut(delta.content_index) else {
            return Applied::Ignored(Ignored::Limit);
        };
        if content.bytes_per_second == 0 {
            // Once per part: the format does not change within a response.
            content.bytes_per_second = format_bytes_per_second(format_of(
                &self.responses,
                self.session.as_ref(),
                &delta.response_id,
            ));
        }
        content.audio_bytes = content.audio_bytes.saturating_add(bytes);
        Applied::ContentDelta
    }

    // `response.output_text.delta` and `response.output_audio_transcript.delta`.
    pub(super) fn text_delta(&mut self, delta: &TextDelta) -> Applied {
        let budget = &mut self.text_budget.0;
        let Some(item) = self.items.get_mut(delta.item_id.as_str()) else {
            return Applied::Ignored(Ignored::UnknownItem);
        };
        let Some(content) = item.content_mut(delta.content_index) else {
            return Applied::Ignored(Ignored::Limit);
        };
        if content.push_text(&delta.delta, budget) {
            Applied::ContentDelta
        } else {
            Applied::Ignored(Ignored::Limit)
        }
    }

    pub(super) fn content_done(
        &mut self,
        item_id: &str,
        index: u32,
        text: Option<&str>,
        audio: bool,
    ) -> Applied {
        let budget = &mut self.text_budget.0;
        let Some(item) = self.items.get_mut(item_id) else {
            return Applied::Ignored(Ignored::UnknownItem);
        };
        let Some(content) = item.content_mut(index) else {
            return Applied::Ignored(Ignored::Limit);
        };
        if let Some(text) = text {
            content.set_text(text, budget);
            content.text_done = true;
        }
        if audio {
            content.audio_done = true;
        }
        Applied::ContentDone
    }

    // `response.content_part.added` (`added`) and `.done`.
    pub(super) fn content_part(&mut self, part: &ContentPartEvent, added: bool) -> Applied {
        let bps = self.part_bytes_per_second(&part.response_id);
        let budget = &mut self.text_budget.0;
        let Some(item) = self.items.get_mut(part.item_id.as_str()) else {
            return Applied::Ignored(Ignored::UnknownItem);
        };
        let Some(content) = item.content_mut(part.content_index) else {
            return Applied::Ignored(Ignored::Limit);
        };
        if content.bytes_per_second == 0 && is_audio(&part.part) {
            content.bytes_per_second = bps;
        }
        if let Some(text) = part.part.text() {
            if !added {
                content.set_text(text, budget);
                content.text_done = true;
            } else if !content.has_text {
                content.set_text(text, budget);
            }
        }
        if added {
            Applied::ContentAdded
        } else {
            Applied::ContentDone
        }
    }

    // `response.function_call_arguments.delta`.
    pub(super) fn arguments_delta(&mut self, delta: &FunctionCallArgumentsDelta) -> Applied {
        let budget = &mut self.text_budget.0;
        let Some(item) = self.items.get_mut(delta.item_id.as_str()) else {
            return Applied::Ignored(Ignored::UnknownItem);
        };
        let call = item.function_call_mut();
        if call.call_id.is_none() {
            call.call_id = Some(delta.call_id.clone());
        }
        let room = MAX_TEXT_BYTES
            .saturating_sub(call.arguments.len())
            .min(*budget);
        let take = floor_char_boundary(&delta.delta, room);
        call.arguments.push_str(&delta.delta[..take]);
        *budget -= take;
        call.dropped += (delta.delta.len() - take) as u64;
        if take == delta.delta.len() {
            Applied::FunctionCallDelta
        } else {
            Applied::Ignored(Ignored::Limit)
        }
    }

    // `response.function_call_arguments.done`.
    pub(super) fn arguments_done(&mut self, done: &FunctionCallArgumentsDone) -> Applied {
        let budget = &mut self.text_budget.0;
        let Some(item) = self.items.get_mut(done.item_id.as_str()) else {
            return Applied::Ignored(Ignored::UnknownItem);
        };
        let call = item.function_call_mut();
        *budget = budget.saturating_add(call.arguments.len());
        call.arguments.clone_from(&done.arguments);
        *budget = budget.saturating_sub(call.arguments.len());
        call.call_id = Some(done.call_id.clone());
        if let Some(name) = &done.name {
            call.name = Some(name.clone());
        }
        let first = !call.reported;
        call.done = true;
        call.reported = true;
        if first {
            Applied::FunctionCallReady
        } else {
            Applied::Unchanged
        }
    }
}
