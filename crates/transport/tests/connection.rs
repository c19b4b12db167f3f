//! The connection's contract against hostile or broken servers, each a raw WebSocket server
//! on loopback scripted by the test: writes bounded when the server stops reading, memory
//! bounded in bytes, unsent frames reported, the close handshake both ways, and `Sink`
//! close acting on the connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reelthyme_transport::{Endpoint, ErrorKind, Options, WebSocket, connect};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Server = WebSocketStream<tokio::net::TcpStream>;

/// A server that runs `script` on the first connection; returns the endpoint to reach it.
async fn serve<F, Fut>(script: F) -> Endpoint
where
    F: FnOnce(Server) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        script(socket).await;
    });
    Endpoint::openai("gpt-realtime")
        .base_url(&format!("http://127.0.0.1:{port}/v1"))
        .api_key("sk-test")
}

fn big_frame(bytes: usize) -> String {
    format!(r#"{{"type":"x","pad":"{}"}}"#, "a".repeat(bytes))
}

/// Review finding 6: a server that stops reading (and answering) while the consumer does
/// not read either. The sender must get an error within the dead-peer bound, not hang.
#[tokio::test]
async fn a_sender_gets_an_error_when_the_server_stops_reading_even_if_nobody_reads_events() {
    let endpoint = serve(|mut server| async move {
        for _ in 0..3 {
            server
                .send(Message::text(r#"{"type":"error"}"#))
                .await
                .unwrap();
        }
        // Stall: keep the socket open, read nothing, answer nothing.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(server);
    })
    .await;
    let options = Options::default().receive_queue(1).send_queue(1);
    let connection = WebSocket::new()
        .keepalive(Duration::from_millis(50), Duration::from_millis(300))
        .open(&endpoint, &options)
        .await
        .unwrap();
    let (mut sender, _events) = (connection.sender, connection.receiver);
    let failed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Err(error) = sender.send(big_frame(1 << 20)).await {
                return error;
            }
        }
    })
    .await
    .expect("the sender hung against a server that stopped reading");
    assert!(
        matches!(failed.kind(), ErrorKind::Timeout | ErrorKind::Closed),
        "{failed:?}"
    );
    assert!(failed.is_fatal());
}

/// Review finding 11: memory is bounded in bytes, not in frames x message size. A server
/// that pushes 1 MiB frames at a consumer that never reads is held back after a few MiB.
#[tokio::test]
async fn a_fast_server_is_held_back_after_the_byte_budget_not_after_hundreds_of_frames() {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let endpoint = serve(move |mut server| async move {
        let frame = big_frame(1 << 20);
        for _ in 0..300 {
            let send = server.send(Message::text(frame.clone()));
            if tokio::time::timeout(Duration::from_millis(700), send)
                .await
                .is_err()
            {
                return; // held back
            }
            counter.fetch_add(1, Ordering::SeqCst);
        }
    })
    .await;
    let options = Options::default().receive_bytes(4 << 20);
    let _connection = connect(&endpoint, &options).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let frames = sent.load(Ordering::SeqCst);
    // 4 MiB in the queue plus what the kernel's socket buffers hold; the old bound was the
    // 256-frame queue (256 MiB here).
    assert!(
        frames < 40,
        "the server wrote {frames} MiB into a consumer that never reads"
    );
}

