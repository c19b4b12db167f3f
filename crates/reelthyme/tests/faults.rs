//! The fault matrix: one table, one row per way a server or a network can fail, each with
//! the outcome the client must show (which typed error, within what bound). Every row also
//! checks that nothing hangs (every wait is bounded), nothing panics, and no client event
//! is lost without a report: what the server read is a prefix of what the client sent, and
//! what the terminal error lists as unsent is its suffix, in order. (Between the two lie
//! frames the client wrote to the socket that the server did not read before it closed:
//! no client can know of those. `crates/transport/tests/connection.rs` checks the exact
//! partition against a server that reads until its socket ends.)
//!
//! DNS failures have no row: a lookup here goes to a resolver off loopback, which tests may
//! not reach. A refused connection exercises the same path (`ErrorKind::Connect` from the
//! TCP connect).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reelthyme::events::{ClientEvent, ServerEvent};
use reelthyme::{Config, Endpoint, ErrorKind, Options, WebSocket};
use reelthyme_sim::{FaultAction, Faults, Match, Recorder, Reply, SimConfig, Simulator};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Raw = fn(TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Who answers.
#[allow(clippy::large_enum_variant)] // a table of a few dozen rows
enum Server {
    Sim(SimConfig),
    /// A raw TCP server scripted by the row.
    Raw(Raw),
    /// Nothing listens on the port.
    Refused,
}

/// What the client does once connected.
#[derive(Clone, Copy)]
enum Drive {
    /// Only connect.
    Connect,
    /// A text turn: a user message and `response.create`, then read to the end.
    TextTurn,
    /// 40 ms appends, 200 of them, while reading.
    Appends,
    /// A text turn whose events are not read for 1.5 s (backpressure), then read.
    SlowConsumer,
    /// Sends big appends without reading events (a stalled server must not hold it).
    Flood,
    /// One append over the server's message limit.
    Oversize,
}

/// What must come of it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// `connect` fails so.
    ConnectFails(ErrorKind, Option<u16>),
    /// The session runs, then ends with this fatal error.
    Ends(ErrorKind, Option<u16>),
    /// The session runs, then ends cleanly (close 1000): later sends fail.
    EndsClean,
    /// The turn completes (`response.done`); `non_fatal` errors were yielded on the way.
    Completes { non_fatal: bool },
}

struct Row {
    name: &'static str,
    server: Server,
    drive: Drive,
    expect: Expect,
    /// The outcome is expected within this (from the start of the row); over it is noted,
    /// not failed (wall-clock time on a loaded machine); twice it and 10 s more is a hang.
    within: Duration,
}

fn sim(faults: Faults) -> Server {
    Server::Sim(SimConfig::default().speed(20.0).faults(faults))
}

fn on_client(kind: &str, nth: usize, action: FaultAction) -> Faults {
    Faults {
        on_client: Some((kind.into(), nth, action)),
        ..Faults::default()
    }
}

fn mid_response(action: FaultAction) -> Faults {
    on_client(
        "response.create",
        1,
        FaultAction::Delayed(Duration::from_millis(100), Box::new(action)),
    )
}

fn close(code: u16) -> FaultAction {
    FaultAction::Close(code, "fault".into())
}

fn long_answer() -> SimConfig {
    SimConfig::default().speed(20.0).rule(
        Match::Any,
        Reply::Text("A long answer that goes on. ".repeat(30)),
    )
}

