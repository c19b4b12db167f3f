//! The session core: layers composed around the audio layer, a session that moves to a
//! new connection under its senders, and the facade over a transport implemented in
//! another crate (the simulator's in-process connection: no socket, no port).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, Item, ResponseParams, ResponseStatus, Role, ServerEvent};
use reelthyme::{Config, ErrorKind, Layer, LayerContext, WhenDisconnected};
use reelthyme_sim::{FaultAction, Faults, SimConfig};

mod support;

use support::{WAIT, endpoint, start, until};

/// What a layer saw, shared with the test.
#[derive(Default)]
struct Seen {
    events: Vec<String>,
    /// When each event's frame was read, as the layer was told.
    stamps: Vec<Option<std::time::Instant>>,
    sent: Vec<String>,
    connected: usize,
}

/// Records what passes; optionally answers the first `response.done` by sending an item.
struct Watcher {
    seen: Arc<Mutex<Seen>>,
    answer_once: bool,
}

impl Layer for Watcher {
    fn on_event(&mut self, event: ServerEvent, cx: &mut LayerContext<'_>) -> Option<ServerEvent> {
        let mut seen = self.seen.lock().unwrap();
        seen.events.push(event.type_name().to_owned());
        seen.stamps.push(cx.received_at());
        if self.answer_once && event.type_name() == "response.done" {
            self.answer_once = false;
            // Reacting by sending, through the outbox: no task, no sender of its own.
            cx.send(ClientEvent::user_text("sent by a layer"));
        }
        Some(event)
    }

    fn on_sent(&mut self, event: &ClientEvent, _cx: &mut LayerContext<'_>) {
        self.seen
            .lock()
            .unwrap()
            .sent
            .push(event.type_name().to_owned());
    }

    fn on_connected(&mut self, _cx: &mut LayerContext<'_>) {
        self.seen.lock().unwrap().connected += 1;
    }
}

fn watcher(answer_once: bool) -> (Watcher, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    (
        Watcher {
            seen: seen.clone(),
            answer_once,
        },
        seen,
    )
}

#[cfg(feature = "audio")]
#[tokio::test]
async fn layers_before_and_after_the_audio_layer_each_see_what_they_should() {
    use reelthyme::StreamOptions;
    use reelthyme::audio_io::Player;

    let sim = start(SimConfig::default().speed(50.0)).await.0;
    let session = reelthyme::connect(Config::new(endpoint(&sim)).outgoing(reelthyme::validate))
        .await
        .unwrap();
    let (before, seen_before) = watcher(true);
    let (after, seen_after) = watcher(false);
    let mut tx = session.sender();
    // The test never pulls the clock: the audio just queues in the player.
    let (player, _clock) = Player::with_clock(24_000, 1).unwrap();
    let (events, control) =
        reelthyme::stream_to(session.with_layer(before), player, StreamOptions::default());
    let mut events = events.with_layer(after);

    tx.send(ClientEvent::user_text("Tell me about the weather."))
        .await
        .unwrap();
    tx.send(ClientEvent::response_create()).await.unwrap();
    let mut app = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await.unwrap().unwrap();
            app.push(event.type_name().to_owned());
            // The item the first layer sent in answer to `response.done` reached the
            // server, which added it to the conversation.
            if let ServerEvent::ConversationItemAdded(added) = &event
                && app.iter().any(|t| t == "response.done")
                && matches!(&added.item, Item::Message(m) if m.role == Role::User)
            {
                break;
            }
        }
    })
    .await
    .expect("the layer's item never reached the server");

    let before = seen_before.lock().unwrap();
    let after = seen_after.lock().unwrap();
    let deltas = |events: &[String]| {
        events
            .iter()
            .filter(|t| *t == "response.output_audio.delta")
            .count()
    };
    // Before the audio layer: the audio deltas; after it, and in the app: none of them.
    assert!(deltas(&before.events) > 0, "{:?}", before.events);
    assert_eq!(deltas(&after.events), 0);
    assert_eq!(deltas(&app), 0);
    // Everything else passes through both, in the same order the app sees it.
    let without_deltas: Vec<_> = before
        .events
        .iter()
        .filter(|t| *t != "response.output_audio.delta")
        .cloned()
        .collect();
    assert_eq!(after.events, app);
    assert!(
        without_deltas.starts_with(&app[..app.len() - 1]),
        "{without_deltas:?} vs {app:?}"
    );
    // Both saw every client event: the test's two and the layer's own.
    let expected = [
        "conversation.item.create",
        "response.create",
        "conversation.item.create",
    ];
    assert_eq!(before.sent, expected);
    assert_eq!(after.sent, expected);
    // Every event read from the connection is stamped with its arrival, in order; the
    // `session.created` read while connecting is not.
    assert_eq!(before.stamps[0], None);
    let stamps: Vec<_> = before.stamps[1..]
        .iter()
        .map(|s| s.expect("a stamp"))
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
    assert!(stamps.iter().all(|s| s.elapsed() < WAIT));
    // The audio went to the player: its item is queued there.
    assert!(control.backlog_ms() > 0);
}

