//! `state::Conversation`: one test per rule of the module docs, then a property test over
//! the spec's example events and a recorded session's, in any order.

use reelthyme_schema::state::{Applied, Conversation, Ignored, InputTranscription};
use reelthyme_schema::{AudioFormat, Base64Audio, ClientEvent, ServerEvent};
use serde_json::{Value, json};

fn server(value: Value) -> ServerEvent {
    ServerEvent::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}: {value}"))
}

fn client(value: Value) -> ClientEvent {
    ClientEvent::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}: {value}"))
}

fn apply(conversation: &mut Conversation, value: Value) -> Applied {
    let applied = conversation.apply_server(&server(value));
    conversation.check_invariants().unwrap();
    applied
}

fn session_created() -> Value {
    json!({"type":"session.created","event_id":"e0","session":{
        "type":"realtime","object":"realtime.session","id":"sess_1","model":"gpt-realtime",
        "audio":{"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin"},
                 "input":{"format":{"type":"audio/pcm","rate":24000}}}}})
}

fn started() -> Conversation {
    let mut c = Conversation::new();
    assert_eq!(apply(&mut c, session_created()), Applied::SessionCreated);
    c
}

fn user_text(id: &str, previous: Value) -> Value {
    json!({"type":"conversation.item.added","event_id":"e","previous_item_id":previous,
        "item":{"id":id,"type":"message","status":"completed","role":"user",
                "content":[{"type":"input_text","text":format!("text of {id}")}]}})
}

fn ids(c: &Conversation) -> Vec<&str> {
    c.items().map(|i| i.id()).collect()
}

fn response_created(id: &str, extra: Value) -> Value {
    let mut response = json!({"object":"realtime.response","id":id,"status":"in_progress",
        "status_details":null,"output":[],"conversation_id":"conv_1","usage":null,"metadata":null});
    if let (Some(r), Some(extra)) = (response.as_object_mut(), extra.as_object()) {
        r.extend(extra.clone());
    }
    json!({"type":"response.created","event_id":"e","response":response})
}

fn response_done(id: &str, output: Value) -> Value {
    json!({"type":"response.done","event_id":"e","response":{"object":"realtime.response",
        "id":id,"status":"completed","status_details":null,"output":output,
        "conversation_id":"conv_1",
        "usage":{"total_tokens":30,"input_tokens":10,"output_tokens":20},"metadata":null}})
}

fn assistant_added(response: &str, id: &str) -> Value {
    json!({"type":"response.output_item.added","event_id":"e","response_id":response,
        "output_index":0,"item":{"id":id,"object":"realtime.item","type":"message",
        "status":"in_progress","role":"assistant","content":[]}})
}

fn conversation_added(id: &str, previous: Value, role: &str, content: Value) -> Value {
    json!({"type":"conversation.item.added","event_id":"e","previous_item_id":previous,
        "item":{"id":id,"type":"message","status":"in_progress","role":role,"content":content}})
}

fn transcript_delta(response: &str, item: &str, delta: &str) -> Value {
    json!({"type":"response.output_audio_transcript.delta","event_id":"e","response_id":response,
        "item_id":item,"output_index":0,"content_index":0,"delta":delta})
}

fn audio_delta(response: &str, item: &str, samples: usize) -> Value {
    json!({"type":"response.output_audio.delta","event_id":"e","response_id":response,
        "item_id":item,"output_index":0,"content_index":0,
        "delta":Base64Audio::from_pcm16(&vec![0; samples]).as_str()})
}

// --- session -------------------------------------------------------------------------

#[test]
fn session_is_the_last_one_the_server_confirmed() {
    let mut c = Conversation::new();
    assert!(c.session().is_none());
    apply(&mut c, session_created());
    assert_eq!(c.session().unwrap().id.as_deref(), Some("sess_1"));
    c.apply_client(&client(json!({"type":"session.update","session":{
        "type":"realtime","instructions":"be brief"}})));
    assert_eq!(
        c.pending_session_update().unwrap().instructions.as_deref(),
        Some("be brief")
    );
    // Not confirmed yet: the session is still the server's.
    assert!(c.session().unwrap().instructions.is_none());
    let applied = apply(
        &mut c,
        json!({"type":"session.updated","event_id":"e","session":{"type":"realtime",
            "id":"sess_1","instructions":"be brief"}}),
    );
    assert_eq!(applied, Applied::SessionUpdated);
    assert_eq!(
        c.session().unwrap().instructions.as_deref(),
        Some("be brief")
    );
    assert!(c.pending_session_update().is_none());
}

#[test]
fn a_new_session_created_starts_a_new_conversation() {
    let mut c = started();
    apply(&mut c, user_text("a", Value::Null));
    apply(&mut c, response_created("resp_1", json!({})));
    assert_eq!(c.item_count(), 1);
    apply(&mut c, session_created());
    assert_eq!(c.item_count(), 0);
    assert_eq!(c.responses().count(), 0);
    assert!(c.active_response().is_none());
}

// --- order ---------------------------------------------------------------------------