fn rows() -> Vec<Row> {
    use ErrorKind::*;
    let s = Duration::from_secs;
    let before_created = |code: u16| Faults {
        close_before_session_created: Some((code, "fault".into())),
        ..Faults::default()
    };
    vec![
        // Before `session.created`.
        Row {
            name: "close 1000 before session.created",
            server: sim(before_created(1000)),
            drive: Drive::Connect,
            expect: Expect::ConnectFails(Closed, None),
            within: s(3),
        },
        Row {
            name: "close 1001 before session.created",
            server: sim(before_created(1001)),
            drive: Drive::Connect,
            expect: Expect::ConnectFails(Closed, Some(1001)),
            within: s(3),
        },
        Row {
            name: "close 1011 before session.created",
            server: sim(before_created(1011)),
            drive: Drive::Connect,
            expect: Expect::ConnectFails(Closed, Some(1011)),
            within: s(3),
        },
        Row {
            name: "close 3000 before session.created",
            server: sim(before_created(3000)),
            drive: Drive::Connect,
            expect: Expect::ConnectFails(Auth, Some(3000)),
            within: s(3),
        },
        Row {
            name: "close 4000 before session.created",
            server: sim(before_created(4000)),
            drive: Drive::Connect,
            expect: Expect::ConnectFails(InvalidRequest, Some(4000)),
            within: s(3),
        },
        Row {
            name: "socket killed (1006) before session.created",
            server: sim(Faults {
                kill_after: Some(0),
                ..Faults::default()
            }),
            drive: Drive::Connect,
            expect: Expect::ConnectFails(Closed, Some(1006)),
            within: s(3),
        },
        Row {
            name: "wrong key: invalid_api_key + 3000",
            server: Server::Sim(SimConfig::default().api_key("sk-right")),
            drive: Drive::Connect,
            expect: Expect::ConnectFails(Auth, Some(3000)),
            within: s(3),
        },
        Row {
            name: "unknown model: 4000",
            server: Server::Sim(SimConfig::default().models(["gpt-other"])),
            drive: Drive::Connect,
            expect: Expect::ConnectFails(InvalidRequest, Some(4000)),
            within: s(3),
        },
        Row {
            name: "connection refused",
            server: Server::Refused,
            drive: Drive::Connect,
            expect: Expect::ConnectFails(Connect, None),
            within: s(3),
        },
        Row {
            name: "upgrade never answered",
            server: Server::Raw(never_answers),
            drive: Drive::Connect,
            expect: Expect::ConnectFails(Timeout, None),
            within: s(3),
        },
        Row {
            name: "upgrade answered with HTTP 500",
            server: Server::Raw(http_500),
            drive: Drive::Connect,
            expect: Expect::ConnectFails(Connect, None),
            within: s(3),
        },
        Row {
            name: "upgrade answered with HTTP 404",
            server: Server::Raw(http_404),
            drive: Drive::Connect,
            expect: Expect::ConnectFails(Connect, None),
            within: s(3),
        },
        Row {
            name: "101 without a valid Sec-WebSocket-Accept",
            server: Server::Raw(bad_accept),
            drive: Drive::Connect,
            expect: Expect::ConnectFails(Protocol, None),
            within: s(3),
        },
        Row {
            name: "TCP closed during the upgrade",
            server: Server::Raw(hang_up),
            drive: Drive::Connect,
            expect: Expect::ConnectFails(Connect, None),
            within: s(3),
        },
        // Mid-response.
        Row {
            name: "close 1000 mid-response",
            server: Server::Sim(long_answer().faults(mid_response(close(1000)))),
            drive: Drive::TextTurn,
            expect: Expect::EndsClean,
            within: s(5),
        },
        Row {
            name: "close 1001 mid-response",
            server: Server::Sim(long_answer().faults(mid_response(close(1001)))),
            drive: Drive::TextTurn,
            expect: Expect::Ends(Closed, Some(1001)),
            within: s(5),
        },
        Row {
            name: "socket killed (1006) mid-response",
            server: Server::Sim(long_answer().faults(mid_response(FaultAction::Kill))),
            drive: Drive::TextTurn,
            expect: Expect::Ends(Closed, Some(1006)),
            within: s(5),
        },
        Row {
            name: "close 1011 mid-response",
            server: Server::Sim(long_answer().faults(mid_response(close(1011)))),
            drive: Drive::TextTurn,
            expect: Expect::Ends(Closed, Some(1011)),
            within: s(5),
        },
        Row {
            name: "close 3000 mid-response",
            server: Server::Sim(long_answer().faults(mid_response(close(3000)))),
            drive: Drive::TextTurn,
            expect: Expect::Ends(Auth, Some(3000)),
            within: s(5),
        },
        Row {
            name: "close 4000 mid-response",
            server: Server::Sim(long_answer().faults(mid_response(close(4000)))),
            drive: Drive::TextTurn,
            expect: Expect::Ends(InvalidRequest, Some(4000)),
            within: s(5),
        },
        // Mid-append.
        Row {
            name: "close 1000 mid-append",
            server: sim(on_client("input_audio_buffer.append", 20, close(1000))),
            drive: Drive::Appends,
            expect: Expect::EndsClean,
            within: s(5),
        },
        Row {
            name: "close 1001 mid-append",
            server: sim(on_client("input_audio_buffer.append", 20, close(1001))),
            drive: Drive::Appends,
            expect: Expect::Ends(Closed, Some(1001)),
            within: s(5),
        },
        Row {
            name: "socket killed (1006) mid-append",
            server: sim(on_client(
                "input_audio_buffer.append",
                20,
                FaultAction::Kill,
            )),
            drive: Drive::Appends,
            expect: Expect::Ends(Closed, Some(1006)),
            within: s(5),
        },
        Row {
            name: "close 1011 mid-append",
            server: sim(on_client("input_audio_buffer.append", 20, close(1011))),
            drive: Drive::Appends,
            expect: Expect::Ends(Closed, Some(1011)),
            within: s(5),
        },
        Row {
            name: "close 3000 mid-append",
            server: sim(on_client("input_audio_buffer.append", 20, close(3000))),
            drive: Drive::Appends,
            expect: Expect::Ends(Auth, Some(3000)),
            within: s(5),
        },
        Row {
            name: "close 4000 mid-append",
            server: sim(on_client("input_audio_buffer.append", 20, close(4000))),
            drive: Drive::Appends,
            expect: Expect::Ends(InvalidRequest, Some(4000)),
            within: s(5),
        },
        // Bad frames: recoverable, the turn goes on.
        Row {
            name: "a frame that is not JSON",
            server: sim(Faults {
                malformed_after: Some(3),
                ..Faults::default()
            }),
            drive: Drive::TextTurn,
            expect: Expect::Completes { non_fatal: true },
            within: s(5),
        },
        Row {
            name: "a binary frame",
            server: sim(Faults {
                binary_after: Some(3),
                ..Faults::default()
            }),
            drive: Drive::TextTurn,
            expect: Expect::Completes { non_fatal: true },
            within: s(5),
        },
        Row {
            name: "a frame over the message limit",
            server: Server::Raw(oversized_frame),
            drive: Drive::TextTurn,
            expect: Expect::Ends(Protocol, None),
            within: s(5),
        },
        // Stalls and pressure.
        Row {
            name: "stalled peer (no data, no pongs)",
            server: sim(Faults {
                stall_after: Some(3),
                ..Faults::default()
            }),
            drive: Drive::TextTurn,
            expect: Expect::Ends(Timeout, None),
            within: s(3),
        },
        Row {
            name: "stalled peer while the client floods sends",
            server: sim(on_client(
                "input_audio_buffer.append",
                1,
                FaultAction::Stall,
            )),
            drive: Drive::Flood,
            expect: Expect::Ends(Timeout, None),
            within: s(5),
        },
        Row {
            name: "slow consumer (backpressure, nothing lost)",
            server: Server::Sim(long_answer()),
            drive: Drive::SlowConsumer,
            expect: Expect::Completes { non_fatal: false },
            within: s(10),
        },
        Row {
            name: "session_expired",
            server: Server::Sim(long_answer().session_duration(Duration::from_millis(400))),
            drive: Drive::TextTurn,
            expect: Expect::Ends(SessionExpired, Some(1001)),
            within: s(5),
        },
        Row {
            name: "an append over the server's limit: error + 1009",
            server: sim(Faults::default()),
            drive: Drive::Oversize,
            expect: Expect::Ends(Protocol, Some(1009)),
            within: s(15),
        },
    ]
}

