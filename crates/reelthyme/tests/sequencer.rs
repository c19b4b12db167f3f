//! The response sequencer against the simulator: a user `response.create`, a VAD
//! auto-response and a tool follow-up raced many times with jitter never surface
//! `conversation_already_has_active_response`, and every ticket ends with its own response.

use std::time::Duration;

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ResponseParams, ServerEvent};
use reelthyme::{Config, Endpoint, ResponseOutcome, Sequencer};
use reelthyme_sim::{Match, Recorder, Reply, SimConfig, Simulator};

/// Speech the simulator's VAD hears: silence, a tone, then the silence that ends the turn.
fn speech() -> Vec<i16> {
    let mut out = vec![0_i16; 2_400];
    out.extend((0..12_000).map(|n| {
        ((f64::from(n) / 24_000.0 * 2.0 * std::f64::consts::PI * 190.0).sin() * 9_000.0) as i16
    }));
    out.extend(vec![0_i16; 24_000]);
    out
}

/// A cheap source of jitter (no crate needed for it): 0..max ms.
fn jitter(seed: &mut u64, max: u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    Duration::from_millis(*seed % max.max(1))
}

async fn simulator() -> (Simulator, Recorder) {
    let recorder = Recorder::new();
    let sim = Simulator::start(
        SimConfig::default()
            .speed(200.0)
            .rule(
                Match::Contains("weather".into()),
                Reply::FunctionCall {
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into(),
                },
            )
            .recorder(recorder.clone()),
    )
    .await
    .unwrap();
    (sim, recorder)
}

fn collisions(recorder: &Recorder) -> usize {
    recorder
        .frames()
        .iter()
        .filter(|f| {
            f.from_server && f.json["error"]["code"] == "conversation_already_has_active_response"
        })
        .count()
}

/// One round: a function call is answered (the tool follow-up), the user speaks (VAD
/// answers by itself) and the application asks for a response, in a jittered order.
async fn race(rounds: usize, sequenced: bool, seed: u64) -> (usize, usize, Sequencer) {
    let (sim, recorder) = simulator().await;
    let endpoint = Endpoint::openai("gpt-realtime").base_url(&format!("{}/v1", sim.url()));
    let session = reelthyme::connect(Config::new(endpoint)).await.unwrap();
    let (sequencer, layer) = Sequencer::new();
    let (mut tx, mut events) = session.with_layer(layer).split();
    let mut seed = seed;
    let mut surfaced = 0;
    for _ in 0..rounds {
        // A function call to answer.
        tx.send(ClientEvent::user_text("What is the weather?"))
            .await
            .unwrap();
        let ticket = sequencer.request(ResponseParams::default());
        let call_id = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                tokio::select! {
                    event = events.next() => {
                        if let ServerEvent::ResponseOutputItemDone(done) = event.unwrap().unwrap()
                            && let reelthyme::events::Item::FunctionCall(call) = &done.item
                        {
                            return call.call_id.clone().unwrap_or_default();
                        }
                    }
                }
            }
        })
        .await
        .expect("the call");
        let _ = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(Ok(ServerEvent::ResponseDone(_))) = events.next().await {
                    return;
                }
            }
        })
        .await;
        drop(ticket);
        // The race: the tool's output and follow-up, the user's speech, the app's request.
        let (a, b, c) = (
            jitter(&mut seed, 30),
            jitter(&mut seed, 30),
            jitter(&mut seed, 30),
        );
        let mut tool_tx = tx.clone();
        let mut speech_tx = tx.clone();
        let mut app_tx = tx.clone();
        let (tool_seq, app_seq) = (sequencer.clone(), sequencer.clone());
        let tool = async move {
            tokio::time::sleep(a).await;
            tool_tx
                .send(ClientEvent::function_call_output(call_id, "18 °C"))
                .await
                .unwrap();
            if sequenced {
                Some(tool_seq.request(ResponseParams::default()))
            } else {
                tool_tx.send(ClientEvent::response_create()).await.unwrap();
                None
            }
        };
        let voice = async move {
            tokio::time::sleep(b).await;
            for chunk in speech().chunks(960) {
                speech_tx
                    .send(ClientEvent::audio_append(chunk))
                    .await
                    .unwrap();
            }
        };
        let app = async move {
            tokio::time::sleep(c).await;
            if sequenced {
                Some(app_seq.request(ResponseParams::default()))
            } else {
                app_tx.send(ClientEvent::response_create()).await.unwrap();
                None
            }
        };
        let drive = async {
            let (tool, (), app) = tokio::join!(tool, voice, app);
            (tool, app)
        };
        tokio::pin!(drive);
        let (tool, app) = loop {
            tokio::select! {
                tickets = &mut drive => break tickets,
                event = events.next() => {
                    if let Some(Ok(ServerEvent::Error(e))) = event
                        && e.error.code() == Some("conversation_already_has_active_response")
                    {
                        surfaced += 1;
                    }
                }
            }
        };
        // Every ticket ends with a response of its own; the stream keeps being polled.
        let tickets = async {
            for ticket in tool.into_iter().chain(app) {
                match ticket.await.unwrap() {
                    ResponseOutcome::Done(response) => assert!(response.id.is_some()),
                    other => panic!("{other:?}"),
                }
            }
        };
        tokio::pin!(tickets);
        let settle = tokio::time::sleep(Duration::from_millis(300));
        tokio::pin!(settle);
        let mut tickets_done = false;
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                tokio::select! {
                    () = &mut tickets, if !tickets_done => tickets_done = true,
                    () = &mut settle, if tickets_done => return,
                    event = events.next() => {
                        if let Some(Ok(ServerEvent::Error(e))) = event
                            && e.error.code() == Some("conversation_already_has_active_response")
                        {
                            surfaced += 1;
                        }
                    }
                }
            }
        })
        .await
        .expect("the round's responses end");
    }
    (surfaced, collisions(&recorder), sequencer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_requests_never_surface_an_active_response_error() {
    let (surfaced, refused, sequencer) = race(12, true, 0x9e37_79b9_7f4a_7c15).await;
    eprintln!(
        "sequenced: {surfaced} errors surfaced, {refused} refusals absorbed ({} counted)",
        sequencer.collisions()
    );
    assert_eq!(surfaced, 0);
    assert_eq!(refused as u64, sequencer.collisions());
}

/// The same race with plain senders collides: the test above can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_race_without_the_sequencer_collides() {
    let (surfaced, refused, _) = race(4, false, 0x1234_5678_9abc_def1).await;
    eprintln!("unsequenced: {surfaced} errors surfaced, {refused} refusals");
    assert!(surfaced > 0 && refused > 0);
}