#[test]
fn items_follow_previous_item_id_and_null_or_absent_appends() {
    let mut c = started();
    assert_eq!(
        apply(&mut c, user_text("a", Value::Null)),
        Applied::ItemAdded
    );
    apply(&mut c, user_text("b", json!("a")));
    // Inserted after `a`, before `b`.
    apply(&mut c, user_text("c", json!("a")));
    assert_eq!(ids(&c), ["a", "c", "b"]);
    // Explicit null and absent both append.
    apply(&mut c, user_text("d", Value::Null));
    let mut absent = user_text("e", Value::Null);
    absent.as_object_mut().unwrap().remove("previous_item_id");
    apply(&mut c, absent);
    // An unknown previous item appends too.
    apply(&mut c, user_text("f", json!("nope")));
    // "root" puts it first.
    apply(&mut c, user_text("g", json!("root")));
    assert_eq!(ids(&c), ["g", "a", "c", "b", "d", "e", "f"]);
    assert_eq!(c.item("c").unwrap().previous_item_id(), Some("a"));
}

#[test]
fn a_known_item_is_moved_only_by_a_known_previous_item_id() {
    let mut c = started();
    for (id, prev) in [("a", Value::Null), ("b", json!("a")), ("c", json!("b"))] {
        apply(&mut c, user_text(id, prev));
    }
    // A repeat with a null previous leaves it where it is.
    assert_eq!(
        apply(&mut c, user_text("a", Value::Null)),
        Applied::Unchanged
    );
    assert_eq!(ids(&c), ["a", "b", "c"]);
    // A repeat naming another previous item moves it.
    apply(&mut c, user_text("a", json!("c")));
    assert_eq!(ids(&c), ["b", "c", "a"]);
    apply(&mut c, user_text("a", json!("root")));
    assert_eq!(ids(&c), ["a", "b", "c"]);
}

#[test]
fn output_item_added_before_or_after_conversation_item_added_gives_one_item_in_place() {
    for output_first in [true, false] {
        let mut c = started();
        apply(&mut c, user_text("u1", Value::Null));
        apply(&mut c, user_text("u2", json!("u1")));
        apply(&mut c, response_created("resp_1", json!({})));
        let conversation = conversation_added("a1", json!("u1"), "assistant", json!([]));
        if output_first {
            assert_eq!(
                apply(&mut c, assistant_added("resp_1", "a1")),
                Applied::ItemAdded
            );
            // Appended first, then moved where the server says.
            apply(&mut c, conversation);
        } else {
            assert_eq!(apply(&mut c, conversation), Applied::ItemAdded);
            apply(&mut c, assistant_added("resp_1", "a1"));
        }
        assert_eq!(ids(&c), ["u1", "a1", "u2"], "output first: {output_first}");
        let item = c.item("a1").unwrap();
        assert_eq!(item.response_id(), Some("resp_1"));
        assert_eq!(item.output_index(), Some(0));
        assert_eq!(c.response("resp_1").unwrap().output(), ["a1"]);
    }
}

#[test]
fn out_of_band_response_items_are_held_but_not_in_the_conversation() {
    let mut c = started();
    c.apply_client(&client(json!({"type":"response.create","response":{
        "conversation":"none","metadata":{"topic":"summary"}}})));
    apply(
        &mut c,
        response_created(
            "resp_oob",
            json!({"conversation_id":null,"metadata":{"topic":"summary"}}),
        ),
    );
    apply(&mut c, assistant_added("resp_oob", "x1"));
    assert!(c.response("resp_oob").unwrap().out_of_band());
    assert_eq!(c.items().count(), 0);
    assert!(!c.item("x1").unwrap().in_conversation());
    apply(&mut c, transcript_delta("resp_oob", "x1", "Sum"));
    assert_eq!(c.transcript("x1", 0), Some("Sum"));
}

// --- full items, deltas, done --------------------------------------------------------

#[test]
fn a_text_turn_in_the_observed_order() {
    let mut c = started();
    apply(&mut c, user_text("u1", Value::Null));
    assert_eq!(
        apply(&mut c, response_created("resp_1", json!({}))),
        Applied::ResponseStarted
    );
    apply(&mut c, assistant_added("resp_1", "a1"));
    apply(
        &mut c,
        conversation_added("a1", json!("u1"), "assistant", json!([])),
    );
    let part = json!({"type":"response.content_part.added","event_id":"e","response_id":"resp_1",
        "item_id":"a1","output_index":0,"content_index":0,"part":{"type":"text","text":""}});
    assert_eq!(apply(&mut c, part), Applied::ContentAdded);
    for delta in ["Hel", "lo"] {
        let d = json!({"type":"response.output_text.delta","event_id":"e","response_id":"resp_1",
            "item_id":"a1","output_index":0,"content_index":0,"delta":delta});
        assert_eq!(apply(&mut c, d), Applied::ContentDelta);
    }
    assert_eq!(c.transcript("a1", 0), Some("Hello"));
    assert!(!c.item("a1").unwrap().content(0).unwrap().text_done());
    let done = json!({"type":"response.output_text.done","event_id":"e","response_id":"resp_1",
        "item_id":"a1","output_index":0,"content_index":0,"text":"Hello!"});
    assert_eq!(apply(&mut c, done), Applied::ContentDone);
    // The server's full text wins over the deltas.
    assert_eq!(c.transcript("a1", 0), Some("Hello!"));
    assert!(c.item("a1").unwrap().content(0).unwrap().text_done());
    let full = json!({"id":"a1","type":"message","status":"completed","role":"assistant",
        "content":[{"type":"output_text","text":"Hello!"}]});
    assert_eq!(
        apply(
            &mut c,
            json!({"type":"conversation.item.done","event_id":"e","previous_item_id":"u1","item":full})
        ),
        Applied::ItemDone
    );
    apply(
        &mut c,
        json!({"type":"response.output_item.done","event_id":"e","response_id":"resp_1",
            "output_index":0,"item":full}),
    );
    assert_eq!(
        apply(&mut c, response_done("resp_1", json!([full]))),
        Applied::ResponseDone
    );
    assert!(c.active_response().is_none());
    let item = c.item("a1").unwrap();
    assert!(item.is_done());
    assert_eq!(item.item(), &serde_json::from_value(full).unwrap());
    assert_eq!(ids(&c), ["u1", "a1"]);
    let usage = c.response("resp_1").unwrap().usage().unwrap();
    assert_eq!(usage.output_tokens, Some(20));
}