/// A message over the size cap ends the connection with a protocol error instead of being
/// buffered.
#[tokio::test]
async fn a_message_over_the_size_cap_is_a_protocol_error() {
    let endpoint = serve(|mut server| async move {
        let _ = server.send(Message::text(big_frame(2 << 20))).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let mut connection = WebSocket::new()
        .max_message_size(1 << 20)
        .open(&endpoint, &Options::default())
        .await
        .unwrap();
    let item = tokio::time::timeout(Duration::from_secs(5), connection.receiver.next())
        .await
        .expect("no verdict")
        .expect("an item");
    let error = item.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Protocol, "{error}");
    assert!(error.is_fatal());
}

/// Review finding 14: frames accepted by `send` but never written are reported, in order;
/// together with what the server received they are exactly what was sent.
#[tokio::test]
async fn frames_queued_when_the_server_closes_are_reported_unsent_in_order() {
    let received = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = received.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let endpoint = serve(move |mut server| async move {
        let mut count = 0;
        while let Some(Ok(message)) = server.next().await {
            if let Message::Text(text) = message {
                log.lock().unwrap().push(text.to_string());
                count += 1;
                if count == 2 {
                    let frame = CloseFrame {
                        code: CloseCode::Error,
                        reason: "x".into(),
                    };
                    let _ = server.send(Message::Close(Some(frame))).await;
                }
            }
        }
        let _ = done_tx.send(());
    })
    .await;
    let options = Options::default().send_queue(512);
    let mut connection = connect(&endpoint, &options).await.unwrap();
    let frames: Vec<String> = (0..300)
        .map(|i| format!(r#"{{"type":"input_audio_buffer.clear","event_id":"e{i}"}}"#))
        .collect();
    for frame in &frames {
        connection.sender.send(frame.clone()).await.unwrap();
    }
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match connection.receiver.next().await {
                Some(Err(error)) => return error,
                Some(Ok(_)) => {}
                None => panic!("the stream ended without saying frames were lost"),
            }
        }
    })
    .await
    .expect("no verdict");
    assert_eq!(end.close_code(), Some(1011), "{end:?}");
    let unsent = end.unsent().to_vec();
    assert!(!unsent.is_empty(), "the server read only a few frames");
    // Everything the client wrote has been read once the server's socket ends.
    tokio::time::timeout(Duration::from_secs(5), done_rx)
        .await
        .expect("the server kept its socket open")
        .unwrap();
    let received = received.lock().unwrap().clone();
    // Written frames come first, unsent ones after; a frame whose write was interrupted may
    // appear in both.
    let overlap = usize::from(received.last() == unsent.first());
    assert_eq!(received.len() + unsent.len() - overlap, frames.len());
    let mut joined = received.clone();
    joined.extend(unsent.into_iter().skip(overlap));
    assert_eq!(joined, frames);
    // A later send learns the same verdict, with the same report.
    let late = connection.sender.send("{}".into()).await.unwrap_err();
    assert_eq!(late.close_code(), Some(1011));
    assert_eq!(late.unsent().len(), end.unsent().len());
}

/// RFC 6455 §5.5.1 from the client's side: `close()` returns once the server has answered
/// the close frame, not when the close is queued.
#[tokio::test]
async fn close_waits_for_the_servers_close_frame() {
    let answered = Arc::new(AtomicBool::new(false));
    let flag = answered.clone();
    let endpoint = serve(move |mut server| async move {
        while let Some(Ok(message)) = server.next().await {
            if let Message::Close(_) = message {
                tokio::time::sleep(Duration::from_millis(300)).await;
                flag.store(true, Ordering::SeqCst);
                // tungstenite queued the answer; flushing writes it.
                let _ = server.flush().await;
            }
        }
    })
    .await;
    let mut connection = connect(&endpoint, &Options::default()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), connection.sender.close())
        .await
        .expect("close hung")
        .unwrap();
    assert!(
        answered.load(Ordering::SeqCst),
        "close() returned before the server answered"
    );
    // The stream ends cleanly.
    let rest: Vec<_> = connection.receiver.collect().await;
    assert!(rest.iter().all(Result::is_ok), "{rest:?}");
}

/// A server that never answers the close: `close()` gives up after the close timeout.
#[tokio::test]
async fn close_is_bounded_when_the_server_never_answers() {
    let endpoint = serve(|server| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(server);
    })
    .await;
    let options = Options::default().close_timeout(Duration::from_millis(300));
    let mut connection = connect(&endpoint, &options).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(3), connection.sender.close())
        .await
        .expect("close hung past its timeout");
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Timeout);
}