/// Out-of-band requests run beside a default one; a queued request cancelled is
/// withdrawn (the server never sees it), a running one is cancelled by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_band_runs_in_parallel_and_cancels_go_where_they_can() {
    let recorder = Recorder::new();
    let long = "Once upon a time there was a very long story that went on and on. ".repeat(6);
    let sim = Simulator::start(
        SimConfig::default()
            .speed(5.0)
            .rule(Match::Contains("story".into()), Reply::Text(long))
            .recorder(recorder.clone()),
    )
    .await
    .unwrap();
    let endpoint = Endpoint::openai("gpt-realtime").base_url(&format!("{}/v1", sim.url()));
    let session = reelthyme::connect(Config::new(endpoint)).await.unwrap();
    let (sequencer, layer) = Sequencer::new();
    let (mut tx, mut events) = session.with_layer(layer).split();
    tx.send(ClientEvent::user_text("Tell me a story"))
        .await
        .unwrap();
    let story = sequencer.request(ResponseParams::default());
    let queued = sequencer.request(ResponseParams::default());
    let aside = sequencer.request(ResponseParams {
        conversation: Some("none".into()),
        ..ResponseParams::default()
    });
    queued.cancel();
    // Both run at once: the aside does not wait for the story.
    let mut running = 0;
    tokio::time::timeout(Duration::from_secs(30), async {
        while running < 2 {
            match events.next().await.unwrap().unwrap() {
                ServerEvent::ResponseCreated(_) => running += 1,
                ServerEvent::ResponseDone(_) => panic!("a response ended before both started"),
                ServerEvent::Error(e) => panic!("the server refused something: {:?}", e.error),
                _ => {}
            }
        }
    })
    .await
    .expect("both responses start");
    story.cancel();
    let outcomes = async {
        let (aside, story, queued) = tokio::join!(aside, story, queued);
        (aside.unwrap(), story.unwrap(), queued.unwrap())
    };
    tokio::pin!(outcomes);
    let (aside, story, queued) = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            tokio::select! {
                outcomes = &mut outcomes => return outcomes,
                event = events.next() => {
                    if let Some(Ok(ServerEvent::Error(e))) = event {
                        panic!("the server refused something: {:?}", e.error);
                    }
                }
            }
        }
    })
    .await
    .expect("the responses end");
    assert_eq!(queued, ResponseOutcome::Withdrawn);
    let status = |o: &ResponseOutcome| o.response().and_then(|r| r.status.clone());
    assert_eq!(
        status(&aside),
        Some(reelthyme::events::ResponseStatus::Completed)
    );
    assert_eq!(
        status(&story),
        Some(reelthyme::events::ResponseStatus::Cancelled)
    );
    let creates = recorder
        .frames()
        .iter()
        .filter(|f| !f.from_server && f.json["type"] == "response.create")
        .count();
    assert_eq!(creates, 2, "the withdrawn request was never sent");
}

/// The current weather in a city.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct GetWeather {
    city: String,
}

/// What one run of [`tool_layer_race`] saw.
#[derive(Debug)]
struct ToolRace {
    surfaced: usize,
    calls: usize,
    outputs: usize,
    refusals: usize,
    absorbed: u64,
}

