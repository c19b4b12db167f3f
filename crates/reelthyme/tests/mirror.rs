//! The conversation mirror over a server the test scripts: late input transcripts, two
//! utterances in a row, truncation and deletion. (Memory over a sped-up hour of voice is
//! `tests/voice_hour.rs`, a binary of its own.)

use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::events::Role;
use reelthyme::{EntryKind, History, Mirror};
use serde_json::json;

#[path = "support/scripted.rs"]
mod scripted;

/// Polls the events until the mirror shows what `ready` wants (bounded).
async fn until_history(
    events: &mut reelthyme::SessionEvents,
    mirror: &Mirror,
    ready: impl Fn(&History) -> bool,
) -> History {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let history = mirror.history();
            if ready(&history) {
                return history;
            }
            let event = tokio::time::timeout(Duration::from_millis(20), events.next()).await;
            if let Ok(Some(event)) = event {
                event.expect("no error");
            }
        }
    })
    .await
    .expect("the history in time")
}

fn user_item(id: &str, previous: Option<&str>) -> serde_json::Value {
    json!({"type": "conversation.item.added", "event_id": format!("ev_add_{id}"),
        "previous_item_id": previous,
        "item": {"id": id, "object": "realtime.item", "type": "message", "status": "completed",
            "role": "user", "content": [{"type": "input_audio", "transcript": null}]}})
}

fn transcript(id: &str, text: &str) -> serde_json::Value {
    json!({"type": "conversation.item.input_audio_transcription.completed",
        "event_id": format!("ev_tr_{id}"), "item_id": id, "content_index": 0, "transcript": text,
        "usage": {"type": "duration", "seconds": 1.0}})
}

fn committed(id: &str, previous: Option<&str>) -> serde_json::Value {
    json!({"type": "input_audio_buffer.committed", "event_id": format!("ev_c_{id}"),
        "previous_item_id": previous, "item_id": id})
}

/// A response `resp` answering with item `item` after `previous`: created, its item, one
/// second of audio with its transcript, then done.
fn answer(resp: &str, item: &str, previous: &str, text: &str) -> Vec<serde_json::Value> {
    let audio = reelthyme::events::Base64Audio::from_pcm16(&vec![300_i16; 24_000]);
    let assistant = json!({"id": item, "object": "realtime.item", "type": "message",
        "status": "in_progress", "role": "assistant", "content": []});
    vec![
        json!({"type": "response.created", "event_id": format!("ev_rc_{resp}"), "response": {
            "object": "realtime.response", "id": resp, "status": "in_progress", "output": [],
            "conversation_id": "conv_1", "output_modalities": ["audio"], "usage": null,
            "metadata": null}}),
        json!({"type": "response.output_item.added", "event_id": format!("ev_oi_{resp}"),
            "response_id": resp, "output_index": 0, "item": assistant}),
        json!({"type": "conversation.item.added", "event_id": format!("ev_ia_{resp}"),
            "previous_item_id": previous, "item": assistant}),
        json!({"type": "response.output_audio.delta", "event_id": format!("ev_ad_{resp}"),
            "response_id": resp, "item_id": item, "output_index": 0, "content_index": 0,
            "delta": audio.as_str()}),
        json!({"type": "response.output_audio_transcript.delta", "event_id": format!("ev_td_{resp}"),
            "response_id": resp, "item_id": item, "output_index": 0, "content_index": 0,
            "delta": text}),
    ]
}

fn done(resp: &str, item: &str, text: &str) -> serde_json::Value {
    json!({"type": "response.done", "event_id": format!("ev_rd_{resp}"), "response": {
        "object": "realtime.response", "id": resp, "status": "completed",
        "conversation_id": "conv_1", "output_modalities": ["audio"],
        "output": [{"id": item, "object": "realtime.item", "type": "message",
            "status": "completed", "role": "assistant",
            "content": [{"type": "output_audio", "transcript": text}]}],
        "usage": {"total_tokens": 30, "input_tokens": 10, "output_tokens": 20}}})
}

