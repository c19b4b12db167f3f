//! Item events: the client's `conversation.item.create`, and the server's items added,
//! done, retrieved, output by a response, truncated and deleted; their order and eviction.

use super::audio::without_audio;
use super::item_state::{Kind, StoredItem, content_at};
use super::util::push_bounded;
use std::sync::Arc;

use super::{
    Applied, Conversation, Finality, Id, Ignored, ItemRequest, ItemState, MAX_CONTENT_PARTS,
    MAX_ITEMS, MAX_TOTAL_TEXT_BYTES,
};
use crate::client::ConversationItemCreate;
use crate::extra::Unknown;
use crate::item::{Item, Role};
use crate::server::{ItemDeleted, ItemEvent, ItemTruncated};

impl Conversation {
    // `conversation.item.create`: waits for the server's echo.
    pub(super) fn record_item_request(&mut self, create: &ConversationItemCreate) {
        push_bounded(
            &mut self.pending_items,
            ItemRequest {
                event_id: create.event_id.clone(),
                previous_item_id: create.previous_item_id.clone(),
                item: without_audio(&create.item).0,
            },
            &mut self.dropped_requests,
        );
    }

    // `conversation.item.added` / `.created` / `.done` / `.retrieved`.
    pub(super) fn item_event(&mut self, event: &ItemEvent, finality: Finality) -> Applied {
        let Some(id) = event.item.id() else {
            return Applied::Ignored(Ignored::MissingId);
        };
        if matches!(event.item, Item::Reference(_)) {
            return Applied::Ignored(Ignored::MissingId);
        }
        let known = self.items.contains_key(id);
        // A client request this echo answers: by id, else the oldest without an id when
        // nothing else explains a new item.
        let request = self.claim_item_request(id, &event.item, known, finality);
        let previous = match &event.previous_item_id {
            Some(previous) => Some(previous.clone()),
            None => request.and_then(|r| r.previous_item_id),
        };
        let applied = self.upsert_item(id, &event.item, finality, true, false);
        if matches!(applied, Applied::Ignored(_)) {
            return applied;
        }
        if let Some(previous) = previous {
            // The id the previous item is held under, when it is.
            let shared = previous.as_deref().map(|p| self.shared_item_id(p));
            if let Some(state) = self.items.get_mut(id) {
                state.previous_item_id = shared;
            }
            self.place(id, previous.as_deref());
        }
        if finality == Finality::Retrieved {
            Applied::ItemRetrieved
        } else {
            applied
        }
    }

    fn claim_item_request(
        &mut self,
        id: &str,
        echo: &Item,
        known: bool,
        finality: Finality,
    ) -> Option<ItemRequest> {
        if let Some(at) = self
            .pending_items
            .iter()
            .position(|r| r.item.id() == Some(id))
        {
            return self.pending_items.remove(at);
        }
        // A response's output (even one whose `conversation.item.added` comes before its
        // `response.output_item.added`), a committed buffer or a retrieval is not an echo;
        // requiring the same kind of item keeps an early assistant item from claiming a
        // user message.
        if known || finality == Finality::Retrieved || self.input.committed.iter().any(|c| c == id)
        {
            return None;
        }
        let at = self
            .pending_items
            .iter()
            .position(|r| r.item.id().is_none() && resembles(&r.item, echo))?;
        self.pending_items.remove(at)
    }

    // Moves (or, when new, places) `id` after `previous` in the order.
    fn place(&mut self, id: &str, previous: Option<&str>) {
        let Some(from) = self.order.iter().position(|o| o == id) else {
            return;
        };
        let target = match previous {
            Some("root") if !self.items.contains_key("root") => Some(0),
            Some(previous) if previous != id => self
                .order
                .iter()
                .position(|o| o == previous)
                .map(|at| at + 1),
            _ => None,
        };
        let Some(target) = target else {
            // Null, absent or unknown: a new item stays appended; a known one stays put.
            return;
        };
        if target == from || target == from + 1 {
            return;
        }
        let moved = self.order.remove(from);
        let target = if target > from { target - 1 } else { target };
        self.order.insert(target, moved);
    }

