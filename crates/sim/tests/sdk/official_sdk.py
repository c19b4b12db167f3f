"""Drives reelthyme's simulator with OpenAI's official Python SDK, unmodified.

Usage: python official_sdk.py WS_BASE API_KEY
(WS_BASE like ws://127.0.0.1:PORT). Prints one JSON line per scenario and exits 0 when all
of them behaved as the real API documents; any failure raises (non-zero exit).
"""

import asyncio
import base64
import json
import math
import struct
import sys

from openai import AsyncOpenAI

BASE, KEY = sys.argv[1], sys.argv[2]
TIMEOUT = 20


def client(key=KEY):
    return AsyncOpenAI(api_key=key, websocket_base_url=BASE + "/v1")


async def collect_until(conn, stop_type):
    seen = []
    async def loop():
        async for event in conn:
            seen.append(event)
            if event.type == stop_type:
                return
    await asyncio.wait_for(loop(), TIMEOUT)
    return seen


async def text_turn():
    async with client().realtime.connect(model="gpt-realtime") as conn:
        created = await asyncio.wait_for(conn.recv(), TIMEOUT)
        assert created.type == "session.created", created.type
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"], "instructions": "Be brief."})
        await conn.conversation.item.create(item={"type": "message", "role": "user",
                                                   "content": [{"type": "input_text", "text": "Hello SDK"}]})
        await conn.response.create()
        events = await collect_until(conn, "response.done")
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        done = events[-1]
        assert done.response.status == "completed", done.response.status
        assert text == "You said: Hello SDK", text
        assert any(e.type == "session.updated" and e.session.instructions == "Be brief." for e in events)
        return {"scenario": "text", "text": text}


def speech(seconds_on, seconds_off, rate=24000):
    samples = [0] * int(0.5 * rate)
    samples += [int(9000 * math.sin(2 * math.pi * 200 * n / rate)) for n in range(int(seconds_on * rate))]
    samples += [0] * int(seconds_off * rate)
    return struct.pack("<%dh" % len(samples), *samples)


async def audio_turn():
    async with client().realtime.connect(model="gpt-realtime") as conn:
        await asyncio.wait_for(conn.recv(), TIMEOUT)
        await conn.session.update(session={"type": "realtime", "audio": {"input": {
            "transcription": {"model": "gpt-4o-mini-transcribe"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}})
        pcm = speech(1.0, 1.0)
        for i in range(0, len(pcm), 1920):  # 40 ms appends
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i:i + 1920]).decode())
        events = await collect_until(conn, "response.done")
        types = [e.type for e in events]
        for expected in ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                         "input_audio_buffer.committed", "response.created", "response.output_audio.delta"]:
            assert expected in types, (expected, types)
        audio = b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta")
        transcript = "".join(e.delta for e in events if e.type == "response.output_audio_transcript.delta")
        assert len(audio) > 24000, len(audio)
        assert transcript == events[-1].response.output[0].content[0].transcript
        return {"scenario": "audio", "audio_bytes": len(audio), "transcript": transcript}


async def function_call():
    async with client().realtime.connect(model="gpt-realtime") as conn:
        await asyncio.wait_for(conn.recv(), TIMEOUT)
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"], "tools": [{
            "type": "function", "name": "get_weather", "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]})
        await conn.conversation.item.create(item={"type": "message", "role": "user",
                                                   "content": [{"type": "input_text", "text": "What is the weather in Lisbon?"}]})
        await conn.response.create()
        events = await collect_until(conn, "response.done")
        call = next(e for e in events if e.type == "response.function_call_arguments.done")
        assert call.name == "get_weather", call.name
        assert json.loads(call.arguments) == {"city": "Lisbon"}, call.arguments
        await conn.conversation.item.create(item={"type": "function_call_output", "call_id": call.call_id,
                                                   "output": json.dumps({"temp_c": 21})})
        await conn.response.create()
        events = await collect_until(conn, "response.done")
        answer = events[-1].response.output[0].content[0].text
        assert "21" in answer, answer
        return {"scenario": "function_call", "arguments": call.arguments, "answer": answer}


async def wrong_key():
    async with client("sk-wrong").realtime.connect(model="gpt-realtime") as conn:
        error = await asyncio.wait_for(conn.recv(), TIMEOUT)
        assert error.type == "error", error.type
        assert error.error.code == "invalid_api_key", error.error.code
        try:
            await asyncio.wait_for(conn.recv(), TIMEOUT)
        except Exception as closed:  # websockets.ConnectionClosedError
            code = getattr(getattr(closed, "rcvd", None), "code", None)
            assert code == 3000, (code, repr(closed))
            return {"scenario": "wrong_key", "code": error.error.code, "close": code}
        raise AssertionError("the connection stayed open after a wrong key")


async def main():
    for scenario in (text_turn, audio_turn, function_call, wrong_key):
        print(json.dumps(await scenario()), flush=True)


asyncio.run(main())