#[test]
fn a_late_added_does_not_erase_text_but_a_done_replaces_it() {
    let mut c = started();
    apply(&mut c, response_created("resp_1", json!({})));
    apply(&mut c, assistant_added("resp_1", "a1"));
    apply(&mut c, transcript_delta("resp_1", "a1", "Hi there"));
    // An `added` repeating the item with an empty transcript arrives late.
    apply(
        &mut c,
        conversation_added(
            "a1",
            Value::Null,
            "assistant",
            json!([{"type":"output_audio","transcript":""}]),
        ),
    );
    assert_eq!(c.transcript("a1", 0), Some("Hi there"));
    apply(
        &mut c,
        json!({"type":"conversation.item.done","event_id":"e","item":{"id":"a1",
            "type":"message","status":"completed","role":"assistant",
            "content":[{"type":"output_audio","transcript":"Hi there!"}]}}),
    );
    assert_eq!(c.transcript("a1", 0), Some("Hi there!"));
}

#[test]
fn an_added_after_the_done_does_not_replace_the_done_item() {
    let mut c = started();
    let done = json!({"type":"conversation.item.done","event_id":"e","item":{"id":"a1",
        "type":"message","status":"completed","role":"assistant",
        "content":[{"type":"output_text","text":"Complete."}]}});
    apply(&mut c, done.clone());
    let late = conversation_added("a1", Value::Null, "assistant", json!([]));
    assert_eq!(apply(&mut c, late), Applied::Unchanged);
    let item = c.item("a1").unwrap();
    assert_eq!(
        item.item(),
        &serde_json::from_value::<reelthyme_schema::Item>(done["item"].clone()).unwrap()
    );
    assert_eq!(c.transcript("a1", 0), Some("Complete."));
}

#[test]
fn events_for_unknown_ids_are_ignored_and_grow_nothing() {
    let mut c = started();
    apply(&mut c, response_created("resp_1", json!({})));
    for i in 0..1000 {
        let item = format!("ghost_{i}");
        assert_eq!(
            apply(&mut c, transcript_delta("resp_1", &item, "x")),
            Applied::Ignored(Ignored::UnknownItem)
        );
        assert_eq!(
            apply(&mut c, audio_delta("resp_1", &item, 480)),
            Applied::Ignored(Ignored::UnknownItem)
        );
        for value in [
            json!({"type":"conversation.item.truncated","event_id":"e","item_id":item,
                "content_index":0,"audio_end_ms":10}),
            json!({"type":"conversation.item.deleted","event_id":"e","item_id":item}),
            json!({"type":"response.function_call_arguments.delta","event_id":"e",
                "response_id":"resp_1","item_id":item,"output_index":0,"call_id":"c","delta":"{"}),
            json!({"type":"conversation.item.input_audio_transcription.delta","event_id":"e",
                "item_id":item,"content_index":0,"delta":"x"}),
        ] {
            assert_eq!(apply(&mut c, value), Applied::Ignored(Ignored::UnknownItem));
        }
    }
    assert_eq!(c.item_count(), 0);
    assert_eq!(c.responses().count(), 1);
}

#[test]
fn unknown_event_types_are_ignored_and_the_model_stays_usable() {
    let mut c = started();
    assert_eq!(
        apply(
            &mut c,
            json!({"type":"response.brand_new","event_id":"e","item_id":"x"})
        ),
        Applied::Ignored(Ignored::UnknownEvent)
    );
    apply(&mut c, user_text("a", Value::Null));
    assert_eq!(ids(&c), ["a"]);
}

// --- responses -----------------------------------------------------------------------

#[test]
fn active_response_runs_from_created_to_done() {
    let mut c = started();
    assert!(c.active_response().is_none());
    apply(&mut c, response_created("resp_1", json!({})));
    assert_eq!(c.active_response().unwrap().id(), "resp_1");
    // A parallel (out-of-band) response becomes active; when it ends the first is again.
    apply(
        &mut c,
        response_created("resp_2", json!({"conversation_id":null})),
    );
    assert_eq!(c.active_response().unwrap().id(), "resp_2");
    apply(&mut c, response_done("resp_2", json!([])));
    assert_eq!(c.active_response().unwrap().id(), "resp_1");
    apply(&mut c, response_done("resp_1", json!([])));
    assert!(c.active_response().is_none());
    let order: Vec<&str> = c.responses().map(|r| r.id()).collect();
    assert_eq!(order, ["resp_1", "resp_2"]);
    assert!(c.responses().all(|r| r.is_done()));
}

#[test]
fn response_done_for_an_unknown_response_records_it_done() {
    let mut c = started();
    assert_eq!(
        apply(&mut c, response_done("resp_9", json!([]))),
        Applied::ResponseDone
    );
    assert!(c.response("resp_9").unwrap().is_done());
    assert!(c.active_response().is_none());
    let no_id = json!({"type":"response.done","event_id":"e","response":{"status":"completed"}});
    assert_eq!(apply(&mut c, no_id), Applied::Ignored(Ignored::MissingId));
}