    // Adds or replaces an item from a full item; `in_conversation` says whether the event
    // puts it in the default conversation, `from_response` whether a response produced it
    // (only those report `FunctionCallReady`: a function call the client replays is not a
    // call to run).
    fn upsert_item(
        &mut self,
        id: &str,
        item: &Item,
        finality: Finality,
        in_conversation: bool,
        from_response: bool,
    ) -> Applied {
        let (stripped, mut audio) = without_audio(item);
        if !audio.is_empty() {
            // Audio in a full item is in the session's input format (user audio) or its
            // response's output format.
            let fallback = match item {
                Item::Message(m) if m.role == Role::User => self.input_bytes_per_second(),
                _ => {
                    let response = self.items.get(id).and_then(|s| s.response_id.as_deref());
                    Some(self.part_bytes_per_second(response.unwrap_or_default()))
                }
            }
            .filter(|&b| b > 0);
            for part in &mut audio {
                part.2 = part.2.or(fallback);
            }
        }
        let budget = &mut self.text_budget.0;
        let applied = if let Some(state) = self.items.get_mut(id) {
            // An `added` that arrives after the item is done is older news: the done
            // item stays.
            let stale = finality == Finality::Start && state.done;
            if in_conversation && !state.in_conversation {
                state.in_conversation = true;
                self.order.push(id.to_owned());
            }
            if !stale {
                absorb(state, &stripped, &audio, finality, budget);
                sync_function_call(state, &stripped, finality, budget);
            }
            let was_done = state.done;
            if finality != Finality::Start {
                state.done = true;
            }
            if finality == Finality::Retrieved {
                state.retrieved = true;
            }
            // Compared (and kept) after its text went into the parts: a finished item is
            // kept without the text they hold.
            let changed = !stale && (state.differs(&stripped) || state.done != was_done);
            if changed {
                state.store(stripped);
            }
            match finality {
                Finality::Done if !was_done => Applied::ItemDone,
                Finality::Retrieved => Applied::ItemRetrieved,
                _ if changed => Applied::ItemUpdated,
                _ => Applied::Unchanged,
            }
        } else {
            if self.items.len() >= MAX_ITEMS {
                self.evict_item();
            }
            let key: Id = Arc::from(id);
            let mut state = ItemState {
                id: key.clone(),
                kind: Kind::of(&stripped),
                item: StoredItem::Live(Box::new(Item::Unknown(Unknown(serde_json::Map::new())))),
                previous_item_id: None,
                response_id: None,
                output_index: None,
                in_conversation,
                done: finality != Finality::Start,
                retrieved: finality == Finality::Retrieved,
                contents: Vec::new(),
                function_call: None,
            };
            let budget = &mut self.text_budget.0;
            absorb(&mut state, &stripped, &audio, finality, budget);
            sync_function_call(&mut state, &stripped, finality, budget);
            state.store(stripped);
            self.items.insert(key.clone(), Box::new(state));
            self.arrival.push_back(key);
            if in_conversation {
                self.order.push(id.to_owned());
            }
            Applied::ItemAdded
        };
        // A function call item's `.done` completes the call if its arguments' `.done`
        // did not.
        if from_response
            && let Some(state) = self.items.get_mut(id)
            && let Some(fc) = state.function_call.as_deref_mut()
            && fc.done
            && !fc.reported
        {
            fc.reported = true;
            return Applied::FunctionCallReady;
        }
        applied
    }

    pub(super) fn output_item(
        &mut self,
        response_id: &str,
        output_index: u32,
        item: &Item,
        finality: Finality,
    ) -> Applied {
        let Some(id) = item.id() else {
            return Applied::Ignored(Ignored::MissingId);
        };
        let response = self.responses.get(response_id);
        let in_conversation = response.is_some_and(|r| !r.out_of_band());
        let applied = self.upsert_item(id, item, finality, in_conversation, true);
        if matches!(applied, Applied::Ignored(_)) {
            return applied;
        }
        let response_key = self
            .responses
            .get_key_value(response_id)
            .map_or_else(|| Arc::from(response_id), |(key, _)| key.clone());
        if let Some(state) = self.items.get_mut(id) {
            state.response_id = Some(response_key);
            state.output_index = Some(output_index);
        }
        if let Some(response) = self.responses.get_mut(response_id)
            && !response.output.iter().any(|o| o == id)
        {
            let at = response.output.len().min(output_index as usize);
            // Exactly: most responses have one output item.
            response.output.reserve_exact(1);
            response.output.insert(at, id.to_owned());
        }
        applied
    }

