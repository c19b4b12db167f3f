//! The reconnect supervisor over WebRTC (`Config::reconnect` with the WebRTC transport,
//! against the simulator's `POST /v1/realtime/calls`): a call the server drops mid-turn is
//! redialled and the conversation replayed on the new call's session, as over a WebSocket
//! (`tests/reconnect.rs`); an expired call and the client's own close are not redialled.
//!
//! A data channel has no close codes: the server closing it is `Closed` with code 1000
//! (`reelthyme_webrtc`'s crate docs), which a hangup and a dropped call look alike as. The
//! supervisor redials it; a close the server explained first (`session_expired`) it does
//! not.

use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ResponseParams, ServerEvent};
use reelthyme::{
    Config, Endpoint, ErrorKind, Reconnect, ReconnectEvent, ReconnectEvents, Reconnected,
    SessionEvents,
};
use reelthyme_sim::{FaultAction, Faults, Match, Recorder, Reply, Rule, SimConfig, Simulator};
use reelthyme_webrtc::WebRtc;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

async fn simulator(config: SimConfig) -> (Simulator, Recorder, Endpoint) {
    let recorder = Recorder::new();
    let sim = Simulator::start(config.recorder(recorder.clone()))
        .await
        .unwrap();
    let endpoint = Endpoint::openai("gpt-realtime")
        .base_url(&format!("http://{}/v1", sim.addr()))
        .api_key("sk-test");
    (sim, recorder, endpoint)
}

/// A greeting answered at once, a joke answered after 150 ms (room for a kill mid-turn).
fn script() -> SimConfig {
    SimConfig::default()
        .speed(50.0)
        .add_rule(
            Rule::new(
                Match::Contains("joke".into()),
                Reply::Text("Why did the call drop? It lost its channel.".into()),
            )
            .delay(Duration::from_millis(150)),
        )
        .rule(Match::Any, Reply::Text("Hello to you.".into()))
}

fn policy() -> Reconnect {
    Reconnect::default()
        .backoff(Duration::from_millis(10), Duration::from_millis(80))
        .max_elapsed(Duration::from_secs(10))
        .rotate_after(None)
}

fn config(endpoint: Endpoint) -> Config {
    Config::new(endpoint)
        .outgoing(reelthyme::validate)
        .transport(WebRtc::new().audio(false))
        .reconnect(policy())
}

/// How reading to the end of a turn went.
#[derive(Debug)]
enum Turn {
    Done,
    /// The connection was lost with the answer in flight, and replaced.
    Reconnected(Reconnected),
    /// The stream ended with this error (or `None`: without one).
    Ended(Option<reelthyme::Error>),
}

async fn read_turn(events: &mut SessionEvents, reports: &mut ReconnectEvents) -> Turn {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await;
            while let Some(report) = reports.try_recv() {
                match report {
                    ReconnectEvent::Reconnected(done) => return Turn::Reconnected(done),
                    ReconnectEvent::GaveUp { error, .. } => return Turn::Ended(Some(error)),
                    _ => {}
                }
            }
            match event {
                Some(Ok(ServerEvent::ResponseDone(_))) => return Turn::Done,
                Some(Ok(_)) => {}
                Some(Err(error)) if !error.is_fatal() => {}
                Some(Err(error)) => return Turn::Ended(Some(error)),
                None => return Turn::Ended(None),
            }
        }
    })
    .await
    .expect("the turn neither ended nor reconnected in time: a hang")
}

fn session_ids(recorder: &Recorder) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for frame in recorder.frames() {
        if !ids.contains(&frame.session_id) {
            ids.push(frame.session_id.clone());
        }
    }
    ids
}

