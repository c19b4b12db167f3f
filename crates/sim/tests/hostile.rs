//! Hostile clients: the spec's example client events, mutated every which way (fields dropped
//! or replaced, wrong types, huge strings, huge and negative numbers, deep nesting, invalid
//! base64, unknown types, truncated JSON) and mixed with binary frames, pings and random
//! text, sent over 16 concurrent connections per case. The simulator must never panic,
//! never drop a connection without a close frame, answer every connection to the end, keep
//! serving a well-behaved client, and keep its memory bounded.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reelthyme_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const CONNECTIONS: usize = 16;
/// Every connection of a case has this long to be served to the end.
const CASE_DEADLINE: Duration = Duration::from_secs(30);
const SENTINEL: &str = "hostile_sentinel";

/// The `example` of every client row of the spec's examples.
fn examples() -> &'static [Value] {
    static EXAMPLES: OnceLock<Vec<Value>> = OnceLock::new();
    EXAMPLES.get_or_init(|| {
        let text = std::fs::read_to_string(reelthyme_testkit::spec_examples()).unwrap();
        let examples: Vec<Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|row| row["direction"] == "client")
            .map(|row| row["example"].clone())
            .collect();
        assert!(examples.len() > 20, "{} client examples", examples.len());
        examples
    })
}

/// A value that does not belong where it is put.
#[derive(Debug, Clone)]
enum Junk {
    Null,
    Bool(bool),
    Int(i64),
    Huge(u64),
    Float(f64),
    Text(String),
    /// A long string of one character.
    Long(usize, char),
    Array(Vec<i64>),
    Object(String),
    /// Not base64 at all, or nearly.
    BadBase64(String),
    /// Arrays nested this deep (past serde_json's recursion limit, sometimes).
    Nested(usize),
}

impl Junk {
    fn value(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => json!(b),
            Self::Int(n) => json!(n),
            Self::Huge(n) => json!(n),
            Self::Float(f) => json!(f),
            Self::Text(s) => json!(s),
            Self::Long(n, c) => Value::String(std::iter::repeat_n(*c, *n).collect()),
            Self::Array(items) => json!(items),
            Self::Object(key) => json!({ key: {"type": key} }),
            Self::BadBase64(s) => json!(s),
            Self::Nested(depth) => {
                let mut value = json!(1);
                for _ in 0..*depth {
                    value = Value::Array(vec![value]);
                }
                value
            }
        }
    }
}

fn junk() -> impl Strategy<Value = Junk> {
    prop_oneof![
        Just(Junk::Null),
        any::<bool>().prop_map(Junk::Bool),
        prop_oneof![
            Just(i64::MIN),
            Just(-1_i64),
            Just(0),
            Just(i64::MAX),
            any::<i64>()
        ]
        .prop_map(Junk::Int),
        prop_oneof![Just(u64::MAX), Just(u64::from(u32::MAX)), any::<u64>()].prop_map(Junk::Huge),
        prop_oneof![
            Just(1e308),
            Just(-1e308),
            Just(1e-300),
            Just(-0.0),
            any::<f64>()
        ]
        .prop_map(Junk::Float),
        ".{0,40}".prop_map(Junk::Text),
        (1_usize..300_000, any::<char>()).prop_map(|(n, c)| Junk::Long(n, c)),
        proptest::collection::vec(any::<i64>(), 0..20).prop_map(Junk::Array),
        "[a-z_.]{1,20}".prop_map(Junk::Object),
        prop_oneof![
            "[A-Za-z0-9+/=!@#$%^&*]{1,64}",
            Just("=".into()),
            Just("==".into()),
            Just("A".into())
        ]
        .prop_map(Junk::BadBase64),
        (1_usize..300).prop_map(Junk::Nested),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Remove the field (or element) at the n-th path.
    Drop(usize),
    /// Put junk at the n-th path.
    Replace(usize, Junk),
    /// An unknown, or almost known, `type`.
    Retype(String),
}

#[derive(Clone)]
enum Frame {
    /// An example, mutated, sent as JSON text (cut short at the fraction, when given).
    Event(usize, Vec<Mutation>, Option<f64>),
    Binary(Vec<u8>),
    /// Random text (rarely JSON).
    Text(String),
    Ping(Vec<u8>),
}

/// Short, so a failing case prints readably.
impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Event(i, mutations, cut) => {
                let kind = examples()[*i]["type"].as_str().unwrap_or("?");
                write!(f, "Event({kind}, {mutations:?}, {cut:?})")
            }
            Self::Binary(bytes) => write!(f, "Binary({} bytes)", bytes.len()),
            Self::Text(text) => write!(f, "Text({} chars)", text.chars().count()),
            Self::Ping(bytes) => write!(f, "Ping({} bytes)", bytes.len()),
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Drop),
        (any::<usize>(), junk()).prop_map(|(n, j)| Mutation::Replace(n, j)),
        prop_oneof![
            "[a-z._]{0,40}",
            Just("response.create ".into()),
            Just("session.close".into()),
            Just("output_audio_buffer.clear".into()),
            Just("transcription_session.update".into()),
        ]
        .prop_map(Mutation::Retype),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    let count = examples().len();
    prop_oneof![
        8 => (
            0..count,
            proptest::collection::vec(mutation(), 0..4),
            proptest::option::weighted(0.1, 0.0..1.0_f64)
        )
            .prop_map(|(i, m, cut)| Frame::Event(i, m, cut)),
        1 => proptest::collection::vec(any::<u8>(), 0..2_000).prop_map(Frame::Binary),
        1 => ".{0,200}".prop_map(Frame::Text),
        1 => proptest::collection::vec(any::<u8>(), 0..125).prop_map(Frame::Ping),
    ]
}