#[tokio::test]
async fn clones_of_the_sender_keep_working_when_the_session_moves_to_a_new_connection() {
    let sim = start(SimConfig::default().speed(50.0)).await.0;
    let session = reelthyme::connect(Config::new(endpoint(&sim)))
        .await
        .unwrap();
    let (layer, seen) = watcher(false);
    let session = session.with_layer(layer);
    let first_id = session.id().unwrap();
    let (tx, mut events) = session.split();
    // A clone held by another task, taken before the swap.
    let mut clone = tx.clone();
    let (go, ready) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        ready.await.unwrap();
        clone
            .send(ClientEvent::user_text("Hello after the move"))
            .await?;
        clone
            .send(ClientEvent::response_create_with(ResponseParams::text()))
            .await
    });
    assert_eq!(
        until(&mut events, "session.created").await.type_name(),
        "session.created"
    );

    tx.reconnect().await.unwrap();
    // The new connection's session, with a new id, is live for every sender at once.
    let second_id = tx.session().id.unwrap();
    assert_ne!(second_id, first_id);
    go.send(()).unwrap();
    task.await.unwrap().unwrap();

    // The stream goes on without an error: the old connection's end, then the new
    // `session.created`, then the answer to what the clone sent.
    let created = until(&mut events, "session.created").await;
    let ServerEvent::SessionCreated(created) = created else {
        unreachable!()
    };
    assert_eq!(created.session.id.as_deref(), Some(second_id.as_str()));
    let done = until(&mut events, "response.done").await;
    let ServerEvent::ResponseDone(done) = done else {
        unreachable!()
    };
    assert_eq!(done.response.status, Some(ResponseStatus::Completed));
    assert_eq!(seen.lock().unwrap().connected, 1);
    // The server saw two connections; the old one was closed normally.
    let connections = sim.connections();
    assert_eq!(connections.len(), 2, "{connections:?}");
}