/// (role, text) of a `conversation.item.create`'s message.
fn message(create: &Value) -> (String, String) {
    let item = &create["item"];
    (
        item["role"].as_str().unwrap_or_default().to_owned(),
        item["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_mid_turn_is_redialled_and_the_conversation_replayed() {
    // The second `response.create` (the joke) is killed 60 ms in: after `response.created`,
    // before its first output. Only the first call is faulted.
    let faults = Faults {
        on_client: Some((
            "response.create".into(),
            2,
            FaultAction::Delayed(Duration::from_millis(60), Box::new(FaultAction::Kill)),
        )),
        sessions: Some(1),
        ..Faults::default()
    };
    let (sim, recorder, endpoint) = simulator(script().faults(faults)).await;
    let session = tokio::time::timeout(WAIT, reelthyme::connect(config(endpoint)))
        .await
        .expect("connect is bounded")
        .unwrap();
    let mut reports = session.sender().reconnect_events();
    let (mut tx, mut events) = session.split();

    tx.send(ClientEvent::user_text("Hello there."))
        .await
        .unwrap();
    tx.send(ClientEvent::response_create_with(ResponseParams::text()))
        .await
        .unwrap();
    assert!(matches!(
        read_turn(&mut events, &mut reports).await,
        Turn::Done
    ));
    tx.send(ClientEvent::user_text("Tell me a joke."))
        .await
        .unwrap();
    tx.send(ClientEvent::response_create_with(ResponseParams::text()))
        .await
        .unwrap();
    let report = match read_turn(&mut events, &mut reports).await {
        Turn::Reconnected(report) => report,
        other => panic!("the dropped call was not redialled: {other:?}"),
    };
    // Honest: the joke's answer was in flight and is reported lost.
    assert!(report.lost_response.is_some(), "{report:?}");
    assert!(!report.state_restored, "{report:?}");
    assert!(!report.rotated, "{report:?}");
    assert_eq!(report.items_replayed, 3, "{report:?}");
    assert!(report.not_replayed.is_empty(), "{report:?}");

    // The next turn is answered, on the new call.
    tx.send(ClientEvent::response_create_with(ResponseParams::text()))
        .await
        .unwrap();
    assert!(matches!(
        read_turn(&mut events, &mut reports).await,
        Turn::Done
    ));
    tx.send(ClientEvent::user_text("Thanks.")).await.unwrap();
    tx.send(ClientEvent::response_create_with(ResponseParams::text()))
        .await
        .unwrap();
    assert!(matches!(
        read_turn(&mut events, &mut reports).await,
        Turn::Done
    ));

    // Two calls, two server sessions; the report names the second.
    assert_eq!(sim.connections().len(), 2);
    let sessions = session_ids(&recorder);
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(report.session_id.as_deref(), Some(sessions[1].as_str()));
    let frames = recorder.frames();
    let second: Vec<_> = frames
        .iter()
        .filter(|f| f.session_id == sessions[1])
        .collect();
    // The new session was given the confirmed session first, then the earlier items in
    // order, each after the one before it.
    let first_sent = second.iter().find(|f| !f.from_server).unwrap();
    assert_eq!(first_sent.json["type"], "session.update");
    let replayed: Vec<&Value> = second
        .iter()
        .filter(|f| !f.from_server && f.json["type"] == "conversation.item.create")
        .map(|f| &f.json)
        .collect();
    let shapes: Vec<_> = replayed.iter().take(3).map(|c| message(c)).collect();
    let said = |role: &str, text: &str| (role.to_owned(), text.to_owned());
    assert_eq!(
        shapes,
        [
            said("user", "Hello there."),
            said("assistant", "Hello to you."),
            said("user", "Tell me a joke."),
        ]
    );
    let mut previous = "root".to_owned();
    for create in &replayed[..3] {
        assert_eq!(create["previous_item_id"], previous.as_str(), "{create}");
        previous = create["item"]["id"].as_str().unwrap().to_owned();
    }
    // The first call's items kept their ids on the second.
    let first_ids: Vec<&str> = frames
        .iter()
        .filter(|f| f.session_id == sessions[0] && f.from_server)
        .filter(|f| f.json["type"] == "conversation.item.added")
        .filter_map(|f| f.json["item"]["id"].as_str())
        .collect();
    for create in &replayed[..3] {
        assert!(
            first_ids.contains(&create["item"]["id"].as_str().unwrap()),
            "{create}"
        );
    }
    // Nothing replayed was refused, and the new session answered the joke and the thanks.
    assert!(
        !second
            .iter()
            .any(|f| f.from_server && f.json["type"] == "error"),
        "the new session refused something"
    );
    let answers: Vec<&str> = second
        .iter()
        .filter(|f| f.from_server && f.json["type"] == "response.output_text.done")
        .filter_map(|f| f.json["text"].as_str())
        .collect();
    assert_eq!(
        answers,
        [
            "Why did the call drop? It lost its channel.",
            "Hello to you."
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_call_is_not_redialled() {
    let (sim, _recorder, endpoint) =
        simulator(script().session_duration(Duration::from_millis(600))).await;
    let session = tokio::time::timeout(WAIT, reelthyme::connect(config(endpoint)))
        .await
        .expect("connect is bounded")
        .unwrap();
    let mut reports = session.sender().reconnect_events();
    let (_tx, mut events) = session.split();
    let end = match read_turn(&mut events, &mut reports).await {
        Turn::Ended(end) => end.expect("the session ended with a verdict"),
        other => panic!("the expired call did not end the session: {other:?}"),
    };
    assert_eq!(end.kind(), ErrorKind::SessionExpired, "{end}");
    assert!(events.next().await.is_none());
    assert!(reports.try_recv().is_none());
    assert_eq!(sim.connections().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_own_close_is_not_redialled() {
    let (sim, _recorder, endpoint) = simulator(script()).await;
    let session = tokio::time::timeout(WAIT, reelthyme::connect(config(endpoint)))
        .await
        .expect("connect is bounded")
        .unwrap();
    let mut reports = session.sender().reconnect_events();
    let (mut tx, mut events) = session.split();
    tx.send(ClientEvent::user_text("Hello there."))
        .await
        .unwrap();
    tx.send(ClientEvent::response_create_with(ResponseParams::text()))
        .await
        .unwrap();
    assert!(matches!(
        read_turn(&mut events, &mut reports).await,
        Turn::Done
    ));
    tokio::time::timeout(WAIT, tx.close())
        .await
        .expect("close is bounded")
        .unwrap();
    let rest = tokio::time::timeout(WAIT, events.collect::<Vec<_>>())
        .await
        .expect("the stream ended after the close");
    assert!(rest.iter().all(Result::is_ok), "{rest:?}");
    assert!(reports.try_recv().is_none());
    assert_eq!(sim.connections().len(), 1);
}