#[test]
fn output_format_is_the_responses_own_else_the_sessions() {
    let mut c = started();
    let pcm = AudioFormat::pcm();
    apply(&mut c, response_created("resp_1", json!({})));
    assert_eq!(c.output_format("resp_1"), Some(&pcm));
    assert_eq!(c.output_format("unknown"), Some(&pcm));
    apply(
        &mut c,
        response_created(
            "resp_2",
            json!({"audio":{"output":{"format":{"type":"audio/pcmu"}}}}),
        ),
    );
    let pcmu: AudioFormat = serde_json::from_value(json!({"type":"audio/pcmu"})).unwrap();
    assert_eq!(c.output_format("resp_2"), Some(&pcmu));
    // A request's format counts when the server's echo leaves it out.
    c.apply_client(&client(json!({"type":"response.create","response":{
        "audio":{"output":{"format":{"type":"audio/pcma"}}}}})));
    apply(&mut c, response_created("resp_3", json!({})));
    let pcma: AudioFormat = serde_json::from_value(json!({"type":"audio/pcma"})).unwrap();
    assert_eq!(c.output_format("resp_3"), Some(&pcma));
    // Still known after done.
    apply(&mut c, response_done("resp_2", json!([])));
    // `response.done` carries no audio config here: `response.created`'s still holds.
    assert_eq!(c.output_format("resp_2"), Some(&pcmu));
}

#[test]
fn requests_are_matched_by_metadata_then_oldest_and_errors_reject_them() {
    let mut c = started();
    c.apply_client(&client(json!({"type":"response.create","event_id":"ev_a",
        "response":{"instructions":"first"}})));
    c.apply_client(&client(json!({"type":"response.create","event_id":"ev_b",
        "response":{"instructions":"second","metadata":{"k":"b"}}})));
    c.apply_client(&client(json!({"type":"response.create","event_id":"ev_c",
        "response":{"instructions":"third"}})));
    assert_eq!(c.pending_responses().len(), 3);
    apply(
        &mut c,
        response_created("resp_b", json!({"metadata":{"k":"b"}})),
    );
    let request = c.response("resp_b").unwrap().request().unwrap();
    assert_eq!(request.event_id(), Some("ev_b"));
    let rejected = json!({"type":"error","event_id":"e","error":{"type":"invalid_request_error",
        "code":"conversation_already_has_active_response","message":"busy","event_id":"ev_a"}});
    assert_eq!(apply(&mut c, rejected), Applied::RequestRejected);
    apply(&mut c, response_created("resp_c", json!({})));
    assert_eq!(
        c.response("resp_c").unwrap().request().unwrap().event_id(),
        Some("ev_c")
    );
    assert_eq!(c.pending_responses().len(), 0);
    // A VAD response claims nothing.
    apply(&mut c, response_created("resp_vad", json!({})));
    assert!(c.response("resp_vad").unwrap().request().is_none());
    let other = json!({"type":"error","event_id":"e","error":{"type":"x","message":"m"}});
    assert_eq!(apply(&mut c, other), Applied::Error);
}

#[test]
fn a_vad_response_that_won_the_race_gives_the_refused_request_back() {
    let mut c = started();
    c.apply_client(&client(
        json!({"type":"response.create","event_id":"ev_manual"}),
    ));
    // Server VAD answers first and, by position, claims the manual request...
    apply(&mut c, response_created("resp_vad", json!({})));
    assert_eq!(
        c.response("resp_vad")
            .unwrap()
            .request()
            .unwrap()
            .event_id(),
        Some("ev_manual")
    );
    // ...which the server then refuses: the claim was wrong.
    let refused = json!({"type":"error","event_id":"e","error":{"type":"invalid_request_error",
        "code":"conversation_already_has_active_response","message":"busy",
        "event_id":"ev_manual"}});
    assert_eq!(apply(&mut c, refused), Applied::RequestRejected);
    assert!(c.response("resp_vad").unwrap().request().is_none());
    assert_eq!(c.active_response().unwrap().id(), "resp_vad");
}

#[test]
fn an_early_assistant_item_does_not_claim_a_waiting_user_message() {
    let mut c = started();
    c.apply_client(&ClientEvent::user_text("next question"));
    apply(&mut c, response_created("resp_1", json!({})));
    // `conversation.item.added` before `response.output_item.added` (an odd order).
    apply(
        &mut c,
        conversation_added("a1", Value::Null, "assistant", json!([])),
    );
    assert_eq!(c.pending_items().len(), 1);
    apply(&mut c, user_text("u1", json!("a1")));
    assert_eq!(c.pending_items().len(), 0);
    // A function call output is claimed only by an output with its call_id.
    c.apply_client(&ClientEvent::function_call_output("call_1", "42"));
    let other = json!({"type":"conversation.item.added","event_id":"e","item":{"id":"o2",
        "type":"function_call_output","call_id":"call_2","output":"x"}});
    apply(&mut c, other);
    assert_eq!(c.pending_items().len(), 1);
    let echo = json!({"type":"conversation.item.added","event_id":"e","item":{"id":"o1",
        "type":"function_call_output","call_id":"call_1","output":"42"}});
    apply(&mut c, echo);
    assert_eq!(c.pending_items().len(), 0);
}

