"""The scale harness of `reelthyme-bench scale`, driven by openai-python clients.

    python scale_sdk.py WS_URL SESSIONS WARMUP_S MEASURE_S [BATCH]

N sessions of the official SDK (`AsyncOpenAI(...).realtime.connect`, unmodified, in one
asyncio loop: one process, one core) against the simulator at WS_URL (ws://HOST:PORT, run
with `stamp_event_ids`), doing the work of reelthyme's sessions: VAD off; every 40 ms an
`input_audio_buffer.append` of 40 ms of 24 kHz speech-like audio, encoded at each send
(and a clear every 50 appends); the next out-of-band response (`conversation: "none"`) as
soon as one is done; every `response.output_audio.delta` decoded into 16-bit samples.

Delay: the simulator's wall clock when it emitted the delta (`….t<µs>` at the end of the
event id) to this process's when the SDK's iterator gave the parsed event. CPU: this
process's user + system time over the measured window. Prints one line:
`scale.openai_python sessions=N client_cpu_pct=… client_cpu_pct_per_session=…
rss_kib_per_session=… p50_ms=… p99_ms=… p999_ms=… deltas=… …`.
"""

import array
import asyncio
import base64
import math
import sys
import time

from openai import AsyncOpenAI

URL = sys.argv[1]
SESSIONS = int(sys.argv[2])
WARMUP = float(sys.argv[3])
MEASURE = float(sys.argv[4])
BATCH = int(sys.argv[5]) if len(sys.argv) > 5 else 50


def speech_chunk(phase):
    """40 ms at 24 kHz: two partials under a syllable-rate envelope (as scale.rs makes)."""
    out = array.array("h")
    for i in range(960):
        t = (phase * 960 + i) / 24000.0
        envelope = 0.55 + 0.45 * math.sin(t * 2 * math.pi * 4.0)
        voice = math.sin(t * 2 * math.pi * 180.0) * 0.6 + math.sin(t * 2 * math.pi * 720.0) * 0.25
        out.append(int(voice * envelope * 12000.0))
    return out


CHUNKS = [speech_chunk(p) for p in range(25)]


def rss_kib():
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Stats:
    def __init__(self):
        self.measuring = False
        self.delays_us = []
        self.deltas = 0
        self.unstamped = 0
        self.appends = 0
        self.responses = 0
        self.errors = 0


def stamp_of(event_id):
    head, sep, tail = event_id.rpartition(".t")
    if not sep or not tail.isdigit():
        return None
    return int(tail)


async def sender(conn, index, stats, stop):
    sent = index
    next_at = time.monotonic()
    try:
        while not stop.is_set():
            chunk = CHUNKS[sent % len(CHUNKS)]
            sent += 1
            await conn.input_audio_buffer.append(audio=base64.b64encode(chunk.tobytes()).decode("ascii"))
            if sent % 50 == 0:
                await conn.input_audio_buffer.clear()
            if stats.measuring:
                stats.appends += 1
            next_at += 0.040
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at = time.monotonic()  # missed ticks are delayed, not bunched
                delay = 0
            await asyncio.sleep(delay)
    except Exception:  # noqa: BLE001 - counted, the run goes on
        if not stop.is_set():
            stats.errors += 1


async def receiver(conn, stats, stop):
    try:
        async for event in conn:
            if event.type == "response.output_audio.delta":
                received = time.time_ns() // 1000
                samples = array.array("h", base64.b64decode(event.delta))
                del samples
                if stats.measuring:
                    stats.deltas += 1
                    sent = stamp_of(event.event_id)
                    if sent is None:
                        stats.unstamped += 1
                    else:
                        stats.delays_us.append(max(0, received - sent))
            elif event.type == "response.done":
                if stats.measuring:
                    stats.responses += 1
                await conn.response.create(response={"conversation": "none"})
            elif event.type == "error":
                stats.errors += 1
            if stop.is_set():
                return
    except Exception:  # noqa: BLE001
        if not stop.is_set():
            stats.errors += 1


async def session(client, index, stats, stop, ready):
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        await conn.response.create(response={"conversation": "none"})
        ready.set()
        send = asyncio.create_task(sender(conn, index, stats, stop))
        receive = asyncio.create_task(receiver(conn, stats, stop))
        await stop.wait()
        send.cancel()
        receive.cancel()
        await asyncio.gather(send, receive, return_exceptions=True)


def quantile_ms(sorted_us, q):
    if not sorted_us:
        return "none"
    rank = max(1, math.ceil(len(sorted_us) * q))
    return "%.3f" % (sorted_us[min(rank, len(sorted_us)) - 1] / 1000.0)


async def main():
    stats = Stats()
    stop = asyncio.Event()
    client = AsyncOpenAI(api_key="sk-bench", websocket_base_url=URL + "/v1")
    rss_before = rss_kib()
    connect_started = time.monotonic()
    tasks = []
    for start in range(0, SESSIONS, BATCH):
        readies = []
        for index in range(start, min(SESSIONS, start + BATCH)):
            ready = asyncio.Event()
            readies.append(ready)
            tasks.append(asyncio.create_task(session(client, index, stats, stop, ready)))
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    connect_s = time.monotonic() - connect_started
    await asyncio.sleep(WARMUP)
    cpu_start, wall_start = time.process_time(), time.monotonic()
    stats.measuring = True
    await asyncio.sleep(MEASURE)
    stats.measuring = False
    wall = time.monotonic() - wall_start
    cpu = time.process_time() - cpu_start
    rss_after = rss_kib()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    delays = sorted(stats.delays_us)
    n = max(1, SESSIONS)
    fields = [
        ("sessions", SESSIONS),
        ("client_cpu_pct", "%.3f" % (100.0 * cpu / wall)),
        ("client_cpu_pct_per_session", "%.3f" % (100.0 * cpu / wall / n)),
        ("rss_kib_before", rss_before),
        ("rss_kib_after", rss_after),
        ("rss_kib_per_session", "%.1f" % (max(0, rss_after - rss_before) / n)),
        ("p50_ms", quantile_ms(delays, 0.50)),
        ("p99_ms", quantile_ms(delays, 0.99)),
        ("p999_ms", quantile_ms(delays, 0.999)),
        ("deltas", stats.deltas),
        ("deltas_per_session_s", "%.1f" % (stats.deltas / n / wall)),
        ("unstamped", stats.unstamped),
        ("appends", stats.appends),
        ("responses", stats.responses),
        ("errors", stats.errors),
        ("connect_s", "%.2f" % connect_s),
        ("measure_s", "%.2f" % wall),
    ]
    print("scale.openai_python " + " ".join("%s=%s" % kv for kv in fields), flush=True)


asyncio.run(main())