fn never_answers(mut tcp: TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let mut buf = [0; 4096];
        let _ = tcp.read(&mut buf).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
}

fn respond(mut tcp: TcpStream, response: String) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let mut buf = [0; 4096];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp.write_all(response.as_bytes()).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
}

fn http_500(tcp: TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let body = r#"{"error":{"type":"server_error","code":null,"message":"boom"}}"#;
    respond(
        tcp,
        format!(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn http_404(tcp: TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    respond(
        tcp,
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".into(),
    )
}

fn bad_accept(tcp: TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    respond(
        tcp,
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: bm9wZQ==\r\n\r\n".into(),
    )
}

fn hang_up(mut tcp: TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let mut buf = [0; 4096];
        let _ = tcp.read(&mut buf).await;
        drop(tcp);
    })
}

fn oversized_frame(tcp: TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        use futures_util::SinkExt;
        use tokio_tungstenite::tungstenite::Message;
        let created = r#"{"type":"session.created","event_id":"e0","session":{"type":"realtime","id":"sess_1"}}"#;
        let _ = ws.send(Message::text(created)).await;
        let _ = ws.next().await; // the user's message
        let big = format!(r#"{{"type":"x","pad":"{}"}}"#, "a".repeat(12 << 20));
        let _ = ws.send(Message::text(big)).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
    })
}

