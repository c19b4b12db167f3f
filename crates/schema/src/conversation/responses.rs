//! The response lifecycle (`response.created`, `response.done`), and the client's
//! `response.create` and `response.cancel` requests: recorded, matched to responses, and
//! rejected by `error`s.

use super::audio::without_audio;
use super::response_state::Stored;
use super::util::push_bounded;
use super::{
    Applied, Conversation, Finality, Id, Ignored, MAX_RESPONSES, ResponseRequest, ResponseState,
};
use crate::client::{ResponseCancel, ResponseCreate};
use crate::response::Response;
use crate::server::ErrorEvent;
use std::sync::Arc;

impl Conversation {
    // `response.create`: waits for a `response.created` to claim it.
    pub(super) fn record_response_request(&mut self, create: &ResponseCreate) {
        let params = create.response.as_ref().map(|p| {
            let mut p = p.clone();
            if let Some(input) = &mut p.input {
                for item in input.iter_mut() {
                    *item = without_audio(item).0;
                }
            }
            p
        });
        push_bounded(
            &mut self.pending_responses,
            ResponseRequest {
                event_id: create.event_id.clone(),
                params,
            },
            &mut self.dropped_requests,
        );
    }

    // `response.cancel`.
    pub(super) fn record_cancel(&mut self, cancel: &ResponseCancel) {
        let id = cancel.response_id.as_deref().or(self.active.as_deref());
        if let Some(response) = id.and_then(|id| self.responses.get_mut(id)) {
            response.cancel_requested = true;
        }
    }

    pub(super) fn response_created(&mut self, response: &Response) -> Applied {
        let Some(id) = response.id.as_deref() else {
            return Applied::Ignored(Ignored::MissingId);
        };
        let stored = without_output(response);
        if let Some(state) = self.responses.get_mut(id) {
            // A repeated `response.created`: newer facts, same request.
            if !state.done {
                state.response = Stored::live(stored);
            }
            return Applied::Unchanged;
        }
        let request = self.claim_response_request(response);
        let id: Id = Arc::from(id);
        self.active = Some(id.clone());
        self.insert_response(ResponseState {
            id,
            response: Stored::live(stored),
            request: request.map(Box::new),
            output: Vec::new(),
            done: false,
            cancel_requested: false,
        });
        Applied::ResponseStarted
    }

    fn claim_response_request(&mut self, response: &Response) -> Option<ResponseRequest> {
        let metadata = response.metadata.as_ref().and_then(Option::as_ref);
        let at = metadata
            .and_then(|m| {
                self.pending_responses.iter().position(|r| {
                    r.params
                        .as_ref()
                        .and_then(|p| p.metadata.as_ref())
                        .and_then(Option::as_ref)
                        == Some(m)
                })
            })
            .unwrap_or(0);
        self.pending_responses.remove(at)
    }

    pub(super) fn response_done(&mut self, response: &Response) -> Applied {
        let Some(id) = response.id.as_deref() else {
            return Applied::Ignored(Ignored::MissingId);
        };
        if !self.responses.contains_key(id) {
            let request = self.claim_response_request(response);
            self.insert_response(ResponseState {
                id: Arc::from(id),
                response: Stored::live(Response::default()),
                request: request.map(Box::new),
                output: Vec::new(),
                done: true,
                cancel_requested: false,
            });
        }
        let Some(state) = self.responses.get_mut(id) else {
            return Applied::Ignored(Ignored::Limit);
        };
        let mut done = without_output(response);
        // A `response.done` without the audio config keeps `response.created`'s: the
        // format a response's audio was in does not change when it ends.
        if done.audio.is_none() {
            done.audio.clone_from(&state.response.get().audio);
        }
        state.response = Stored::done(done);
        state.done = true;
        // The final output items are the server's full versions.
        if let Some(output) = &response.output {
            for (index, item) in output.iter().enumerate() {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                self.output_item(id, index, item, Finality::Done);
            }
        }
        if self.active.as_deref() == Some(id) {
            self.active = self
                .response_order
                .iter()
                .rev()
                .find(|r| self.responses.get(*r).is_some_and(|s| !s.done))
                .cloned();
        }
        Applied::ResponseDone
    }

    fn insert_response(&mut self, state: ResponseState) {
        if self.responses.len() >= MAX_RESPONSES
            && let Some(old) = self.response_order.pop_front()
        {
            self.responses.remove(&old);
            self.evicted += 1;
            if self.active.as_ref() == Some(&old) {
                self.active = None;
            }
        }
        self.response_order.push_back(state.id.clone());
        self.responses.insert(state.id.clone(), state);
    }

    // `error`: removes the waiting request it names, if any.
    pub(super) fn error(&mut self, error: &ErrorEvent) -> Applied {
        let Some(id) = error.error.event_id() else {
            return Applied::Error;
        };
        let before = self.pending_responses.len() + self.pending_items.len();
        self.pending_responses
            .retain(|r| r.event_id.as_deref() != Some(id));
        self.pending_items
            .retain(|r| r.event_id.as_deref() != Some(id));
        let mut rejected = self.pending_responses.len() + self.pending_items.len() < before;
        // A response that claimed the refused request by position (a VAD
        // response that won the race) did not come from it.
        for response in self.responses.values_mut() {
            if response
                .request
                .as_ref()
                .and_then(|r| r.event_id.as_deref())
                == Some(id)
            {
                response.request = None;
                rejected = true;
            }
        }
        if rejected {
            Applied::RequestRejected
        } else {
            Applied::Error
        }
    }
}

// The response without its output items (kept as items) and their audio.
fn without_output(response: &Response) -> Response {
    Response {
        id: response.id.clone(),
        object: response.object.clone(),
        status: response.status.clone(),
        status_details: response.status_details.clone(),
        output: None,
        conversation_id: response.conversation_id.clone(),
        output_modalities: response.output_modalities.clone(),
        max_output_tokens: response.max_output_tokens,
        audio: response.audio.clone(),
        usage: response.usage.clone(),
        metadata: response.metadata.clone(),
        extra: response.extra.clone(),
    }
}