/// JSON pointers to every value inside `value` (the root excluded).
fn paths(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = format!("{at}/{}", key.replace('~', "~0").replace('/', "~1"));
                out.push(path.clone());
                paths(child, path, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let path = format!("{at}/{i}");
                out.push(path.clone());
                paths(child, path, out);
            }
        }
        _ => {}
    }
}

fn mutate(mut value: Value, mutations: &[Mutation]) -> Value {
    for mutation in mutations {
        let mut all = Vec::new();
        paths(&value, String::new(), &mut all);
        match mutation {
            Mutation::Retype(kind) => {
                if let Some(object) = value.as_object_mut() {
                    object.insert("type".into(), json!(kind));
                }
            }
            Mutation::Drop(n) if !all.is_empty() => {
                let path = &all[n % all.len()];
                let (parent, key) = path.rsplit_once('/').expect("paths start with /");
                match value.pointer_mut(parent) {
                    Some(Value::Object(map)) => {
                        map.remove(&key.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(Value::Array(items)) => {
                        if let Ok(i) = key.parse::<usize>()
                            && i < items.len()
                        {
                            items.remove(i);
                        }
                    }
                    _ => {}
                }
            }
            Mutation::Replace(n, junk) if !all.is_empty() => {
                if let Some(slot) = value.pointer_mut(&all[n % all.len()]) {
                    *slot = junk.value();
                }
            }
            Mutation::Drop(_) | Mutation::Replace(..) => {}
        }
    }
    value
}

fn message(frame: &Frame) -> Message {
    match frame {
        Frame::Event(index, mutations, cut) => {
            let text = mutate(examples()[*index].clone(), mutations).to_string();
            let text = match cut {
                Some(fraction) => {
                    let mut end = (text.len() as f64 * fraction) as usize;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text[..end].to_owned()
                }
                None => text,
            };
            Message::text(text)
        }
        Frame::Binary(bytes) => Message::Binary(bytes.clone().into()),
        Frame::Text(text) => Message::text(text.clone()),
        Frame::Ping(bytes) => Message::Ping(bytes.clone().into()),
    }
}

/// How a hostile connection went.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The sentinel was answered, and our close frame got the server's.
    Served,
    /// The server closed first, with this code (the client broke a limit), having answered
    /// the sentinel or not.
    ClosedByServer(Option<u16>, bool),
    /// The connection ended without a close frame: a failure.
    Dropped(String),
}

async fn hostile_session(url: String, frames: Vec<Frame>) -> Outcome {
    let Ok(Ok((ws, _))) = tokio::time::timeout(
        support::WAIT,
        tokio_tungstenite::connect_async(url.as_str()),
    )
    .await
    else {
        return Outcome::Dropped("could not connect".into());
    };
    let (mut tx, mut rx) = ws.split();
    let (seen, mut sentinel_seen) = tokio::sync::watch::channel(false);
    // Read everything, all the time, so the simulator is never held back by us.
    let reader = tokio::spawn(async move {
        loop {
            match rx.next().await {
                Some(Ok(Message::Text(text))) => {
                    if text.as_str().contains(SENTINEL) {
                        let _ = seen.send(true);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let frame = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    return (*seen.borrow(), Some(frame));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return (*seen.borrow(), None),
            }
        }
    });
    let mut last = None;
    for frame in &frames {
        last = Some(frame);
        if tx.send(message(frame)).await.is_err() {
            break;
        }
    }
    let sentinel =
        json!({"type": "conversation.item.delete", "item_id": SENTINEL, "event_id": SENTINEL});
    let _ = tx.send(Message::text(sentinel.to_string())).await;
    // Everything before the sentinel has been handled once it is answered.
    let _ = tokio::time::timeout(support::WAIT, sentinel_seen.wait_for(|seen| *seen)).await;
    let _ = tx
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "done".into(),
        })))
        .await;
    match reader.await {
        Ok((true, Some(Some((1000, reason))))) if reason == "done" => Outcome::Served,
        // Our close echoed, but the sentinel never answered: the session stopped serving.
        Ok((false, Some(Some((_, reason))))) if reason == "done" => {
            Outcome::Dropped("the sentinel was never answered".into())
        }
        Ok((sentinel, Some(frame))) => {
            Outcome::ClosedByServer(frame.map(|(code, _)| code), sentinel)
        }
        Ok((sentinel, None)) => Outcome::Dropped(format!(
            "no close frame (sentinel answered: {sentinel}; last frame sent {last:?})"
        )),
        Err(error) => Outcome::Dropped(format!("reader failed: {error}")),
    }
}