/// What a row showed.
#[derive(Debug)]
struct Outcome {
    result: Expect,
    /// Client events sent (their `event_id`s), what the server recorded, what was unsent.
    sent: Vec<String>,
    recorded: Option<Vec<String>>,
    unsent: Vec<String>,
    /// The error that ended it, as it reads (for a failing row's report).
    why: String,
}

fn event_id_of(frame: &str) -> Option<String> {
    serde_json::from_str::<Value>(frame).ok()?["event_id"]
        .as_str()
        .map(str::to_owned)
}

async fn run(row: Row) -> Result<Outcome, String> {
    let recorder = Recorder::new();
    let (endpoint, _sim) = match row.server {
        Server::Sim(config) => {
            let sim = Simulator::start(config.recorder(recorder.clone()))
                .await
                .map_err(|e| e.to_string())?;
            let endpoint = Endpoint::openai("gpt-realtime")
                .base_url(&format!("{}/v1", sim.url()))
                .api_key("sk-wrong-or-any");
            (endpoint, Some(sim))
        }
        Server::Raw(script) => {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move {
                if let Ok((tcp, _)) = listener.accept().await {
                    script(tcp).await;
                }
            });
            (local(port), None)
        }
        Server::Refused => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            drop(listener);
            (local(port), None)
        }
    };
    let options = Options::default()
        .connect_timeout(Duration::from_millis(1500))
        .close_timeout(Duration::from_millis(500));
    // A dead peer is declared after 1.5 s of silence in the rows about dead peers. Every
    // other row gets 20 s: on a loaded 2-core machine the simulator (in this process) can
    // fall silent for 1.5 s while alive, and the row would see a Timeout that is the
    // machine's, not the fault's.
    let dead_after = if row.expect == Expect::Ends(ErrorKind::Timeout, None) {
        Duration::from_millis(1500)
    } else {
        Duration::from_secs(20)
    };
    let websocket = WebSocket::new().keepalive(Duration::from_millis(100), dead_after);
    let config = Config::new(endpoint).options(options).transport(websocket);
    let session = match reelthyme::connect(config).await {
        Err(error) => {
            return Ok(Outcome {
                result: Expect::ConnectFails(error.kind(), error.close_code()),
                sent: Vec::new(),
                recorded: None,
                unsent: Vec::new(),
                why: error.to_string(),
            });
        }
        Ok(session) => session,
    };
    let (mut tx, mut events) = session.split();
    let mut sent = Vec::new();
    let mut next_id = 0;
    let mut id = || {
        next_id += 1;
        format!("evt_client_{next_id}")
    };
    let mut non_fatal = false;
    let mut end = None;
    let mut send = |event: ClientEvent, sent: &mut Vec<String>| {
        let id = id();
        sent.push(id.clone());
        event.with_event_id(id)
    };
    match row.drive {
        Drive::Connect => {
            return Ok(Outcome {
                result: Expect::Completes { non_fatal: false },
                sent,
                recorded: None,
                unsent: Vec::new(),
                why: String::new(),
            });
        }
        Drive::TextTurn | Drive::SlowConsumer => {
            let _ = tx
                .send(send(ClientEvent::user_text("Hello"), &mut sent))
                .await;
            let _ = tx
                .send(send(ClientEvent::response_create(), &mut sent))
                .await;
            if matches!(row.drive, Drive::SlowConsumer) {
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
        }
        Drive::Appends => {
            let chunk = vec![0_i16; 960];
            for _ in 0..200 {
                if tx
                    .send(send(ClientEvent::audio_append(&chunk), &mut sent))
                    .await
                    .is_err()
                {
                    sent.pop();
                    break;
                }
            }
        }
        Drive::Flood => {
            let chunk = vec![0_i16; 48_000];
            loop {
                if let Err(error) = tx
                    .send(send(ClientEvent::audio_append(&chunk), &mut sent))
                    .await
                {
                    sent.pop();
                    end = Some(error);
                    break;
                }
            }
        }
        Drive::Oversize => {
            let huge = vec![1_i16; 6 << 20]; // 12 MiB of PCM, 16 MiB of base64
            let _ = tx
                .send(send(ClientEvent::audio_append(&huge), &mut sent))
                .await;
        }
    }
    let mut completed = false;
    if end.is_none() {
        while let Some(event) = events.next().await {
            match event {
                Ok(ServerEvent::ResponseDone(_))
                    if !matches!(row.expect, Expect::Ends(..) | Expect::EndsClean) =>
                {
                    completed = true;
                    break;
                }
                Ok(_) => {}
                Err(error) if !error.is_fatal() => non_fatal = true,
                Err(error) => {
                    end = Some(error);
                    break;
                }
            }
        }
    }
    let result = match (&end, completed) {
        // A normal close that found frames still queued reports them: still a clean end.
        (Some(error), _) if error.close_code() == Some(1000) && !error.unsent().is_empty() => {
            Expect::EndsClean
        }
        (Some(error), _) => Expect::Ends(error.kind(), error.close_code()),
        (None, true) => Expect::Completes { non_fatal },
        (None, false) => {
            // The stream ended cleanly: a later send must say the connection is closed.
            match tx.send(ClientEvent::response_create()).await {
                Err(_) => Expect::EndsClean,
                Ok(()) => return Err("a send after a clean end succeeded".into()),
            }
        }
    };
    let unsent = end
        .as_ref()
        .map(|e| e.unsent().iter().filter_map(|f| event_id_of(f)).collect())
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(50)).await; // let the server's reader finish
    let recorded = _sim.as_ref().map(|_| {
        recorder
            .frames()
            .into_iter()
            .filter(|f| !f.from_server)
            .filter_map(|f| f.json["event_id"].as_str().map(str::to_owned))
            .collect()
    });
    let why = end.as_ref().map(ToString::to_string).unwrap_or_default();
    Ok(Outcome {
        result,
        sent,
        recorded,
        unsent,
        why,
    })
}