fn order(history: &History) -> Vec<(String, String)> {
    history
        .entries
        .iter()
        .map(|e| {
            let who = match &e.kind {
                EntryKind::Message(Role::User) => "user",
                EntryKind::Message(Role::Assistant) => "assistant",
                _ => "other",
            };
            (who.to_owned(), e.text.clone())
        })
        .collect()
}

#[tokio::test]
async fn a_late_transcript_stays_with_its_user_item_before_the_reply() {
    let (server, script) = scripted::Server::new();
    let session = reelthyme::connect(server.config()).await.unwrap();
    let (mirror, layer) = Mirror::new();
    let (_tx, mut events) = session.with_layer(layer).split();
    let mut watcher = mirror.clone();

    script.push(committed("item_u1", None));
    script.push(user_item("item_u1", None));
    // The answer starts (and speaks) before the user's transcript arrives.
    for event in answer("resp_1", "item_a1", "item_u1", "It is sunny today.") {
        script.push(event);
    }
    until_history(&mut events, &mirror, |h| {
        h.entries.len() == 2 && h.entries[1].text.contains("sunny")
    })
    .await;
    let before = mirror.history();
    assert!(
        before.entries[0].transcribing,
        "the user item waits for its transcript"
    );
    script.push(transcript("item_u1", "What is the weather like?"));
    script.push(done("resp_1", "item_a1", "It is sunny today."));
    let history = until_history(&mut events, &mirror, |h| {
        h.entries.first().is_some_and(|e| !e.text.is_empty())
            && h.entries.get(1).is_some_and(|e| e.complete)
    })
    .await;
    assert_eq!(
        order(&history),
        vec![
            ("user".to_owned(), "What is the weather like?".to_owned()),
            ("assistant".to_owned(), "It is sunny today.".to_owned()),
        ]
    );
    assert!(!history.entries[0].transcribing);
    assert!(history.version > before.version);
    // The watch saw the change.
    let seen = tokio::time::timeout(Duration::from_secs(1), watcher.changed())
        .await
        .expect("a change")
        .unwrap();
    assert!(seen.version >= before.version);
}

#[tokio::test]
async fn two_utterances_in_a_row_keep_their_order_whatever_order_their_transcripts_come_in() {
    let (server, script) = scripted::Server::new();
    let session = reelthyme::connect(server.config()).await.unwrap();
    let (mirror, layer) = Mirror::new();
    let (_tx, mut events) = session.with_layer(layer).split();

    script.push(committed("item_u1", None));
    script.push(user_item("item_u1", None));
    script.push(committed("item_u2", Some("item_u1")));
    script.push(user_item("item_u2", Some("item_u1")));
    for event in answer("resp_1", "item_a1", "item_u2", "Both heard.") {
        script.push(event);
    }
    // The second utterance's transcript first, then the first's, after the answer began.
    script.push(transcript("item_u2", "And in Rome?"));
    script.push(transcript("item_u1", "Weather in Paris?"));
    script.push(done("resp_1", "item_a1", "Both heard."));
    let history = until_history(&mut events, &mirror, |h| {
        h.entries.len() == 3
            && h.entries.iter().all(|e| !e.text.is_empty())
            && h.entries[2].complete
    })
    .await;
    assert_eq!(
        order(&history),
        vec![
            ("user".to_owned(), "Weather in Paris?".to_owned()),
            ("user".to_owned(), "And in Rome?".to_owned()),
            ("assistant".to_owned(), "Both heard.".to_owned()),
        ]
    );
}

