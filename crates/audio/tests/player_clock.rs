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
            let truncation = player.interrupt();
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
