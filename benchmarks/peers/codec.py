"""Python peers of `reelthyme-bench codec`: the same fixture bytes, the same timing loop.

    python codec.py FIXTURES_DIR SECONDS ROUNDS

plain CPython: json.loads + base64.b64decode viewed as int16 (untyped), json.dumps of the
append; openai-python (when importable, i.e. in the SDK's venv): the SDK's own typed parse,
TypeAdapter(RealtimeServerEvent).validate_json + b64decode, and the SDK's send path for the
append (maybe_transform to RealtimeClientEventParam, then json.dumps).
Prints `decode.cpython events_per_s=…` etc. (best round).
"""

import base64
import json
import os
import sys
import time

directory, seconds, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
with open(os.path.join(directory, "output_audio_delta_20ms.json"), encoding="utf-8") as f:
    text = f.read()
with open(os.path.join(directory, "speech_20ms.s16le"), "rb") as f:
    raw = f.read()
with open(os.path.join(directory, "input_audio_append_20ms.json"), encoding="utf-8") as f:
    expected_append = f.read().rstrip()


def best(fn):
    top = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        n = 0
        while True:
            for _ in range(1000):
                fn()
            n += 1000
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                top = max(top, n / elapsed)
                break
    return top


def plain_decode():
    event = json.loads(text)
    return memoryview(base64.b64decode(event["delta"])).cast("h")


def plain_encode():
    audio = base64.b64encode(raw).decode("ascii")
    return json.dumps({"type": "input_audio_buffer.append", "audio": audio}, separators=(",", ":"))


assert plain_decode().tobytes() == raw, "decode differs from the fixture"
assert plain_encode() == expected_append, "encode differs from the fixture"
print(f"decode.cpython events_per_s={best(plain_decode):.0f}")
print(f"encode.cpython events_per_s={best(plain_encode):.0f}")
print(f"peer.cpython version={sys.version.split()[0]}")

try:
    import openai
    from openai._utils import maybe_transform
    from openai.types.realtime import RealtimeClientEventParam, RealtimeServerEvent
    from pydantic import TypeAdapter
except ImportError as error:
    print(f"peer.openai_python skipped=import_failed:{type(error).__name__}")
    sys.exit(0)

adapter = TypeAdapter(RealtimeServerEvent)


def sdk_decode():
    event = adapter.validate_json(text)
    return memoryview(base64.b64decode(event.delta)).cast("h")


def sdk_encode():
    # What `connection.input_audio_buffer.append(audio=…)` sends (realtime.py's `send`).
    audio = base64.b64encode(raw).decode("ascii")
    event = {"type": "input_audio_buffer.append", "audio": audio}
    return json.dumps(maybe_transform(event, RealtimeClientEventParam))


assert type(adapter.validate_json(text)).__name__ == "ResponseAudioDeltaEvent", "typed parse"
assert sdk_decode().tobytes() == raw, "typed decode differs from the fixture"
assert json.loads(sdk_encode()) == json.loads(expected_append), "typed encode differs"
print(f"decode.openai_python events_per_s={best(sdk_decode):.0f}")
print(f"encode.openai_python events_per_s={best(sdk_encode):.0f}")
print(f"peer.openai_python version={openai.__version__}")