#[tokio::test]
async fn while_disconnected_a_send_waits_for_the_new_connection_or_fails_by_policy() {
    // The simulator drops the connection (no close frame) when it gets a `clear`.
    let faults = Faults {
        on_client: Some(("input_audio_buffer.clear".into(), 1, FaultAction::Kill)),
        ..Faults::default()
    };
    let sim = start(SimConfig::default().speed(50.0).faults(faults))
        .await
        .0;

    // Fail (the default): a send after the end gets the connection's verdict.
    let session = reelthyme::connect(Config::new(endpoint(&sim)))
        .await
        .unwrap();
    let (mut tx, mut events) = session.split();
    tx.send(ClientEvent::audio_clear()).await.unwrap();
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await {
                Some(Err(error)) => return error,
                Some(Ok(_)) => {}
                None => panic!("the stream ended without a verdict"),
            }
        }
    })
    .await
    .unwrap();
    assert!(end.is_fatal());
    let refused = tx.send(ClientEvent::response_create()).await.unwrap_err();
    assert_eq!(refused.kind(), end.kind());

    // Wait: the send made during the outage lands on the connection `reconnect` opens.
    let config = Config::new(endpoint(&sim)).when_disconnected(WhenDisconnected::Wait(WAIT));
    let session = reelthyme::connect(config).await.unwrap();
    let (mut tx, mut events) = session.split();
    tx.send(ClientEvent::audio_clear()).await.unwrap();
    // Let the connection die, then send from another task: it must wait, not fail.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut waiting = tx.clone();
    let send = tokio::spawn(async move {
        waiting
            .send(ClientEvent::user_text("Are you still there?"))
            .await?;
        waiting
            .send(ClientEvent::response_create_with(ResponseParams::text()))
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !send.is_finished(),
        "the send did not wait for a connection"
    );
    tx.reconnect().await.unwrap();
    send.await.unwrap().unwrap();
    // The old connection's end is not the session's: the stream goes on to the answer.
    let mut kinds = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(event) = events.next().await {
            let event = event.expect("the old connection's end was yielded as the session's");
            kinds.push(event.type_name().to_owned());
            if event.type_name() == "response.done" {
                break;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        kinds.iter().filter(|k| *k == "session.created").count(),
        2,
        "{kinds:?}"
    );
    // A reconnect on a closed session is refused.
    tx.close().await.unwrap();
    assert_eq!(tx.reconnect().await.unwrap_err().kind(), ErrorKind::Closed);
}

// --- Over the simulator's in-process transport. ---

#[tokio::test]
async fn a_text_turn_in_process() {
    let sim = start(SimConfig::default().speed(50.0)).await.0;
    let config = Config::new(endpoint(&sim))
        .transport(sim.in_process())
        .outgoing(reelthyme::validate);
    let session = reelthyme::connect(config).await.unwrap();
    assert!(session.id().unwrap().starts_with("sess_"));
    let (mut tx, mut events) = session.split();
    tx.send(ClientEvent::user_text(
        "What is the weather like in Paris today?",
    ))
    .await
    .unwrap();
    tx.send(ClientEvent::response_create_with(ResponseParams::text()))
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(WAIT, async {
        while let Some(event) = events.next().await {
            match event.unwrap() {
                ServerEvent::ResponseOutputTextDelta(delta) => text.push_str(&delta.delta),
                ServerEvent::ResponseDone(_) => break,
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert!(!text.is_empty());
    // The client's close ends the in-process session as it would a socket's.
    tx.close().await.unwrap();
    let rest: Vec<_> = tokio::time::timeout(WAIT, events.collect::<Vec<_>>())
        .await
        .expect("the stream did not end after the close");
    assert!(rest.iter().all(Result::is_ok), "{rest:?}");
}

#[tokio::test]
async fn a_refused_key_in_process_is_the_same_typed_error_as_over_a_socket() {
    let sim = start(SimConfig::default().api_key("sk-right")).await.0;
    let in_process = reelthyme::connect(
        Config::new(endpoint(&sim).api_key("sk-wrong")).transport(sim.in_process()),
    )
    .await
    .unwrap_err();
    let socket = reelthyme::connect(Config::new(endpoint(&sim).api_key("sk-wrong")))
        .await
        .unwrap_err();
    assert_eq!(in_process.kind(), ErrorKind::Auth);
    assert_eq!(
        (
            in_process.kind(),
            in_process.close_code(),
            in_process.code()
        ),
        (socket.kind(), socket.close_code(), socket.code())
    );
}

/// Half a second of silence, then voice-like energy, then silence again: enough for the
/// simulator's VAD to hear a turn.
fn speech() -> Vec<i16> {
    let mut out = vec![0_i16; 12_000];
    out.extend((0..24_000).map(|n| {
        ((f64::from(n) / 24_000.0 * 2.0 * std::f64::consts::PI * 190.0).sin() * 9_000.0) as i16
    }));
    out.extend(vec![0_i16; 24_000]);
    out
}

#[cfg(feature = "audio")]
#[tokio::test]
async fn an_audio_turn_in_process_plays_the_answer() {
    use reelthyme::StreamOptions;
    use reelthyme::audio_io::Player;

    let sim = start(SimConfig::default().speed(50.0)).await.0;
    let config = Config::new(endpoint(&sim)).transport(sim.in_process());
    let session = reelthyme::connect(config).await.unwrap();
    let mut tx = session.sender();
    let (player, mut clock) = Player::with_clock(24_000, 1).unwrap();
    let (mut events, control) = reelthyme::stream_to(session, player, StreamOptions::default());
    for chunk in speech().chunks(960) {
        tx.send(ClientEvent::audio_append(chunk)).await.unwrap();
    }
    let mut kinds = Vec::new();
    let item = tokio::time::timeout(WAIT, async {
        loop {
            let event = events.next().await.unwrap().unwrap();
            kinds.push(event.type_name().to_owned());
            if let ServerEvent::ResponseOutputAudioDone(done) = event {
                return done.item_id;
            }
        }
    })
    .await
    .unwrap();
    // The server heard the speech, answered with audio; the deltas went to the player,
    // not to the application.
    assert!(
        kinds
            .iter()
            .any(|k| k == "input_audio_buffer.speech_started"),
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|k| k == "response.output_audio.delta"));
    let queued = control.backlog_ms();
    assert!(
        queued > 100,
        "only {queued} ms of the answer reached the player"
    );
    // What the device plays is the answer: not silence.
    let mut loudest = 0.0_f32;
    // Paced like a device: the player's feeder thread tops the ring up every ~2 ms, and a
    // pull that finds it empty plays silence.
    for _ in 0..(queued / 100).min(50) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (samples, _) = clock.pull(2_400);
        loudest = samples.iter().fold(loudest, |max, s| max.max(s.abs()));
    }
    assert!(loudest > 0.01, "the device played silence (peak {loudest})");
    assert!(control.played_ms(&item).unwrap_or(0) > 0);
    // Drained only once the device has played the rest.
    let drained = control.drained();
    tokio::pin!(drained);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut drained)
            .await
            .is_err(),
        "drained with {} ms still queued",
        control.backlog_ms()
    );
    // Play the rest (and a little more: `backlog_ms` rounds down), then the future must
    // resolve by being woken, not by being polled again.
    let mut pulls = 0;
    while control.backlog_ms() > 0 || pulls < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        clock.pull(2_400);
        pulls += 1;
        assert!(pulls < 600, "the backlog does not go down");
    }
    tokio::time::timeout(WAIT, drained)
        .await
        .expect("not drained after the device played everything");
    assert_eq!(control.backlog_ms(), 0);
}

