// Node peer of `reelthyme-bench codec`: the same fixture bytes, the same timing loop.
//   node codec.js FIXTURES_DIR SECONDS ROUNDS
// decode: JSON.parse + Buffer.from(delta, 'base64') viewed as Int16Array (untyped);
// encode: Buffer of the samples → base64 → JSON.stringify({type, audio}).
// Prints `decode.node events_per_s=…` and `encode.node events_per_s=…` (best round).
'use strict';
const fs = require('fs');
const path = require('path');

const [dir, seconds = '1', rounds = '5'] = process.argv.slice(2);
const json = fs.readFileSync(path.join(dir, 'output_audio_delta_20ms.json'), 'utf8');
const raw = fs.readFileSync(path.join(dir, 'speech_20ms.s16le'));
const samples = new Int16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
const expectedAppend = fs.readFileSync(path.join(dir, 'input_audio_append_20ms.json'), 'utf8');

function best(fn) {
  let top = 0;
  for (let r = 0; r < Number(rounds); r++) {
    const start = process.hrtime.bigint();
    let n = 0;
    for (;;) {
      for (let k = 0; k < 1000; k++) fn();
      n += 1000;
      const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
      if (elapsed >= Number(seconds)) {
        top = Math.max(top, n / elapsed);
        break;
      }
    }
  }
  return top;
}

let sink = 0;
function decode() {
  const event = JSON.parse(json);
  const bytes = Buffer.from(event.delta, 'base64');
  const pcm = new Int16Array(bytes.buffer, bytes.byteOffset, bytes.length >> 1);
  sink += pcm[pcm.length - 1];
}
function encode() {
  const audio = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength).toString('base64');
  return JSON.stringify({ type: 'input_audio_buffer.append', audio });
}

// The same work as ours: check it before timing it.
if (encode() !== expectedAppend.trimEnd()) throw new Error('encode differs from the fixture');
const first = Buffer.from(JSON.parse(json).delta, 'base64');
if (!first.equals(raw)) throw new Error('decode differs from the fixture');

console.log(`decode.node events_per_s=${best(decode).toFixed(0)}`);
console.log(`encode.node events_per_s=${best(() => { sink += encode().length; }).toFixed(0)}`);
console.log(`peer.node version=${process.version}`);
