//! Resampling throughput, in × real time on one core: device rates to and from 24 kHz,
//! beside a baseline in the same run (a plain copy of the same samples, the floor any
//! converter pays).

#![forbid(unsafe_code)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reelthyme_audio::Resampler;
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample_1s");
    for (from, to) in [(48_000_u32, 24_000_u32), (44_100, 24_000), (24_000, 48_000)] {
        let input: Vec<f32> = (0..from).map(|n| ((n as f32) * 0.01).sin() * 0.5).collect();
        // One second of audio per iteration: elements/s reads directly as × real time.
        group.throughput(Throughput::Elements(1));
        let mut resampler = Resampler::new(from, to).unwrap();
        let mut out = Vec::with_capacity(to as usize * 2);
        group.bench_function(format!("{from}_to_{to}"), |b| {
            b.iter(|| {
                out.clear();
                for chunk in input.chunks(from as usize / 50) {
                    resampler.process(black_box(chunk), &mut out);
                }
                black_box(&out);
            });
        });
        group.bench_function(format!("baseline_copy_{from}"), |b| {
            b.iter(|| {
                out.clear();
                for chunk in input.chunks(from as usize / 50) {
                    out.extend_from_slice(black_box(chunk));
                }
                black_box(&out);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