// --- Audio on tracks (WebRTC's shape), through a transport of the test's own. ---

/// The simulator's in-process events, plus audio tracks whose far end the test holds: the
/// shape a WebRTC connection has.
#[cfg(feature = "audio")]
#[derive(Debug)]
struct WithTracks {
    events: reelthyme_sim::InProcess,
    far_end: Arc<Mutex<Option<reelthyme::transport::MediaLink>>>,
}

#[cfg(feature = "audio")]
impl reelthyme::Transport for WithTracks {
    fn connect<'a>(
        &'a self,
        endpoint: &'a reelthyme::Endpoint,
        options: &'a reelthyme::Options,
    ) -> reelthyme::transport::Connecting<'a> {
        Box::pin(async move {
            let connection = self.events.connect(endpoint, options).await?;
            let (media, link) = reelthyme::transport::Media::channel(64);
            *self.far_end.lock().unwrap() = Some(link);
            Ok(connection.with_media(media).with_call_id("rtc_test"))
        })
    }
}

#[cfg(feature = "audio")]
#[tokio::test]
async fn over_audio_tracks_the_layer_plays_the_track_and_leaves_truncation_to_the_server() {
    use futures_util::SinkExt;
    use reelthyme::StreamOptions;
    use reelthyme::audio_io::Player;
    use reelthyme::transport::AudioChunk;

    let (sim, recorder) = start(SimConfig::default().speed(50.0)).await;
    let far_end = Arc::new(Mutex::new(None));
    let transport = WithTracks {
        events: sim.in_process(),
        far_end: far_end.clone(),
    };
    let session = reelthyme::connect(Config::new(endpoint(&sim)).transport(transport))
        .await
        .unwrap();
    assert_eq!(session.call_id().as_deref(), Some("rtc_test"));
    let mut tx = session.sender();
    let (player, mut clock) = Player::with_clock(24_000, 1).unwrap();
    let (mut events, control) = reelthyme::stream_to(session, player, StreamOptions::default());
    let mut link = far_end.lock().unwrap().take().unwrap();

    // The server's track: half a second of a tone reaches the player (the stream must be
    // polled for it, as for deltas).
    let tone: Vec<i16> = (0..12_000)
        .map(|n| ((n % 48) * 500 - 12_000) as i16)
        .collect();
    link.incoming
        .send(AudioChunk::new(24_000, tone))
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
    assert!(
        control.backlog_ms() >= 400,
        "{} ms queued",
        control.backlog_ms()
    );

    // The user speaks (the simulator's VAD hears appends): playback stops, and no cancel
    // or truncate is sent — over tracks the server does both.
    let mut speech = vec![0_i16; 12_000];
    speech.extend((0..24_000).map(|n| {
        ((f64::from(n) / 24_000.0 * 2.0 * std::f64::consts::PI * 190.0).sin() * 9_000.0) as i16
    }));
    for chunk in speech.chunks(960) {
        tx.send(ClientEvent::audio_append(chunk)).await.unwrap();
    }
    until(&mut events, "input_audio_buffer.speech_started").await;
    // The device honours the flush at its next callback: 10 ms periods, 200 ms at most —
    // less than the 400 ms queued, so an empty queue means the cut, not the end.
    let mut periods = 0;
    while control.backlog_ms() > 0 && periods < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        clock.pull(240);
        periods += 1;
    }
    assert_eq!(
        control.backlog_ms(),
        0,
        "playback went on after the user spoke"
    );
    let sent: Vec<String> = recorder
        .frames()
        .iter()
        .filter(|f| !f.from_server)
        .map(|f| f.json["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        !sent
            .iter()
            .any(|t| t == "response.cancel" || t == "conversation.item.truncate"),
        "{sent:?}"
    );

    // By hand, a barge-in clears the server's output buffer instead of truncating.
    control.interrupt().await.unwrap();
    tx.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let cleared = recorder
            .frames()
            .iter()
            .any(|f| !f.from_server && f.json["type"] == "output_audio_buffer.clear");
        if cleared {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no output_audio_buffer.clear sent"
        );
        let _ = tokio::time::timeout(Duration::from_millis(20), events.next()).await;
    }
    drop(link);
}
