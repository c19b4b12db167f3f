//! The player on a clock the test drives (the same callback code as a cpal stream): what a
//! stalled or stopped device does to barge-in and to memory, and what long sessions do to
//! the tracker. No sound device is opened.

#![cfg(feature = "devices")]

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use reelthyme_audio::Player;

/// 100 ms of a loud tone at 24 kHz.
fn tone_100ms() -> Vec<i16> {
    (0..2400)
        .map(|i| ((i as f32 * 0.05).sin() * 12_000.0) as i16)
        .collect()
}

/// Review finding 12: a barge-in on a device that never answers must not block playback
/// meanwhile (it held the producer lock for 500 ms), and the stalled device is reported.
#[test]
fn a_barge_in_on_a_stalled_device_does_not_block_playback_and_is_reported() {
    let (player, _clock) = Player::with_clock(48_000, 1).unwrap(); // never pulled
    let player = Arc::new(player);
    player.play("item_a", &tone_100ms());
    assert!(player.error().is_none());

    let (done_tx, done_rx) = mpsc::channel();
    let interrupter = {
        let player = player.clone();
        let done = done_tx.clone();
        std::thread::spawn(move || {
            let unpark = Arc::new(Unpark {
                thread: std::thread::current(),
                wakes: std::sync::atomic::AtomicUsize::new(0),
            });
            let truncation = poll_until(&mut player.cut(), &unpark, Duration::from_secs(5))
                .expect("the cut resolves by its deadline");
            done.send("interrupt").unwrap();
            truncation
        })
    };
    // Let the interrupt start waiting for the device, then play: it must not wait for it.
    std::thread::sleep(Duration::from_millis(50));
    let player_b = player.clone();
    std::thread::spawn(move || {
        player_b.play("item_b", &tone_100ms());
        done_tx.send("play").unwrap();
    });
    let first = done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(
        first, "play",
        "play() waited for the barge-in's device wait"
    );
    assert_eq!(interrupter.join().unwrap(), None, "nothing was played");
    let error = player.error().expect("the stalled device is reported");
    assert!(error.to_string().contains("did not respond"), "{error}");
}

/// Review finding 12: with a device that stopped consuming, the backlog is bounded and
/// the overflow is reported instead of growing without limit.
#[test]
fn the_backlog_of_a_device_that_stopped_consuming_is_bounded_and_reported() {
    let (player, _clock) = Player::with_clock(24_000, 1).unwrap(); // never pulled
    player.set_max_backlog(Duration::from_secs(2));
    let tone = tone_100ms();
    for _ in 0..100 {
        player.play("item", &tone); // 10 s of audio
    }
    // The ring holds half a second, the backlog two seconds (the feeder moves audio into
    // the ring in the background, so allow both).
    assert!(
        player.backlog_ms() <= 2_600,
        "{} ms queued",
        player.backlog_ms()
    );
    let error = player.error().expect("the overflow is reported");
    assert!(error.to_string().contains("backlog"), "{error}");
}