#[test]
fn cancel_marks_the_named_or_active_response() {
    let mut c = started();
    apply(&mut c, response_created("resp_1", json!({})));
    c.apply_client(&ClientEvent::response_cancel());
    assert!(c.response("resp_1").unwrap().cancel_requested());
}

// --- client items ------------------------------------------------------------------------

#[test]
fn item_create_waits_for_its_echo_by_id_or_in_order() {
    let mut c = started();
    apply(&mut c, user_text("a", Value::Null));
    apply(&mut c, user_text("b", json!("a")));
    c.apply_client(&client(
        json!({"type":"conversation.item.create","previous_item_id":"a",
        "item":{"id":"mine","type":"message","role":"user",
                "content":[{"type":"input_text","text":"hi"}]}}),
    ));
    c.apply_client(&ClientEvent::user_text("no id"));
    assert_eq!(c.pending_items().len(), 2);
    assert_eq!(
        c.pending_items().next().unwrap().previous_item_id(),
        Some(Some("a"))
    );
    // The echo of the id-less one (the server assigns the id).
    apply(&mut c, user_text("srv_1", json!("b")));
    assert_eq!(c.pending_items().len(), 1);
    // The echo without a previous_item_id: the request's applies.
    let mut echo = user_text("mine", Value::Null);
    echo.as_object_mut().unwrap().remove("previous_item_id");
    apply(&mut c, echo);
    assert_eq!(c.pending_items().len(), 0);
    assert_eq!(ids(&c), ["a", "mine", "b", "srv_1"]);
}

// --- audio -----------------------------------------------------------------------------

#[test]
fn output_audio_is_counted_not_stored() {
    let mut c = started();
    apply(&mut c, response_created("resp_1", json!({})));
    apply(&mut c, assistant_added("resp_1", "a1"));
    for _ in 0..10 {
        // 20 ms at 24 kHz.
        assert_eq!(
            apply(&mut c, audio_delta("resp_1", "a1", 480)),
            Applied::ContentDelta
        );
    }
    let content = c.item("a1").unwrap().content(0).unwrap();
    assert_eq!(content.audio_bytes(), 9600);
    assert_eq!(content.audio_ms(), Some(200));
    let done = json!({"type":"response.output_audio.done","event_id":"e","response_id":"resp_1",
        "item_id":"a1","output_index":0,"content_index":0});
    assert_eq!(apply(&mut c, done), Applied::ContentDone);
    assert!(c.item("a1").unwrap().content(0).unwrap().audio_done());
    let parts: Vec<(&str, u32, Option<u64>)> = c
        .audio_parts("resp_1")
        .map(|(item, index, content)| (item.id(), index, content.audio_ms()))
        .collect();
    assert_eq!(parts, [("a1", 0, Some(200))]);
    assert_eq!(c.audio_parts("unknown").count(), 0);
}

#[test]
fn g711_responses_count_8_bytes_a_millisecond() {
    let mut c = started();
    apply(
        &mut c,
        response_created(
            "resp_1",
            json!({"audio":{"output":{"format":{"type":"audio/pcmu"}}}}),
        ),
    );
    apply(&mut c, assistant_added("resp_1", "a1"));
    // 160 bytes of µ-law (80 "samples" of PCM16 make 160 bytes) = 20 ms.
    apply(&mut c, audio_delta("resp_1", "a1", 80));
    assert_eq!(
        c.item("a1").unwrap().content(0).unwrap().audio_ms(),
        Some(20)
    );
}

#[test]
fn content_indices_past_the_limit_are_ignored() {
    let mut c = started();
    apply(&mut c, response_created("resp_1", json!({})));
    apply(&mut c, assistant_added("resp_1", "a1"));
    let far = json!({"type":"response.output_text.delta","event_id":"e","response_id":"resp_1",
        "item_id":"a1","output_index":0,"content_index":4_000_000_000_u32,"delta":"x"});
    assert_eq!(apply(&mut c, far), Applied::Ignored(Ignored::Limit));
    assert!(c.item("a1").unwrap().contents().is_empty());
}

#[test]
fn retrieved_items_replace_ours_and_their_audio_is_counted_not_kept() {
    let mut c = started();
    apply(&mut c, user_text("u1", Value::Null));
    let audio = Base64Audio::from_pcm16(&vec![7; 2400]);
    let retrieved = json!({"type":"conversation.item.retrieved","event_id":"e","item":{
        "id":"u1","type":"message","status":"completed","role":"user",
        "content":[{"type":"input_audio","transcript":"hello","audio":audio.as_str()}]}});
    assert_eq!(apply(&mut c, retrieved), Applied::ItemRetrieved);
    let item = c.item("u1").unwrap();
    assert!(item.is_retrieved());
    let stored = serde_json::to_string(item.item()).unwrap();
    assert!(!stored.contains(audio.as_str()), "{stored}");
    assert_eq!(item.content(0).unwrap().audio_ms(), Some(100));
    assert_eq!(c.transcript("u1", 0), Some("hello"));
    // An unknown retrieved item is appended.
    let other = json!({"type":"conversation.item.retrieved","event_id":"e","item":{
        "id":"old","type":"message","status":"completed","role":"user",
        "content":[{"type":"input_text","text":"from before"}]}});
    apply(&mut c, other);
    assert_eq!(ids(&c), ["u1", "old"]);
}

