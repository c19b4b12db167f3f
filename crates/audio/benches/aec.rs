//! Echo cancellation on the simulated room (`reelthyme_audio::echo::room`): CPU cost in ×
//! real time on one core (one second of device audio per iteration, at 16 and 48 kHz),
//! beside a baseline in the same run (the half-duplex gate on the same audio, the cheapest
//! echo control), and the quality figures of the issue, printed once per rate as
//! `aec erle_db=.. convergence_ms=.. double_talk_corr=.. reconvergence_ms=.. cpu_x_realtime=..`
//! (`cpu_x_realtime`: processing time over audio time, the share of a core it takes).

#![forbid(unsafe_code)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reelthyme_audio::Resampler;
use reelthyme_audio::echo::room::{Room, bench_rooms};
use reelthyme_audio::echo::{EchoCanceller, HalfDuplex, room};

fn speech(name: &str, rate: u32) -> Vec<f32> {
    let wav = reelthyme_testkit::read_wav(&reelthyme_testkit::audio(name));
    let mut pcm = Vec::new();
    reelthyme_audio::i16_to_f32(&wav.samples, &mut pcm);
    let mut resampler = Resampler::new(wav.rate, rate).unwrap();
    let mut out = Vec::new();
    resampler.process(&pcm, &mut out);
    resampler.flush(&mut out);
    out
}

/// The assistant's speech only (the fixtures' silences cut), as the room test has it.
fn assistant(rate: u32) -> Vec<f32> {
    let at = |s: f64| (s * f64::from(rate)) as usize;
    let interrupt = speech("interrupt_24k.wav", rate);
    let booking = speech("booking_24k.wav", rate);
    let mut far = interrupt[at(0.5)..at(4.45)].to_vec();
    far.extend(&booking[at(0.5)..at(2.69)]);
    far
}

fn bench(c: &mut Criterion) {
    for rate in [16_000_u32, 48_000] {
        let far = assistant(rate);
        let near = speech("weather_24k.wav", rate);
        let mut aec = EchoCanceller::new(rate).unwrap();
        let report = room::bench(rate, &far, &near, (0.5, 2.55), |r, m, o| {
            aec.process(r, m, o)
        });
        println!("{} rate={rate}", report.line("aec"));

        // One second of room audio, far end and echo, for the throughput runs.
        let second = rate as usize;
        let reference: Vec<f32> = far.iter().copied().cycle().take(second).collect();
        let mut mic = Vec::new();
        Room::new(bench_rooms(rate).0, 0.0003).capture(&reference, &[], &mut mic, None);
        let period = second / 100;
        let mut group = c.benchmark_group(format!("echo_1s_{rate}"));
        // One second of audio per iteration: elements/s reads directly as × real time.
        group.throughput(Throughput::Elements(1));
        let mut out = Vec::with_capacity(second * 2);
        group.bench_function("aec3", |b| {
            b.iter(|| {
                out.clear();
                for (r, m) in reference.chunks(period).zip(mic.chunks(period)) {
                    aec.process(black_box(r), black_box(m), &mut out);
                }
                black_box(&out);
            });
        });
        let mut gate = HalfDuplex::new(rate, 0.0);
        group.bench_function("baseline_half_duplex", |b| {
            b.iter(|| {
                out.clear();
                for (r, m) in reference.chunks(period).zip(mic.chunks(period)) {
                    gate.process(black_box(r), black_box(m), &mut out);
                }
                black_box(&out);
            });
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
