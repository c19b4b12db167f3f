//! Audio event throughput: decoding `response.output_audio.delta` events carrying 20 ms of
//! 24 kHz audio into samples, and encoding `input_audio_buffer.append` from samples.
//!
//! Baselines in the same run: the generic serde path (JSON tree first, then the typed
//! event) for decoding, and `serde_json::to_string` of a `Value` for encoding.

#![forbid(unsafe_code)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use reelthyme_schema::{ClientEvent, ServerEvent};
use std::hint::black_box;

/// 20 ms at 24 kHz.
const SAMPLES: usize = 480;

fn speech_like() -> Vec<i16> {
    (0..SAMPLES)
        .map(|i| ((i as f64 * 0.07).sin() * 12_000.0 + (i as f64 * 0.31).sin() * 3_000.0) as i16)
        .collect()
}

fn delta_json(samples: &[i16]) -> String {
    let audio = reelthyme_schema::Base64Audio::from_pcm16(samples);
    format!(
        r#"{{"type":"response.output_audio.delta","event_id":"event_CCXHxcMy86rrKhBLDdqCh","response_id":"resp_CCXHw0UJld10EzIUXQCNh","item_id":"item_CCXHwGjjDUfOXbiySlK7i","output_index":0,"content_index":0,"delta":"{}","obfuscation":"aLxx0jTEci"}}"#,
        audio.as_str()
    )
}

fn decode(c: &mut Criterion) {
    let json = delta_json(&speech_like());
    let mut group = c.benchmark_group("decode_output_audio_delta_20ms");
    group.throughput(Throughput::Elements(1));
    let mut samples = Vec::with_capacity(SAMPLES);
    group.bench_function("reelthyme_from_json", |b| {
        b.iter(|| {
            let ServerEvent::ResponseOutputAudioDelta(delta) =
                ServerEvent::from_json(black_box(&json)).unwrap()
            else {
                unreachable!()
            };
            samples.clear();
            delta.delta.decode_pcm16_into(&mut samples).unwrap();
            black_box(&samples);
        });
    });
    group.bench_function("baseline_serde_via_value", |b| {
        b.iter(|| {
            let value: serde_json::Value = serde_json::from_str(black_box(&json)).unwrap();
            let ServerEvent::ResponseOutputAudioDelta(delta) =
                ServerEvent::from_value(value).unwrap()
            else {
                unreachable!()
            };
            black_box(delta.delta.decode_pcm16().unwrap());
        });
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let samples = speech_like();
    let mut group = c.benchmark_group("encode_input_audio_append_20ms");
    group.throughput(Throughput::Elements(1));
    group.bench_function("reelthyme_audio_append", |b| {
        b.iter(|| black_box(ClientEvent::audio_append(black_box(&samples)).to_json()));
    });
    group.bench_function("baseline_json_value", |b| {
        b.iter(|| {
            let bytes: Vec<u8> = black_box(&samples)
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect();
            let audio = reelthyme_schema::Base64Audio::from_bytes(&bytes);
            let value =
                serde_json::json!({"type": "input_audio_buffer.append", "audio": audio.as_str()});
            black_box(serde_json::to_string(&value).unwrap())
        });
    });
    group.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
