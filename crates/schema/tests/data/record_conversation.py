#!/usr/bin/env python3
"""Records `conversation.jsonl`: a multi-turn session with the reelthyme simulator.

Run `reelthyme sim --transcript "What is the weather like in Paris today?"` and then
`python3 record_conversation.py ws://127.0.0.1:PORT path/to/weather_24k.wav > conversation.jsonl`.
The standard library only (a minimal WebSocket client), so that it runs anywhere.
The turns: a text question, a tool call and its output, a spoken question answered by
server VAD (its auto-response), then a truncation, a retrieval and a deletion. Audio is G.711 µ-law both ways
to keep the file small.
"""

import audioop
import base64
import json
import os
import socket
import struct
import sys
import time
import wave
from urllib.parse import urlparse


class WebSocket:
    def __init__(self, url):
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        path = (u.path.rstrip("/") or "/v1") + "/realtime?model=gpt-realtime"
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Authorization: Bearer sk-sim\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise SystemExit(head.decode(errors="replace"))
        self.buffer = b""

    def send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 0x9:  # ping: answer it
                self.sock.sendall(struct.pack("!BB", 0x8A, 0x80) + b"\0\0\0\0")
                continue
            if opcode == 0x8:
                raise EOFError
            message += payload
            if b0 & 0x80:
                return message.decode()


START = time.monotonic()
LINES = [json.dumps({"reelthyme_recording": 1, "model": "gpt-realtime"})]


def record(from_server, event):
    t_ms = int((time.monotonic() - START) * 1000)
    LINES.append(json.dumps({"t_ms": t_ms, "direction": "server" if from_server else "client", "event": event}))


def send(ws, event):
    record(False, event)
    ws.send(json.dumps(event))


def until(ws, kind, count=1):
    """Records server events up to and including the `count`-th of type `kind`."""
    seen = 0
    while True:
        event = json.loads(ws.recv())
        record(True, event)
        if event["type"] == kind:
            seen += 1
            if seen == count:
                return event


def main():
    url, wav_path = sys.argv[1], sys.argv[2]
    ws = WebSocket(url)
    until(ws, "session.created")
    send(ws, {"type": "session.update", "event_id": "c_session", "session": {
        "type": "realtime",
        "instructions": "Answer briefly.",
        "tools": [{"type": "function", "name": "get_weather", "description": "The weather in a city.",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                  "required": ["city"]}}],
        "audio": {
            "input": {"format": {"type": "audio/pcmu"},
                      "transcription": {"model": "gpt-4o-mini-transcribe"},
                      "turn_detection": None},
            "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"},
        },
    }})
    until(ws, "session.updated")

    # Turn 1: text in, audio (and its transcript) out.
    send(ws, {"type": "conversation.item.create", "event_id": "c_hello", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello there"}]}})
    send(ws, {"type": "response.create", "event_id": "c_r1", "response": {"metadata": {"turn": "1"}}})
    until(ws, "response.done")

    # Turn 2: a tool call, its output, and the answer.
    send(ws, {"type": "conversation.item.create", "event_id": "c_ask", "item": {
        "type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "What is the weather in Paris?"}]}})
    send(ws, {"type": "response.create", "event_id": "c_r2"})
    done = until(ws, "response.done")
    call = next(i for i in done["response"]["output"] if i["type"] == "function_call")
    send(ws, {"type": "conversation.item.create", "event_id": "c_output", "item": {
        "type": "function_call_output", "call_id": call["call_id"], "output": "18 °C, clear"}})
    send(ws, {"type": "response.create", "event_id": "c_r3",
              "response": {"output_modalities": ["text"]}})
    until(ws, "response.done")

    # Turn 3: speech, which server VAD commits and answers (tools off for it).
    send(ws, {"type": "session.update", "event_id": "c_vad", "session": {
        "type": "realtime", "tool_choice": "none",
        "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300,
                                               "create_response": True, "interrupt_response": True}}},
    }})
    until(ws, "session.updated")
    with wave.open(wav_path) as w:
        pcm = w.readframes(w.getnframes())
        rate = w.getframerate()
    pcm8k, _ = audioop.ratecv(pcm, 2, 1, rate, 8000, None)
    ulaw = audioop.lin2ulaw(pcm8k, 2)
    for at in range(0, len(ulaw), 1600):  # 200 ms a chunk
        send(ws, {"type": "input_audio_buffer.append", "audio": base64.b64encode(ulaw[at:at + 1600]).decode()})
    done = until(ws, "response.done")
    spoken = next(i for i in done["response"]["output"] if i["type"] == "message")

    # Housekeeping: cut the last answer's audio as if played for 400 ms, retrieve the
    # spoken item (with its audio), delete the first item.
    send(ws, {"type": "conversation.item.truncate", "event_id": "c_truncate",
              "item_id": spoken["id"], "content_index": 0, "audio_end_ms": 400})
    until(ws, "conversation.item.truncated")
    first = next(json.loads(l)["event"] for l in LINES[1:]
                 if json.loads(l)["event"]["type"] == "conversation.item.added")
    spoken_by_user = next(json.loads(l)["event"] for l in LINES[1:]
                          if json.loads(l)["event"]["type"] == "input_audio_buffer.committed")
    send(ws, {"type": "conversation.item.retrieve", "event_id": "c_retrieve",
              "item_id": spoken_by_user["item_id"]})
    until(ws, "conversation.item.retrieved")
    send(ws, {"type": "conversation.item.delete", "event_id": "c_delete", "item_id": first["item"]["id"]})
    until(ws, "conversation.item.deleted")
    print("\n".join(LINES))


if __name__ == "__main__":
    main()
