//! Capture on ALSA's unpaced `file` device, which produces audio as fast as it can: far
//! faster than real time, so the capture worker falls behind and the ring overflows. The
//! loss must be reported in band ([`Captured::Overrun`]) and counted, what fits the ring
//! (20 s) must arrive before any loss, and `stop` must return only after the callback
//! was called for the last time and dropped. (Its own binary: ALSA reads its configuration
//! once per process.)

#![cfg(all(feature = "devices", target_os = "linux"))]

use std::sync::mpsc;
use std::time::Duration;

use reelthyme_audio::{Capture, Captured};

#[test]
fn an_unpaced_device_overruns_the_ring_and_the_loss_is_reported() {
    let dir = std::env::temp_dir().join(format!("reelthyme-overrun-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (infile, outfile) = (dir.join("in.raw"), dir.join("out.raw"));
    let config = reelthyme_audio::headless::alsa_file_devices(&dir, &infile, &outfile).unwrap();
    // 48 kHz stereo f32: a ramp that says where each sample came from (n / 2^20), 4 s.
    let frames = 4 * 48_000;
    let mut input = Vec::with_capacity(frames * 8);
    for n in 0..frames {
        let sample = (n as f32 / f32::from(1_u16 << 15)) / 32.0 - 0.5 * (n / 96_000) as f32;
        for _ in 0..2 {
            input.extend_from_slice(&sample.to_le_bytes());
        }
    }
    std::fs::write(&infile, &input).unwrap();
    // SAFETY: set at the start of the only test in this binary, before any thread that
    // reads the environment (cpal, ALSA) exists.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("ALSA_CONFIG_PATH", config);
    }

    let (tx, rx) = mpsc::channel();
    let capture = Capture::start(None, 20, move |captured| {
        // A slow consumer: the device outruns it by far.
        std::thread::sleep(Duration::from_micros(200));
        let _ = tx.send(captured);
    })
    .unwrap();
    let rate = capture.format().rate;
    let (mut audio, mut lost) = (0_usize, Duration::ZERO);
    let mut overruns = 0;
    while audio < 24_000 * 24 || overruns == 0 {
        match rx
            .recv_timeout(Duration::from_secs(20))
            .expect("capture delivers")
        {
            Captured::Audio(chunk) => {
                assert_eq!(chunk.len(), 480, "20 ms chunks until stop");
                audio += chunk.len();
            }
            Captured::Overrun { lost: more } => {
                assert!(more > Duration::ZERO);
                // The ring holds 20 seconds: nothing is lost before they were delivered
                // (less what the resampler and the current chunk hold).
                assert!(
                    audio >= 24_000 * 20 - 960,
                    "lost after only {audio} samples"
                );
                lost += more;
                overruns += 1;
            }
            Captured::Error(error) => panic!("{error}"),
            other => panic!("{other:?}"),
        }
    }
    let counted = capture.overrun_frames();
    capture.stop();
    // Stop returns after the last call: what is left is already queued, then the sender
    // (owned by the callback) is gone.
    let mut after = 0;
    loop {
        match rx.try_recv() {
            Ok(Captured::Overrun { lost: more }) => lost += more,
            Ok(_) => after += 1,
            Err(mpsc::TryRecvError::Empty) => panic!("the callback outlived stop()"),
            Err(mpsc::TryRecvError::Disconnected) => break,
        }
    }
    eprintln!(
        "{audio} samples delivered, {overruns} overruns reported ({lost:?} lost, {counted} frames counted at stop), {after} more after stop"
    );
    assert!(
        counted > 0,
        "an unpaced device must overrun a slow consumer"
    );
    assert!(overruns > 0, "overruns are reported in band");
    // Every frame counted is reported in band by the time the callback is dropped (the
    // count only grows after it was read).
    assert!(
        lost.as_secs_f64() * f64::from(rate) >= counted as f64 - 1.0,
        "{lost:?} reported, {counted} frames counted"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