#[tokio::test]
async fn truncation_cuts_the_answer_to_what_was_heard_and_deletes_are_applied() {
    let (server, script) = scripted::Server::new();
    let session = reelthyme::connect(server.config()).await.unwrap();
    let (mirror, layer) = Mirror::new();
    let (_tx, mut events) = session.with_layer(layer.retain_audio(1 << 20)).split();
    let text = "one two three four five six seven eight nine ten";
    script.push(committed("item_u1", None));
    script.push(user_item("item_u1", None));
    script.push(transcript("item_u1", "Count to ten."));
    for event in answer("resp_1", "item_a1", "item_u1", text) {
        script.push(event);
    }
    script.push(done("resp_1", "item_a1", text));
    // One second of audio was sent; the user heard half of it.
    script.push(
        json!({"type": "conversation.item.truncated", "event_id": "ev_t",
        "item_id": "item_a1", "content_index": 0, "audio_end_ms": 500}),
    );
    let history = until_history(&mut events, &mirror, |h| {
        h.entries
            .get(1)
            .is_some_and(|e| e.truncated_at_ms.is_some())
    })
    .await;
    let answer = &history.entries[1];
    assert_eq!(answer.truncated_at_ms, Some(500));
    assert_eq!(answer.generated, text);
    assert_eq!(answer.text, "one two three four five");
    // Audio was asked for: the second of it is kept.
    assert_eq!(mirror.audio("item_a1").map(|a| a.len()), Some(48_000));

    script.push(
        json!({"type": "conversation.item.deleted", "event_id": "ev_d", "item_id": "item_u1"}),
    );
    let history = until_history(&mut events, &mirror, |h| h.entries.len() == 1).await;
    assert_eq!(history.entries[0].id, "item_a1");
}

/// Against the simulator, with its input transcription scripted to arrive after the response
/// has started: the user's item still comes before the reply, with its transcript.
#[tokio::test]
async fn over_the_simulator_a_transcript_after_the_reply_began_stays_before_it() {
    use reelthyme::events::ClientEvent;
    use reelthyme_sim::{SimConfig, Simulator};

    let sim = Simulator::start(
        SimConfig::default()
            .speed(50.0)
            .transcripts(["What is the weather like?"])
            .transcript_delay(Duration::from_millis(400)),
    )
    .await
    .unwrap();
    let endpoint = reelthyme::Endpoint::openai("gpt-realtime")
        .base_url(&format!("{}/v1", sim.url()))
        .api_key("sk-test");
    let config = reelthyme::Config::new(endpoint)
        .transcription("gpt-4o-mini-transcribe")
        .transport(sim.in_process());
    let session = reelthyme::connect(config).await.unwrap();
    let (mirror, layer) = Mirror::new();
    let (mut tx, mut events) = session.with_layer(layer).split();
    let mut speech = vec![0_i16; 12_000];
    speech.extend((0..24_000).map(|n| {
        ((f64::from(n) / 24_000.0 * 2.0 * std::f64::consts::PI * 190.0).sin() * 9_000.0) as i16
    }));
    speech.extend(vec![0_i16; 24_000]);
    for chunk in speech.chunks(960) {
        tx.send(ClientEvent::audio_append(chunk)).await.unwrap();
    }
    // The reply is in the history while the user's transcript is still coming.
    let early = until_history(&mut events, &mirror, |h| {
        h.entries.len() >= 2 && h.entries[1].kind == EntryKind::Message(Role::Assistant)
    })
    .await;
    assert_eq!(early.entries[0].kind, EntryKind::Message(Role::User));
    assert!(
        early.entries[0].transcribing && early.entries[0].text.is_empty(),
        "the transcript was not late: {:?}",
        order(&early)
    );
    let history = until_history(&mut events, &mirror, |h| {
        h.entries.first().is_some_and(|e| !e.transcribing)
            && h.entries.get(1).is_some_and(|e| e.complete)
    })
    .await;
    let order = order(&history);
    assert_eq!(
        order[0],
        ("user".to_owned(), "What is the weather like?".to_owned())
    );
    assert_eq!(order[1].0, "assistant");
    assert!(!order[1].1.is_empty());
}