/// The race through the real tool layer, on tokio's paused clock (every wait is virtual, so
/// each round is one exact, reproducible interleaving of the seed's jitter): the model
/// calls a tool that takes 0–40 ms, whose output and follow-up race with the user's speech
/// (server VAD answers by itself) and the application's own request — through a sequencer
/// (`Config::sequencer`, the app's requests as tickets), or with plain `response.create`s.
async fn tool_layer_race(sequenced: bool, seed: u64) -> ToolRace {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    const ROUNDS: usize = 16;
    let (sim, recorder) = simulator().await;
    let mut seed = seed;
    let tool_delays: Arc<Mutex<VecDeque<Duration>>> = Arc::default();
    let delays = tool_delays.clone();
    let tool = reelthyme::Tool::new(move |GetWeather { city }| {
        let delay = delays.lock().unwrap().pop_front().unwrap_or_default();
        async move {
            tokio::time::sleep(delay).await;
            Ok(format!("{city}: 18 °C"))
        }
    });
    let (sequencer, layer) = Sequencer::new();
    let endpoint = Endpoint::openai("gpt-realtime").base_url(&format!("{}/v1", sim.url()));
    let mut config = Config::new(endpoint).transport(sim.in_process()).tool(tool);
    if sequenced {
        config = config.sequencer(sequencer.clone());
    }
    let session = reelthyme::connect(config).await.unwrap();
    let (mut tx, mut events) = session.with_layer(layer).split();
    let mut surfaced = 0;
    let mut count = |event: Option<reelthyme::Result<ServerEvent>>| {
        if let Some(Ok(ServerEvent::Error(e))) = event
            && e.error.code() == Some("conversation_already_has_active_response")
        {
            surfaced += 1;
        }
    };
    for _ in 0..ROUNDS {
        tool_delays.lock().unwrap().push_back(jitter(&mut seed, 40));
        let (speak_after, ask_after) = (jitter(&mut seed, 40), jitter(&mut seed, 40));
        tx.send(ClientEvent::user_text("What is the weather?"))
            .await
            .unwrap();
        let asked = if sequenced {
            Some(sequencer.request(ResponseParams::default()))
        } else {
            tx.send(ClientEvent::response_create()).await.unwrap();
            None
        };
        let mut speech_tx = tx.clone();
        let voice = async move {
            tokio::time::sleep(speak_after).await;
            for chunk in speech().chunks(960) {
                speech_tx
                    .send(ClientEvent::audio_append(chunk))
                    .await
                    .unwrap();
            }
        };
        let (app_sequencer, mut app_tx) = (sequencer.clone(), tx.clone());
        // It yields the request's ticket (when sequenced), awaited below with the other.
        #[allow(clippy::async_yields_async)]
        let app = async move {
            tokio::time::sleep(ask_after).await;
            if sequenced {
                Some(app_sequencer.request(ResponseParams::default()))
            } else {
                app_tx.send(ClientEvent::response_create()).await.unwrap();
                None
            }
        };
        let tickets = async {
            let ((), app) = tokio::join!(voice, app);
            for ticket in asked.into_iter().chain(app) {
                match ticket.await.unwrap() {
                    ResponseOutcome::Done(response) => assert!(response.id.is_some()),
                    other => panic!("{other:?}"),
                }
            }
        };
        tokio::pin!(tickets);
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                tokio::select! {
                    () = &mut tickets => return,
                    event = events.next() => count(event),
                }
            }
        })
        .await
        .expect("the round's tickets end");
        // The tool's follow-up and the VAD answer finish too.
        let _ = tokio::time::timeout(Duration::from_millis(800), async {
            loop {
                count(events.next().await);
            }
        })
        .await;
    }
    let frames = recorder.frames();
    let outputs = frames
        .iter()
        .filter(|f| !f.from_server && f.json["item"]["type"] == "function_call_output")
        .count();
    let calls = frames
        .iter()
        .filter(|f| {
            f.from_server
                && f.json["type"] == "response.output_item.done"
                && f.json["item"]["type"] == "function_call"
        })
        .count();
    ToolRace {
        surfaced,
        calls,
        outputs,
        refusals: collisions(&recorder),
        absorbed: sequencer.collisions(),
    }
}

/// Sequenced, no `conversation_already_has_active_response` ever reaches the application;
/// the refusals the sequencer absorbed are the ones in the recording; every call is
/// answered once and every ticket gets its response.
#[tokio::test(start_paused = true)]
async fn the_tool_layer_vad_and_the_app_racing_never_surface_an_active_response_error() {
    let race = tool_layer_race(true, 0x2545_f491_4f6c_dd1d).await;
    eprintln!("sequenced tool layer race: {race:?}");
    assert_eq!(race.surfaced, 0);
    assert!(race.calls >= 16, "{race:?}");
    assert_eq!(race.outputs, race.calls);
    assert_eq!(race.refusals as u64, race.absorbed);
}

/// The same rounds with plain `response.create`s collide, and the errors reach the
/// application: the test above can fail.
#[tokio::test(start_paused = true)]
async fn the_same_tool_layer_race_without_the_sequencer_collides() {
    let race = tool_layer_race(false, 0x2545_f491_4f6c_dd1d).await;
    eprintln!("unsequenced tool layer race: {race:?}");
    assert!(race.surfaced > 0 && race.refusals > 0, "{race:?}");
    assert_eq!(race.outputs, race.calls);
}