/// Resident memory of this process, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn hostile_clients_never_break_the_simulator() {
    // Any panic anywhere (a session task included) is a failure, even though tokio would
    // catch it.
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    static FIRST: Mutex<Option<String>> = Mutex::new(None);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        FIRST
            .lock()
            .unwrap()
            .get_or_insert_with(|| info.to_string());
        previous(info);
    }));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sim = Arc::new(
        runtime
            .block_on(Simulator::start(SimConfig::default().speed(1_000.0)))
            .unwrap(),
    );
    let url = sim.realtime_url("gpt-realtime");
    let before = rss();
    let sent = AtomicUsize::new(0);
    let served = AtomicUsize::new(0);

    let mut runner = TestRunner::new(Config {
        cases: 3,
        failure_persistence: None,
        max_shrink_iters: 0,
        ..Config::default()
    });
    let sessions =
        proptest::collection::vec(proptest::collection::vec(frame(), 150..250), CONNECTIONS);
    let result = runner.run(&sessions, |sessions| {
        sent.fetch_add(sessions.iter().map(Vec::len).sum(), Ordering::Relaxed);
        let outcomes = runtime.block_on(async {
            let tasks: Vec<_> = sessions
                .into_iter()
                .map(|frames| tokio::spawn(hostile_session(url.clone(), frames)))
                .collect();
            tokio::time::timeout(CASE_DEADLINE, futures_util::future::join_all(tasks)).await
        });
        let Ok(outcomes) = outcomes else {
            return Err(TestCaseError::fail(
                "a connection was not served within the deadline",
            ));
        };
        prop_assert_eq!(
            PANICS.load(Ordering::SeqCst),
            0,
            "{:?}",
            FIRST.lock().unwrap()
        );
        for outcome in outcomes {
            let outcome = outcome.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(!matches!(outcome, Outcome::Dropped(_)), "{outcome:?}");
            if outcome == Outcome::Served {
                served.fetch_add(1, Ordering::Relaxed);
            } else {
                eprintln!("{outcome:?}");
            }
        }
        Ok(())
    });
    result.unwrap();
    assert!(sent.load(Ordering::Relaxed) >= 3 * CONNECTIONS * 150);

    // Still serving: a well-behaved client completes a text turn.
    runtime.block_on(async {
        let mut client = support::Client::connect(&url, &[]).await;
        client.until("session.created").await;
        client
            .send(reelthyme_schema::ClientEvent::user_text("are you well?").to_value())
            .await;
        client
            .send(json!({"type": "response.create", "response": {"output_modalities": ["text"]}}))
            .await;
        let done = client.until("response.done").await;
        assert_eq!(
            done["response"]["output"][0]["content"][0]["text"],
            "You said: are you well?"
        );
    });
    let after = rss();
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "{:?}",
        FIRST.lock().unwrap()
    );
    assert!(
        after < before + (256 << 20) && after < 512 << 20,
        "memory grew from {} MB to {} MB",
        before >> 20,
        after >> 20
    );
    eprintln!(
        "{} hostile frames over {} connections ({} served to the end); RSS {} MB -> {} MB",
        sent.load(Ordering::Relaxed),
        3 * CONNECTIONS,
        served.load(Ordering::Relaxed),
        before >> 20,
        after >> 20
    );
    drop(sim);
}
