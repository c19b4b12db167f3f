//! The public transport seam, used from outside the crate as another transport would: a
//! loopback `Transport` built on `pipe`, whose "wire" is an echo in the same process.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reelthyme_transport::{
    Command, Connecting, Connection, End, Endpoint, Error, ErrorKind, Frame, Options, Transport,
    pipe,
};

/// Echoes every text frame back; a `{"close":N}` frame ends the connection with close code N
/// after echoing nothing more.
#[derive(Debug)]
struct Echo;

impl Transport for Echo {
    fn connect<'a>(&'a self, _endpoint: &'a Endpoint, options: &'a Options) -> Connecting<'a> {
        Box::pin(async move {
            let (sender, receiver, mut link) = pipe(options.queues(1 << 20));
            tokio::spawn(async move {
                let mut closes = Vec::new();
                let error = loop {
                    match link.outbox.next_command().await {
                        Some(Command::Text(text)) => {
                            if let Some(code) = text.strip_prefix("{\"close\":") {
                                let code = code.trim_end_matches('}').parse().unwrap_or(1011);
                                link.outbox.stop();
                                break Some(Error::from_close(code, "echo closed", None));
                            }
                            link.inbox.deliver(Ok(Frame::new(text))).await;
                        }
                        Some(Command::Flush(flushed)) => flushed.done(),
                        Some(Command::Close(request)) => {
                            closes.push(request);
                            break None;
                        }
                        None => break None,
                        Some(_) => {}
                    }
                };
                link.finish(End::new(error).close_requests(closes).close_answered(true))
                    .await;
            });
            Ok(Connection::new(sender, receiver))
        })
    }
}

fn endpoint() -> Endpoint {
    Endpoint::openai("m").base_url("http://127.0.0.1:9/v1")
}

#[tokio::test]
async fn a_transport_outside_the_crate_gets_the_pipes_contract() {
    let options = Options::default().send_queue(4);
    let mut connection = Echo.connect(&endpoint(), &options).await.unwrap();
    let before = Instant::now();
    connection.sender.send("one".to_owned()).await.unwrap();
    connection.sender.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let frame = tokio::time::timeout(Duration::from_secs(5), connection.receiver.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame, "one");
    // Stamped when the transport read it, not when the consumer got to it.
    assert!(frame.received_at() >= before);
    assert!(frame.received_at().elapsed() >= Duration::from_millis(50));

    // The transport's verdict reaches the stream and every later sender, with the frames
    // that were queued behind it listed unsent, in order.
    connection
        .sender
        .send("{\"close\":4000}".to_owned())
        .await
        .unwrap();
    let mut late = connection.sender.clone();
    let mut accepted = Vec::new();
    for text in ["after-1", "after-2"] {
        if late.send(text.to_owned()).await.is_ok() {
            accepted.push(text);
        }
    }
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match connection.receiver.next().await {
                Some(Err(error)) => return error,
                Some(Ok(_)) => {}
                None => panic!("the stream ended without a verdict"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(end.kind(), ErrorKind::InvalidRequest);
    assert_eq!(end.close_code(), Some(4000));
    // Exactly what `send` accepted and the transport never took is reported.
    assert_eq!(end.unsent(), accepted.as_slice());
    let refused = late.send("later".to_owned()).await.unwrap_err();
    assert_eq!(refused.close_code(), Some(4000));
    assert!(refused.is_fatal());
}

#[tokio::test]
async fn close_through_the_seam_waits_for_the_transports_end() {
    let mut connection = Echo
        .connect(&endpoint(), &Options::default())
        .await
        .unwrap();
    connection.sender.send("x".to_owned()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), connection.sender.close())
        .await
        .expect("close hung")
        .unwrap();
    let rest: Vec<_> = connection.receiver.collect().await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(rest[0].as_ref().unwrap(), "x");
}