#[test]
fn client_audio_in_created_items_is_not_kept() {
    let mut c = started();
    c.apply_client(&ClientEvent::item_create(
        reelthyme_schema::Item::user_audio(&vec![3; 24_000]),
    ));
    let stored = serde_json::to_string(c.pending_items().next().unwrap().item()).unwrap();
    assert!(!stored.contains("\"audio\":"), "{stored}");
}

// --- truncation, deletion --------------------------------------------------------------

#[test]
fn truncation_marks_the_part_and_keeps_what_was_generated() {
    let mut c = started();
    apply(&mut c, response_created("resp_1", json!({})));
    apply(&mut c, assistant_added("resp_1", "a1"));
    apply(&mut c, transcript_delta("resp_1", "a1", "A long answer"));
    apply(&mut c, audio_delta("resp_1", "a1", 24_000));
    let truncated = json!({"type":"conversation.item.truncated","event_id":"e","item_id":"a1",
        "content_index":0,"audio_end_ms":300});
    assert_eq!(apply(&mut c, truncated), Applied::ItemTruncated);
    // The server then describes the part with its transcript removed.
    apply(
        &mut c,
        json!({"type":"conversation.item.done","event_id":"e","item":{"id":"a1",
            "type":"message","status":"incomplete","role":"assistant",
            "content":[{"type":"output_audio","transcript":""}]}}),
    );
    let content = c.item("a1").unwrap().content(0).unwrap();
    assert_eq!(content.truncated_at_ms(), Some(300));
    assert_eq!(content.text(), Some("A long answer"));
    assert_eq!(content.audio_ms(), Some(1000));
}

#[test]
fn deletion_removes_the_item_everywhere() {
    let mut c = started();
    apply(&mut c, user_text("a", Value::Null));
    apply(&mut c, user_text("b", json!("a")));
    let deleted = json!({"type":"conversation.item.deleted","event_id":"e","item_id":"a"});
    assert_eq!(apply(&mut c, deleted.clone()), Applied::ItemDeleted);
    assert_eq!(ids(&c), ["b"]);
    assert!(c.item("a").is_none());
    assert_eq!(
        apply(&mut c, deleted),
        Applied::Ignored(Ignored::UnknownItem)
    );
    // An item after a deleted one appends.
    apply(&mut c, user_text("c", json!("a")));
    assert_eq!(ids(&c), ["b", "c"]);
}

// --- input -----------------------------------------------------------------------------

#[test]
fn input_buffer_counts_appends_and_follows_vad() {
    let mut c = started();
    // 100 ms of PCM16 at 24 kHz, twice.
    let append = ClientEvent::audio_append(&vec![0; 2400]);
    c.apply_client(&append);
    c.apply_client(&append);
    assert_eq!(c.input_buffer().appended_ms(), 200);
    apply(
        &mut c,
        json!({"type":"input_audio_buffer.speech_started","event_id":"e","audio_start_ms":40,"item_id":"u1"}),
    );
    assert!(c.input_buffer().is_speaking());
    assert_eq!(c.input_buffer().speech_started_ms(), Some(40));
    apply(
        &mut c,
        json!({"type":"input_audio_buffer.speech_stopped","event_id":"e","audio_end_ms":180,"item_id":"u1"}),
    );
    assert!(!c.input_buffer().is_speaking());
    assert_eq!(c.input_buffer().speech_stopped_ms(), Some(180));
    assert_eq!(
        apply(
            &mut c,
            json!({"type":"input_audio_buffer.committed","event_id":"e","previous_item_id":null,"item_id":"u1"})
        ),
        Applied::BufferCommitted
    );
    assert_eq!(c.input_buffer().appended_ms(), 0);
    assert_eq!(c.input_buffer().total_appended_ms(), 200);
    assert_eq!(c.input_buffer().committed().collect::<Vec<_>>(), ["u1"]);
    c.apply_client(&append);
    assert_eq!(
        apply(
            &mut c,
            json!({"type":"input_audio_buffer.cleared","event_id":"e"})
        ),
        Applied::BufferCleared
    );
    assert_eq!(c.input_buffer().appended_ms(), 0);
    assert_eq!(c.input_buffer().clears(), 1);
}

#[test]
fn input_appends_in_g711_count_8_bytes_a_millisecond() {
    let mut c = Conversation::new();
    apply(
        &mut c,
        json!({"type":"session.created","event_id":"e","session":{"type":"realtime",
            "audio":{"input":{"format":{"type":"audio/pcmu"}}}}}),
    );
    c.apply_client(&ClientEvent::audio_append_base64(Base64Audio::from_bytes(
        &[0xff; 800],
    )));
    assert_eq!(c.input_buffer().appended_ms(), 100);
}