/// Review finding 18: items played in full are forgotten (the tracker kept one segment per
/// item forever, and every `played_ms` walked them all), the latest stays queryable.
#[test]
fn items_played_in_full_are_pruned() {
    let (player, mut clock) = Player::with_clock(24_000, 1).unwrap();
    let short: Vec<i16> = vec![3_000; 240]; // 10 ms
    for i in 0..500 {
        let item = format!("item_{i}");
        player.play(&item, &short);
        player.finish(&item);
        // Pull until the feeder has moved it through the ring and the device played it.
        let mut played = 0;
        for _ in 0..2_000 {
            played += clock.pull(240).1;
            if played >= 240 {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = player.played_ms(&item);
    }
    assert_eq!(
        player.played_ms("item_0"),
        None,
        "a finished item is still tracked"
    );
    assert!(
        player.played_ms("item_499").is_some(),
        "the latest item is forgotten"
    );
}

/// A waker that unparks the test thread, counting its wakes.
struct Unpark {
    thread: std::thread::Thread,
    wakes: std::sync::atomic::AtomicUsize,
}

impl std::task::Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Polls `future` until it is ready or `timeout` passes, parking between wakes.
fn poll_until<F: std::future::Future + Unpin>(
    future: &mut F,
    waker: &Arc<Unpark>,
    timeout: Duration,
) -> Option<F::Output> {
    let deadline = std::time::Instant::now() + timeout;
    let waker = std::task::Waker::from(waker.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(out) = std::pin::Pin::new(&mut *future).poll(&mut cx) {
            return Some(out);
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// Pulls 10 ms periods until at least `frames` frames of audio have played; returns how
/// many did.
fn play_at_least(clock: &mut reelthyme_audio::Clock, frames: u64) -> u64 {
    let mut played = 0;
    for _ in 0..5_000 {
        played += clock.pull(240).1;
        if played >= frames {
            return played;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    panic!("only {played} frames played");
}

/// The lead's non-blocking barge-in: `cut()` returns at once with the flush requested, the
/// future stays pending while the device has not run, resolves once one callback has
/// honoured the flush (woken by the feeder, not the callback), with the exact split.
#[test]
fn a_cut_resolves_once_the_callback_honours_the_flush_with_the_frames_played() {
    let (player, mut clock) = Player::with_clock(24_000, 1).unwrap();
    let answer: Vec<i16> = tone_100ms().repeat(10); // 1 s
    player.play("item_a", &answer);
    let played = play_at_least(&mut clock, 4_800);

    let unpark = Arc::new(Unpark {
        thread: std::thread::current(),
        wakes: 0.into(),
    });
    let requested = std::time::Instant::now();
    let mut cut = player.cut();
    assert!(
        requested.elapsed() < Duration::from_millis(50),
        "cut() waited for the device"
    );
    // Audio queued after the cut plays after the flush; nothing of item_a does.
    player.play("item_b", &tone_100ms());
    assert_eq!(
        poll_until(&mut cut, &unpark, Duration::from_millis(30)),
        None,
        "resolved before the device honoured the flush"
    );
    assert!(!cut.is_done());

    let (_, audio) = clock.pull(240);
    assert_eq!(audio, 0, "the flushed ring played after the cut");
    let honoured = std::time::Instant::now();
    let truncation = poll_until(&mut cut, &unpark, Duration::from_secs(2))
        .expect("the cut resolves after the callback honoured it")
        .expect("item_a was playing");
    let latency = honoured.elapsed();
    eprintln!("cut resolved {latency:?} after the callback honoured it");
    assert!(latency < Duration::from_millis(200), "{latency:?}");
    assert!(
        unpark.wakes.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "never woken"
    );
    assert_eq!(truncation.item_id, "item_a");
    assert_eq!(truncation.audio_end_ms, played * 1000 / 24_000);
    assert!(player.error().is_none());

    // Playback goes on with what was queued after the cut.
    let after = play_at_least(&mut clock, 2_400);
    assert_eq!(after, 2_400);
    assert_eq!(player.played_ms("item_b"), Some(100));
    assert_eq!(
        player.played_ms("item_a"),
        None,
        "the cut item is forgotten"
    );
}

/// A cut on a device that never runs resolves by the 500 ms bound, with what was played
/// before (nothing here) and the stall reported.
#[test]
fn a_cut_nobody_honours_resolves_at_the_bound_and_is_reported() {
    let (player, _clock) = Player::with_clock(48_000, 2).unwrap(); // never pulled
    player.play("item_a", &tone_100ms());
    let unpark = Arc::new(Unpark {
        thread: std::thread::current(),
        wakes: 0.into(),
    });
    let started = std::time::Instant::now();
    let mut cut = player.cut();
    let outcome = poll_until(&mut cut, &unpark, Duration::from_secs(3));
    let waited = started.elapsed();
    assert_eq!(outcome, Some(None), "resolves, with nothing to truncate");
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_millis(1_500),
        "{waited:?}"
    );
    let error = player.error().expect("the stalled device is reported");
    assert!(error.to_string().contains("did not respond"), "{error}");
}

/// Two cuts before the device runs: both resolve once it does, the first with what was
/// heard, the second with nothing (its audio never reached the device); a dropped player
/// completes a pending cut instead of leaving it pending for ever.
#[test]
fn cuts_in_a_row_and_a_dropped_player_resolve() {
    let (player, mut clock) = Player::with_clock(24_000, 1).unwrap();
    player.play("item_a", &tone_100ms().repeat(5));
    let played = play_at_least(&mut clock, 2_400);
    let first = player.cut();
    player.play("item_b", &tone_100ms());
    let second = player.cut();
    assert_eq!(clock.pull(240).1, 0);
    let unpark = Arc::new(Unpark {
        thread: std::thread::current(),
        wakes: 0.into(),
    });
    let (mut first, mut second) = (first, second);
    let a = poll_until(&mut first, &unpark, Duration::from_secs(2)).expect("first resolves");
    let b = poll_until(&mut second, &unpark, Duration::from_secs(2)).expect("second resolves");
    assert_eq!(
        a.map(|t| (t.item_id, t.audio_end_ms)),
        Some(("item_a".into(), played * 1000 / 24_000))
    );
    assert_eq!(b, None);

    player.play("item_c", &tone_100ms());
    let mut pending = player.cut();
    drop(player);
    assert_eq!(
        poll_until(&mut pending, &unpark, Duration::from_secs(2)),
        Some(None),
        "a cut outlives its player and resolves"
    );
}

/// `drained()` is ready at once with nothing queued, pending while audio waits for the
/// device, ready once the device played it all (woken by the feeder), and ends when the
/// player is dropped.
#[test]
fn drained_resolves_when_the_device_has_played_everything() {
    let (player, mut clock) = Player::with_clock(24_000, 1).unwrap();
    let unpark = Arc::new(Unpark {
        thread: std::thread::current(),
        wakes: 0.into(),
    });
    let mut idle = player.drained();
    assert_eq!(
        poll_until(&mut idle, &unpark, Duration::ZERO),
        Some(()),
        "nothing queued: drained already"
    );

    player.play("item_a", &tone_100ms());
    player.finish("item_a");
    let mut drained = player.drained();
    assert_eq!(
        poll_until(&mut drained, &unpark, Duration::from_millis(30)),
        None,
        "drained before the device played anything"
    );
    // Half of it: still pending.
    let half = play_at_least(&mut clock, 1_200);
    assert_eq!(
        poll_until(&mut drained, &unpark, Duration::from_millis(20)),
        None
    );
    play_at_least(&mut clock, 2_400 - half);
    assert_eq!(player.backlog_ms(), 0);
    assert_eq!(
        poll_until(&mut drained, &unpark, Duration::from_secs(2)),
        Some(()),
        "the feeder wakes it once the device has played everything"
    );

    player.play("item_b", &tone_100ms());
    let mut pending = player.drained();
    drop(player);
    assert_eq!(
        poll_until(&mut pending, &unpark, Duration::from_secs(2)),
        Some(()),
        "a dropped player ends the wait"
    );
}

/// What the facade relies on to await a cut or a drain from any task.
#[test]
fn the_futures_are_send_and_unpin() {
    fn awaitable<T: std::future::Future + Send + Unpin + 'static>() {}
    awaitable::<reelthyme_audio::Cut>();
    awaitable::<reelthyme_audio::Drained>();
}

/// The echo reference is every frame the device was given, in order — the answer and the
/// idle silence around it — once per player; a reader that falls a second behind misses the
/// frames that no longer fit, counted, and the callback never waits for it.
#[test]
fn the_echo_reference_is_exactly_what_the_device_was_given() {
    let (player, mut clock) = Player::with_clock(24_000, 2).unwrap();
    // Before anyone reads the reference, nothing is kept for it.
    let _ = clock.pull(480);
    let mut reference = player.echo_reference().expect("the first reader");
    assert!(player.echo_reference().is_none(), "one reader per player");
    assert_eq!(reference.rate(), 24_000);
    player.play("item", &tone_100ms());
    let mut given = Vec::new();
    // Until the feeder has moved the answer into the ring, the device plays silence.
    for _ in 0..40 {
        let (out, _) = clock.pull(240);
        // Mono: the first channel of each frame.
        given.extend(out.chunks(2).map(|frame| frame[0]));
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut read = Vec::new();
    reference.read(&mut read);
    assert_eq!(read, given);
    assert!(
        read.iter().any(|&s| s != 0.0),
        "the answer is in the reference"
    );
    assert_eq!(reference.dropped_frames(), 0);
    // A reader that does not read: the callback goes on, the overflow is counted.
    for _ in 0..150 {
        let _ = clock.pull(240);
    }
    assert_eq!(reference.dropped_frames(), 150 * 240 - 24_000);
}