fn local(port: u16) -> Endpoint {
    Endpoint::openai("gpt-realtime")
        .base_url(&format!("http://127.0.0.1:{port}/v1"))
        .api_key("sk-test")
}

/// Checks that every sent event was recorded by the server or reported unsent, in order.
fn accounted(outcome: &Outcome) -> Result<(), String> {
    let Some(recorded) = &outcome.recorded else {
        return Ok(());
    };
    let sent = &outcome.sent;
    // What the server read is a prefix of what was sent, what was unsent a suffix.
    if !sent.starts_with(recorded) {
        return Err(format!(
            "the server read {recorded:?}, not a prefix of {sent:?}"
        ));
    }
    if !sent.ends_with(&outcome.unsent) {
        return Err("the unsent frames are not the last ones sent".into());
    }
    // A frame whose write was interrupted may be in both; no other.
    let overlap = recorded.len() + outcome.unsent.len();
    if overlap > sent.len() + 1 {
        return Err(format!(
            "{} frames both read by the server and reported unsent",
            overlap - sent.len()
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_matrix() {
    let rows = rows();
    assert!(rows.len() >= 25, "{} rows", rows.len());
    let checks = rows.into_iter().map(|row| async move {
        let (name, expect, within) = (row.name, row.expect, row.within);
        let started = Instant::now();
        // Generous over the row's bound: a hang shows as a failed row, not a stuck test.
        let hang = within * 2 + Duration::from_secs(10);
        let outcome = tokio::time::timeout(hang, run(row)).await;
        let took = started.elapsed();
        let verdict = match outcome {
            Err(_) => Err(format!("hung (> {} s)", hang.as_secs())),
            Ok(Err(error)) => Err(error),
            Ok(Ok(outcome)) if outcome.result != expect => Err(format!(
                "expected {expect:?}, got {:?} ({})",
                outcome.result, outcome.why
            )),
            // The row's bound is not asserted on the wall clock (a loaded machine stretches
            // it); a hang is, above. A row over its bound is only noted.
            Ok(Ok(outcome)) => accounted(&outcome),
        };
        (name, took, within, verdict)
    });
    // One after the other: rows that flood or stall must not starve the others' clocks.
    let mut results = Vec::new();
    for check in checks {
        results.push(check.await);
    }
    let mut failed = 0;
    for (name, took, within, verdict) in &results {
        match verdict {
            Ok(()) if took > within => eprintln!(
                "ok    {name:<50} {:>5} ms  (over its {} ms bound: a loaded machine?)",
                took.as_millis(),
                within.as_millis()
            ),
            Ok(()) => eprintln!("ok    {name:<50} {:>5} ms", took.as_millis()),
            Err(why) => {
                failed += 1;
                eprintln!("FAIL  {name:<50} {:>5} ms  {why}", took.as_millis());
            }
        }
    }
    assert_eq!(failed, 0, "{failed} of {} rows failed", results.len());
}