#[test]
fn user_transcription_accumulates_completes_or_fails() {
    let mut c = started();
    apply(
        &mut c,
        json!({"type":"conversation.item.added","event_id":"e","previous_item_id":null,"item":{
            "id":"u1","type":"message","status":"completed","role":"user",
            "content":[{"type":"input_audio","transcript":null}]}}),
    );
    assert_eq!(c.transcript("u1", 0), None);
    for delta in ["What's the ", "weather"] {
        apply(
            &mut c,
            json!({"type":"conversation.item.input_audio_transcription.delta","event_id":"e",
                "item_id":"u1","content_index":0,"delta":delta}),
        );
    }
    assert_eq!(c.transcript("u1", 0), Some("What's the weather"));
    assert_eq!(
        c.item("u1").unwrap().content(0).unwrap().transcription(),
        &InputTranscription::InProgress
    );
    apply(
        &mut c,
        json!({"type":"conversation.item.input_audio_transcription.completed","event_id":"e",
            "item_id":"u1","content_index":0,"transcript":"What's the weather?",
            "usage":{"type":"duration","seconds":1.2}}),
    );
    assert_eq!(c.transcript("u1", 0), Some("What's the weather?"));
    assert_eq!(
        c.item("u1").unwrap().content(0).unwrap().transcription(),
        &InputTranscription::Completed
    );
    apply(&mut c, user_text("u2", json!("u1")));
    apply(
        &mut c,
        json!({"type":"conversation.item.input_audio_transcription.failed","event_id":"e",
            "item_id":"u2","content_index":0,"error":{"type":"transcription_error",
            "code":"audio_unintelligible","message":"no"}}),
    );
    assert!(matches!(
        c.item("u2").unwrap().content(0).unwrap().transcription(),
        InputTranscription::Failed(e) if e.message.as_deref() == Some("no")
    ));
}

// --- function calls --------------------------------------------------------------------

fn function_call_item(status: &str, arguments: &str) -> Value {
    json!({"id":"fc1","type":"function_call","status":status,"name":"get_weather",
        "call_id":"call_1","arguments":arguments})
}

