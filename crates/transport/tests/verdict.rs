//! The verdict a sender gets when the connection ends while it waits: the transport's
//! error, never a generic "closed". `Link::finish` closes the outbox (waking the waiting
//! senders) before it has collected the unsent frames and recorded the verdict; a sender
//! woken in between must still see the verdict, with its unsent frames.

use std::time::Duration;

use futures_util::FutureExt;
use reelthyme_transport::{End, Error, ErrorKind, Queues, pipe};

const QUEUED: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_waiting_on_a_full_queue_gets_the_transports_verdict() {
    for round in 0..100 {
        let (mut sender, _receiver, link) = pipe(Queues::new(QUEUED, 16, 1 << 20));
        // Fill the queue to the brim (it holds a frame more per sender than it is asked to).
        let mut queued = 0;
        while let Some(sent) = sender.send(format!("frame {queued}")).now_or_never() {
            sent.unwrap();
            queued += 1;
        }
        assert!(queued >= QUEUED, "{queued}");
        // The transport ends the connection a moment after this sender starts waiting for
        // room (on the test's own thread, as an application's task would).
        let transport = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            link.finish(End::new(Some(Error::new(ErrorKind::Timeout, "stalled"))))
                .await;
        });
        let refused = sender.send("one more".into()).await.unwrap_err();
        assert_eq!(
            refused.kind(),
            ErrorKind::Timeout,
            "round {round}: {refused}"
        );
        // Every frame queued is reported unsent, in order (the probe that found the queue
        // full was queued too: only its wait for room was cut short); the refused one is not.
        let expected: Vec<String> = (0..=queued).map(|i| format!("frame {i}")).collect();
        assert_eq!(refused.unsent(), expected, "round {round}: {refused}");
        // Later calls see the same verdict.
        let flushed = sender.flush().await.unwrap_err();
        assert_eq!(
            flushed.kind(),
            ErrorKind::Timeout,
            "round {round}: {flushed}"
        );
        transport.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_dropped_without_a_verdict_does_not_hold_senders() {
    let (mut sender, _receiver, link) = pipe(Queues::new(1, 16, 1 << 20));
    drop(link);
    let refused = tokio::time::timeout(Duration::from_secs(5), sender.send("x".into()))
        .await
        .expect("a send after the transport vanished is not held")
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Closed, "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_close_with_frames_unsent_says_it_was_normal() {
    let (mut sender, _receiver, link) = pipe(Queues::new(4, 16, 1 << 20));
    sender.send("queued".into()).await.unwrap();
    link.finish(End::new(None).close_answered(true)).await;
    let error = sender.flush().await.unwrap_err();
    assert_eq!(error.close_code(), Some(1000), "{error}");
    assert_eq!(error.unsent(), ["queued"], "{error}");
    // The server ended the session on purpose: a reconnect policy does not redial it.
    assert!(error.is_normal_close(), "{error}");
    assert!(Error::from_close(1000, "", None).is_normal_close());
    // A transport without close codes mapping its end to 1000 did not hear "normal".
    let mapped = Error::new(ErrorKind::Closed, "the server ended the call").with_close_code(1000);
    assert!(!mapped.is_normal_close());
    assert!(!Error::from_close(1006, "", None).is_normal_close());
}