/// Review finding 14, second half: on a current-thread runtime, returning right after
/// `close()` must still have put the close frame on the wire.
#[test]
fn the_close_frame_is_written_before_close_returns_on_a_current_thread_runtime() {
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap().port()).unwrap();
                let (tcp, _) = listener.accept().await.unwrap();
                let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
                let mut texts = 0;
                while let Some(Ok(message)) = socket.next().await {
                    match message {
                        Message::Text(_) => texts += 1,
                        Message::Close(frame) => return (texts, frame.map(|f| u16::from(f.code))),
                        _ => {}
                    }
                }
                (texts, None)
            })
    });
    let port = rx.recv().unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let endpoint = Endpoint::openai("m")
                .base_url(&format!("http://127.0.0.1:{port}/v1"))
                .api_key("sk-test");
            let options = Options::default().close_timeout(Duration::from_millis(500));
            let mut connection = connect(&endpoint, &options).await.unwrap();
            for _ in 0..50 {
                connection.sender.send("{}".into()).await.unwrap();
            }
            // The raw server never answers the close (it stops reading): bounded.
            let _ = connection.sender.close().await;
        });
    let (texts, code) = server.join().unwrap();
    assert_eq!(texts, 50, "frames queued before close() were lost");
    assert_eq!(code, Some(1000), "no close frame reached the server");
}

/// Review finding 16: `SinkExt::close` on one clone closes the connection for all of them.
#[tokio::test]
async fn sink_close_closes_the_connection_for_every_clone() {
    let endpoint = serve(|mut server| async move {
        while let Some(Ok(message)) = server.next().await {
            if let Message::Close(_) = message {
                let _ = server.flush().await;
            }
        }
    })
    .await;
    let connection = connect(&endpoint, &Options::default()).await.unwrap();
    let (mut sender, receiver) = (connection.sender, connection.receiver);
    let mut other = sender.clone();
    tokio::time::timeout(Duration::from_secs(3), SinkExt::close(&mut sender))
        .await
        .expect("Sink::close hung")
        .unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(3), receiver.collect::<Vec<_>>())
        .await
        .expect("the connection stayed open after Sink::close");
    assert!(rest.iter().all(Result::is_ok));
    assert!(other.send("{}".into()).await.is_err());
}

/// Review finding 19a: while the server closes with 3000 (after its `error` event), a task
/// sending as fast as it can must learn the reader's verdict (`Auth`, not retryable) — never
/// a generic `Closed` from the writer's side of the race, which a retry loop would retry.
#[tokio::test]
async fn senders_racing_the_close_get_the_readers_verdict() {
    for _ in 0..30 {
        let endpoint = serve(|mut server| async move {
            let error = r#"{"type":"error","event_id":"e1","error":{"type":"invalid_request_error","code":"invalid_api_key","message":"bad key"}}"#;
            let _ = server.send(Message::text(error)).await;
            let frame = CloseFrame {
                code: CloseCode::from(3000),
                reason: "invalid_request_error.invalid_api_key".into(),
            };
            let _ = server.send(Message::Close(Some(frame))).await;
            while let Some(Ok(_)) = server.next().await {}
        })
        .await;
        let connection = connect(&endpoint, &Options::default()).await.unwrap();
        let mut sender = connection.sender;
        let spam = tokio::spawn(async move {
            loop {
                if let Err(error) = sender.send(r#"{"type":"response.create"}"#.into()).await {
                    return error;
                }
            }
        });
        let end: Vec<_> =
            tokio::time::timeout(Duration::from_secs(5), connection.receiver.collect())
                .await
                .expect("the stream ended");
        let error = tokio::time::timeout(Duration::from_secs(5), spam)
            .await
            .expect("the sender learned the end")
            .unwrap();
        assert_eq!(error.kind(), ErrorKind::Auth, "{error:?}");
        assert!(!error.is_retryable());
        let last = end.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.kind(), ErrorKind::Auth);
    }
}