#[test]
fn function_call_arguments_accumulate_and_the_call_is_ready_once() {
    let mut c = started();
    apply(&mut c, response_created("resp_1", json!({})));
    apply(
        &mut c,
        json!({"type":"response.output_item.added","event_id":"e","response_id":"resp_1",
            "output_index":0,"item":function_call_item("in_progress","")}),
    );
    for delta in ["{\"city\":", "\"Paris\"}"] {
        assert_eq!(
            apply(
                &mut c,
                json!({"type":"response.function_call_arguments.delta","event_id":"e",
                    "response_id":"resp_1","item_id":"fc1","output_index":0,"call_id":"call_1",
                    "delta":delta})
            ),
            Applied::FunctionCallDelta
        );
    }
    let call = c.item("fc1").unwrap().function_call().unwrap();
    assert_eq!(call.arguments(), r#"{"city":"Paris"}"#);
    assert_eq!(call.call_id(), Some("call_1"));
    assert!(!call.is_done());
    assert_eq!(
        apply(
            &mut c,
            json!({"type":"response.function_call_arguments.done","event_id":"e",
                "response_id":"resp_1","item_id":"fc1","output_index":0,"call_id":"call_1",
                "name":"get_weather","arguments":"{\"city\":\"Paris\"}"})
        ),
        Applied::FunctionCallReady
    );
    // The item's `.done` describes the same call: not ready twice.
    let done = json!({"type":"response.output_item.done","event_id":"e","response_id":"resp_1",
        "output_index":0,"item":function_call_item("completed","{\"city\":\"Paris\"}")});
    assert_ne!(apply(&mut c, done), Applied::FunctionCallReady);
    let found = c.function_call("call_1").unwrap();
    assert_eq!(found.id(), "fc1");
    assert_eq!(found.function_call().unwrap().name(), Some("get_weather"));
    assert!(found.function_call().unwrap().is_done());
}

#[test]
fn output_item_done_alone_makes_the_call_ready_but_a_replayed_call_is_not() {
    let mut c = started();
    apply(&mut c, response_created("resp_1", json!({})));
    let done = json!({"type":"response.output_item.done","event_id":"e","response_id":"resp_1",
        "output_index":0,"item":function_call_item("completed","{}")});
    assert_eq!(apply(&mut c, done), Applied::FunctionCallReady);

    let mut replay = started();
    let added = json!({"type":"conversation.item.added","event_id":"e","previous_item_id":null,
        "item":function_call_item("completed","{}")});
    assert_ne!(apply(&mut replay, added), Applied::FunctionCallReady);
    assert!(
        replay
            .function_call("call_1")
            .unwrap()
            .function_call()
            .unwrap()
            .is_done()
    );
}

// --- limits ----------------------------------------------------------------------------

#[test]
fn items_past_the_limit_evict_the_oldest() {
    use reelthyme_schema::state::MAX_ITEMS;
    let mut c = started();
    let mut previous = Value::Null;
    for i in 0..MAX_ITEMS + 10 {
        let id = format!("i{i}");
        c.apply_server(&server(user_text(&id, previous)));
        previous = json!(id);
    }
    c.check_invariants().unwrap();
    assert_eq!(c.item_count(), MAX_ITEMS);
    assert_eq!(c.evicted(), 10);
    assert_eq!(c.items().next().unwrap().id(), "i10");
    assert_eq!(
        c.items().next_back().unwrap().id(),
        format!("i{}", MAX_ITEMS + 9)
    );
}

#[test]
fn delta_text_is_capped_per_part() {
    use reelthyme_schema::state::MAX_TEXT_BYTES;
    let mut c = started();
    apply(&mut c, response_created("resp_1", json!({})));
    apply(&mut c, assistant_added("resp_1", "a1"));
    let chunk = "é".repeat(1000); // 2000 bytes, two-byte characters
    let mut dropped = false;
    for _ in 0..(MAX_TEXT_BYTES / 2000 + 5) {
        dropped |= apply(&mut c, transcript_delta("resp_1", "a1", &chunk))
            == Applied::Ignored(Ignored::Limit);
    }
    assert!(dropped);
    let content = c.item("a1").unwrap().content(0).unwrap();
    assert!(content.text().unwrap().len() <= MAX_TEXT_BYTES);
    assert!(content.text().unwrap().len() > MAX_TEXT_BYTES - 2000);
    assert!(content.dropped_text_bytes() > 0);
}

#[test]
fn delta_text_is_capped_over_the_conversation_and_deletion_frees_it() {
    use reelthyme_schema::state::{MAX_CONTENT_PARTS, MAX_TEXT_BYTES, MAX_TOTAL_TEXT_BYTES};
    assert_eq!(MAX_CONTENT_PARTS * MAX_TEXT_BYTES, MAX_TOTAL_TEXT_BYTES);
    let mut c = started();
    apply(&mut c, response_created("resp_1", json!({})));
    apply(&mut c, assistant_added("resp_1", "a1"));
    apply(&mut c, assistant_added("resp_1", "a2"));
    let chunk = "x".repeat(64 * 1024);
    let delta = |item: &str, index: usize| {
        server(json!({"type":"response.output_text.delta","event_id":"e",
            "response_id":"resp_1","item_id":item,"output_index":0,"content_index":index,
            "delta":chunk}))
    };
    // Every part of `a1` full: the whole budget.
    for index in 0..MAX_CONTENT_PARTS {
        for _ in 0..MAX_TEXT_BYTES / chunk.len() {
            assert_eq!(c.apply_server(&delta("a1", index)), Applied::ContentDelta);
        }
    }
    assert_eq!(
        c.apply_server(&delta("a2", 0)),
        Applied::Ignored(Ignored::Limit)
    );
    assert_eq!(c.transcript("a2", 0), Some(""));
    apply(
        &mut c,
        json!({"type":"conversation.item.deleted","event_id":"e","item_id":"a1"}),
    );
    assert_eq!(c.apply_server(&delta("a2", 0)), Applied::ContentDelta);
    assert_eq!(c.transcript("a2", 0).map(str::len), Some(chunk.len()));
}

#[test]
fn pending_requests_are_bounded() {
    use reelthyme_schema::state::MAX_PENDING;
    let mut c = started();
    for _ in 0..MAX_PENDING + 3 {
        c.apply_client(&ClientEvent::response_create());
        c.apply_client(&ClientEvent::user_text("x"));
    }
    assert_eq!(c.pending_responses().len(), MAX_PENDING);
    assert_eq!(c.pending_items().len(), MAX_PENDING);
    assert_eq!(c.dropped_requests(), 6);
}

// --- the spec's examples, in any order -------------------------------------------------

mod spec_orders {
    use super::*;
    use proptest::prelude::*;

    enum Event {
        Server(ServerEvent),
        Client(ClientEvent),
    }

    // Every example of the spec as an event: GA rows as they are, beta rows translated
    // (as the edge does); rows that do not parse are left out.
    fn examples() -> Vec<Event> {
        let text = std::fs::read_to_string(reelthyme_testkit::spec_examples()).unwrap();
        let mut events = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let row: Value = serde_json::from_str(line).unwrap();
            let example = row["example"].clone();
            let beta = row["version"] == "beta";
            let event = match (row["direction"].as_str(), beta) {
                (Some("server"), false) => ServerEvent::from_value(example).ok().map(Event::Server),
                (Some("server"), true) => reelthyme_schema::beta::server_from_value(example)
                    .ok()
                    .map(Event::Server),
                (_, false) => ClientEvent::from_value(example).ok().map(Event::Client),
                (_, true) => reelthyme_schema::beta::client_from_value(example)
                    .ok()
                    .map(Event::Client),
            };
            events.extend(event);
        }
        events
    }

    // The recorded session's events: ids that refer to each other, unlike the spec's.
    fn recorded() -> Vec<Event> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/conversation.jsonl");
        let text = std::fs::read_to_string(path).unwrap();
        text.lines()
            .skip(1)
            .filter_map(|line| {
                let row: Value = serde_json::from_str(line).ok()?;
                let event = row["event"].clone();
                if row["direction"] == "server" {
                    ServerEvent::from_value(event).ok().map(Event::Server)
                } else {
                    ClientEvent::from_value(event).ok().map(Event::Client)
                }
            })
            .collect()
    }

    #[test]
    fn nearly_every_example_is_usable() {
        assert!(examples().len() >= 150, "{}", examples().len());
        assert!(recorded().len() > 150, "{}", recorded().len());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_order_of_the_examples_and_recorded_events_keeps_the_invariants(
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..300)
        ) {
            thread_local! {
                static EXAMPLES: Vec<Event> = examples().into_iter().chain(recorded()).collect();
            }
            EXAMPLES.with(|examples| {
                let mut c = Conversation::new();
                for pick in &picks {
                    match &examples[pick.index(examples.len())] {
                        Event::Server(e) => {
                            c.apply_server(e);
                        }
                        Event::Client(e) => c.apply_client(e),
                    }
                    if let Err(broken) = c.check_invariants() {
                        return Err(TestCaseError::fail(broken));
                    }
                    // Every ordered item can be found, and the active response is held
                    // and not done.
                    for item in c.items() {
                        prop_assert!(c.item(item.id()).is_some());
                    }
                    if let Some(active) = c.active_response() {
                        prop_assert!(!active.is_done());
                        prop_assert!(c.response(active.id()).is_some());
                    }
                }
                Ok(())
            })?;
        }
    }
}