    // `conversation.item.truncated`.
    pub(super) fn item_truncated(&mut self, truncated: &ItemTruncated) -> Applied {
        let Some(item) = self.items.get_mut(truncated.item_id.as_str()) else {
            return Applied::Ignored(Ignored::UnknownItem);
        };
        let Some(content) = item.content_mut(truncated.content_index) else {
            return Applied::Ignored(Ignored::Limit);
        };
        content.truncated_ms = Some(truncated.audio_end_ms);
        Applied::ItemTruncated
    }

    // `conversation.item.deleted`.
    pub(super) fn item_deleted(&mut self, deleted: &ItemDeleted) -> Applied {
        if self.remove_item(&deleted.item_id) {
            Applied::ItemDeleted
        } else {
            Applied::Ignored(Ignored::UnknownItem)
        }
    }

    // `id` as held (one allocation shared), or a new one for an id not held.
    fn shared_item_id(&self, id: &str) -> Id {
        self.items
            .get_key_value(id)
            .map_or_else(|| Arc::from(id), |(key, _)| key.clone())
    }

    fn evict_item(&mut self) {
        while let Some(old) = self.arrival.pop_front() {
            if self.items.contains_key(&old) {
                self.remove_item(&old);
                self.evicted += 1;
                return;
            }
        }
    }

    fn remove_item(&mut self, id: &str) -> bool {
        let Some(state) = self.items.remove(id) else {
            return false;
        };
        let freed: usize = state.contents.iter().map(|c| c.text.len()).sum::<usize>()
            + state
                .function_call
                .as_ref()
                .map_or(0, |f| f.arguments.len());
        self.text_budget.0 = self
            .text_budget
            .0
            .saturating_add(freed)
            .min(MAX_TOTAL_TEXT_BYTES);
        if state.in_conversation {
            self.order.retain(|o| o != id);
        }
        if let Some(at) = self.arrival.iter().position(|a| &**a == id) {
            self.arrival.remove(at);
        }
        true
    }
}

// A function call item's call id, name and arguments into the call's state (a `.done`
// item, or a completed one, completes it).
fn sync_function_call(state: &mut ItemState, item: &Item, finality: Finality, budget: &mut usize) {
    let Item::FunctionCall(call) = item else {
        return;
    };
    let complete =
        finality != Finality::Start || call.status == Some(crate::item::ItemStatus::Completed);
    let fc = state.function_call_mut();
    if fc.call_id.is_none() {
        fc.call_id.clone_from(&call.call_id);
    }
    fc.name = Some(call.name.clone());
    if complete || (fc.arguments.is_empty() && !call.arguments.is_empty()) {
        *budget = budget.saturating_add(fc.arguments.len());
        fc.arguments.clone_from(&call.arguments);
        *budget = budget.saturating_sub(fc.arguments.len());
    }
    fc.done |= complete;
}

// Takes a full item's content into the state: text where the rules say, audio counted.
fn absorb(
    state: &mut ItemState,
    item: &Item,
    audio: &[(u32, u64, Option<u32>)],
    finality: Finality,
    budget: &mut usize,
) {
    state.item.forget_rebuilt();
    for &(index, bytes, bps) in audio {
        if let Some(content) = content_at(&mut state.contents, index) {
            // A full item's audio is the whole of it: it replaces the count.
            content.audio_bytes = bytes;
            if let Some(bps) = bps {
                content.bytes_per_second = bps;
            }
        }
    }
    let Item::Message(message) = item else {
        return;
    };
    for (index, part) in message.content.iter().enumerate().take(MAX_CONTENT_PARTS) {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let Some(content) = content_at(&mut state.contents, index) else {
            break;
        };
        if let Some(text) = part.text() {
            if finality != Finality::Start {
                // The server dropped a truncated part's transcript; keep what was
                // generated (the part is marked truncated) rather than an empty string.
                if !(content.truncated_ms.is_some() && text.is_empty()) {
                    content.set_text(text, budget);
                }
                content.text_done = true;
            } else if !content.has_text {
                content.set_text(text, budget);
            }
        }
    }
}

// Whether an echoed item can be the answer to a request for `requested`: the same type,
// the same role for messages, the same `call_id` for outputs.
fn resembles(requested: &Item, echo: &Item) -> bool {
    match (requested, echo) {
        (Item::Message(a), Item::Message(b)) => a.role == b.role,
        (Item::FunctionCall(a), Item::FunctionCall(b)) => a.call_id == b.call_id,
        (Item::FunctionCallOutput(a), Item::FunctionCallOutput(b)) => a.call_id == b.call_id,
        (a, b) => a.type_name() == b.type_name(),
    }
}
