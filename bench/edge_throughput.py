"""One `relay edge` on one core: the frame writes a second it sustains, with asyncio's loop and uvloop's.

    python -m bench.edge_throughput [--viewers 2000,5000] [--loops asyncio,uvloop]
        [--writes 25000,50000,100000,150000,200000,300000,400000] [--seconds 10] [--out FILE]

A real redis-server; this process plays the transcribing relay: a `CaptionHub` fed synthetic
captions (four growing partials, then the final, in English with French and Spanish
translations, as the relay encodes them) whose frames a real `RedisPublisher` XADDs to the
event's stream, exactly as `relay serve --redis` does. One real `relay edge --loop LOOP` process,
pinned to core 0 (sched_setaffinity), serves N viewers of a second process (bench.edge_viewers,
lean epoll viewers) pinned, with Redis and this process, to core 1.

For each viewer count, captions are published at increasing rates, each for `--seconds`; a frame
write is one entry delivered to one viewer's socket, so the target writes/s is entries/s × N.
Per point: the writes/s the viewers really got (frames whose `sent` is in the point, counted per
viewer), the share of the expected frames they got, the edge's CPU % (psutil, over the
publishing span), writes per edge CPU-second, the viewers' CPU % (if it nears 100 %, they are the
limit, not the edge), and the sent → socket delay (`sent` is stamped when the hub encodes the
caption, so it covers the publisher, Redis, the edge and the kernel). A point is kept up when
every viewer got ≥ 99.9 % of its frames within 5 s of the end of publishing and none was closed;
sustained when, besides, the delay p99 is under 250 ms. The ramp stops at the first point not
kept up, or whose edge CPU reaches 95 %.

On a shared machine other processes run on the edge's core too: the time the edge was runnable
but waiting for its core (/proc/PID/schedstat) is reported per point, and writes per edge
CPU-second, which such waiting does not change, is the per-core figure (the edge is one thread:
one core gives it at most one CPU-second a second). The edge's CPU includes the kernel's loopback
TCP work for its writes (on 127.0.0.1 the viewers' receive path runs in the sender's system call).
Also: the edge's start-up time, its idle RSS and RSS per viewer, and which heavy libraries (model
stack, FFmpeg) its process maps.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from redis.asyncio import Redis

from bench.edge_viewers import crowd_process
from bench.relay_run import RELAY, run_conditions, stop_relay, write_result
from bench.viewers import _recv_within
from relay.bus.publisher import RedisPublisher
from relay.bus.stream import EventMeta
from relay.hub import CaptionHub
from relay.messages import Caption, SourceState
from relay.protocol import Frame
from tests.support.redis_server import RedisServer

EDGE_CORE, OTHER_CORE = 0, 1
P99_LIMIT_MS = 250.0
CPU_LIMIT_PERCENT = 95.0
VIEWERS_NICE = 5
HEAVY_LIBRARIES = ("ctranslate2", "onnxruntime", "libavcodec", "libtorch", "uvloop")
_EN = "we now turn to item four on the agenda the report of the budget committee on next year's accounts".split()
_FR = "nous passons au point quatre de l'ordre du jour le rapport de la commission du budget sur les comptes".split()
_ES = "pasamos al punto cuatro del orden del día el informe de la comisión de presupuestos sobre las cuentas".split()


def synthetic_caption(n: int) -> Caption:
    """The n-th caption: utterance n // 5, its partials growing, every fifth a final."""
    utterance, step = divmod(n, 5)
    kind = "final" if step == 4 else "partial"
    share = (step + 2) / 6

    def words(all_words: list[str]) -> str:
        return " ".join(all_words[: max(3, round(len(all_words) * share))])

    return Caption(kind=kind, id=f"u{utterance}", lang="en", text=words(_EN), start=utterance * 4.0,
                   end=utterance * 4.0 + 3.5, wall=utterance * 4.0 + 4.5,
                   translations={"fr": words(_FR), "es": words(_ES)}, mt={"fr": "apertium", "es": "apertium"})


class _Finals:
    """The relay's finals (SQLite in the relay): kept in memory, read back by the publisher."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def append(self, frame: Frame) -> None:
        self.frames.append(frame)

    def latest(self, count: int) -> list[Frame]:
        return self.frames[-count:]

    async def finals_since(self, seq: int, limit: int | None = None) -> list[Frame]:
        after = [f for f in self.frames if (f.seq or 0) > seq]
        return after[: limit or len(after)]


class SyntheticRelay:
    """A relay's hub and its real `RedisPublisher`, publishing synthetic captions at a given rate."""

    def __init__(self, url: str, event: str) -> None:
        finals = _Finals()
        self.hub = CaptionHub(store=finals, channels=[("floor", None)])
        meta = EventMeta(self.hub.session, list(self.hub.channels.items()), self.hub.tracks, self.hub.languages,
                         self.hub.label, self.hub.states)
        self.redis = Redis.from_url(url, socket_timeout=10)
        self.publisher = RedisPublisher(self.redis, event, meta, finals, url)
        self.hub.taps.append(self.publisher.offer)
        self.task = asyncio.create_task(self.publisher.run())
        self.hub.source_state(SourceState.CONNECTED)
        self.published = 0
        self.frame_bytes = 0

    async def ready(self) -> None:
        await self.publisher.drained()  # connected, meta written, nothing queued

    async def publish_for(self, rate: float, seconds: float) -> int:
        """Publish `rate` captions a second, evenly spaced, for `seconds`; return how many."""
        loop = asyncio.get_running_loop()
        start, n = loop.time(), 0
        while (due := start + n / rate) < start + seconds:
            await asyncio.sleep(due - loop.time())
            caption = synthetic_caption(self.published)
            self.hub.publish(caption)
            self.published += 1
            n += 1
        await self.publisher.drained()
        return n

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.redis.aclose()


def start_edge(redis_url: str, event: str, loop: str) -> tuple[subprocess.Popen, str, float]:
    """`relay edge --loop LOOP` pinned to the edge core; it, its URL and its start-up seconds."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(RELAY), "edge", "--redis", redis_url, "--event", event, "--port", "0", "--loop", loop,
         "--max-viewers-per-address", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {EDGE_CORE}),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "viewers open" not in line:
        proc.kill()
        raise RuntimeError(f"relay edge did not start: {line!r}")
    return proc, line.split("viewers open ", 1)[1].strip().rstrip("/"), round(time.monotonic() - started, 2)


def mapped_libraries(pid: int) -> list[str]:
    """Which of HEAVY_LIBRARIES the process has mapped (loaded)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [name for name in HEAVY_LIBRARIES if name in maps]


def dropped_viewers(url: str) -> float | None:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("relay_edge_viewers_dropped_total "):
                return float(line.split()[1])
    return None


def _cpu_s(process: psutil.Process) -> tuple[float, float]:
    """User and system CPU seconds."""
    times = process.cpu_times()
    return times.user, times.system


def _waited_s(pid: int) -> float:
    """Seconds the edge's main thread has spent runnable but waiting for its core (other processes on it)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def _rss_mb(process: psutil.Process) -> float:
    return round(process.memory_info().rss / 2**20, 1)


async def run_point(relay: SyntheticRelay, edge: psutil.Process, url: str, conn: Any, client: Any,
                    viewers: int, target: int, seconds: float) -> dict[str, Any]:
    """Publish at `target` / `viewers` entries a second for `seconds`; what the edge and viewers did."""
    loop = asyncio.get_running_loop()
    conn.send(("begin", time.time()))
    await asyncio.sleep(0.3)  # the viewers count from now: nothing is published meanwhile
    cpu0, waited0, t0 = _cpu_s(edge), _waited_s(edge.pid), time.monotonic()
    entries = await relay.publish_for(target / viewers, seconds)
    span, cpu1, waited = time.monotonic() - t0, _cpu_s(edge), _waited_s(edge.pid) - waited0
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    edge_cpu = user + system
    conn.send(("finish", entries, span))
    got = await loop.run_in_executor(None, _recv_within, conn, 60.0, client)
    frames, delay = got["frames"], got["delay_ms"]
    point = {
        "target_writes_per_s": target,
        "entries_per_s": round(entries / span, 1),
        "writes_per_s": round(frames / span),
        "delivered_share": round(frames / (entries * viewers), 5),
        "viewers_complete": got["viewers_complete"],
        "edge_cpu_percent": round(100 * edge_cpu / span, 1),
        "edge_cpu_percent_user_system": [round(100 * user / span, 1), round(100 * system / span, 1)],
        "edge_waiting_for_its_core_percent": round(100 * waited / span, 1),
        "writes_per_edge_cpu_second": round(frames / edge_cpu) if edge_cpu else None,
        "viewers_cpu_percent": got["cpu_percent"],
        "sent_to_socket_ms": delay,
        "viewers_closed": got["closed"],
        "dropped_by_edge": dropped_viewers(url),
        "edge_rss_mb": _rss_mb(edge),
    }
    point["kept_up"] = point["delivered_share"] >= 0.999 and not got["closed"]
    point["sustained"] = point["kept_up"] and delay["p99"] is not None and delay["p99"] <= P99_LIMIT_MS
    return point


async def run_edge_case(redis_url: str, loop_name: str, viewers: int, targets: list[int],
                        seconds: float) -> dict[str, Any]:
    """One edge with `loop_name`, `viewers` viewers, the rates ramped until it no longer keeps up."""
    event = f"bench-{loop_name}-{viewers}"
    relay = SyntheticRelay(redis_url, event)
    await relay.ready()
    proc, url, startup_s = await asyncio.to_thread(start_edge, redis_url, event, loop_name)
    edge = psutil.Process(proc.pid)
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    client = spawn.Process(target=crowd_process, name="viewers",
                           args=(url.replace("http", "ws", 1) + "/ws", viewers, VIEWERS_NICE, theirs))
    case: dict[str, Any] = {"loop": loop_name, "viewers": viewers, "edge_startup_s": startup_s,
                            "loadavg_1_before": round(os.getloadavg()[0], 2)}
    try:
        await asyncio.sleep(1.0)
        case["edge_libraries_mapped"] = mapped_libraries(proc.pid)
        case["edge_idle_rss_mb"] = _rss_mb(edge)
        client.start()
        theirs.close()
        _, case["connect_s"], closed = await asyncio.to_thread(_recv_within, ours, 300.0, client)
        await asyncio.sleep(1.0)
        case["edge_rss_mb_with_viewers"] = _rss_mb(edge)
        case["rss_per_viewer_kb"] = round(
            (case["edge_rss_mb_with_viewers"] - case["edge_idle_rss_mb"]) * 1024 / viewers, 1)
        case["closed_while_connecting"] = closed
        case["points"] = []
        for target in targets:
            point = await run_point(relay, edge, url, ours, client, viewers, target, seconds)
            print(f"edge {loop_name} {viewers} viewers: {point}", flush=True)
            case["points"].append(point)
            if not point["kept_up"] or point["edge_cpu_percent"] >= CPU_LIMIT_PERCENT:
                break
        case["loadavg_1_after"] = round(os.getloadavg()[0], 2)
        points = case["points"]
        case["max_kept_up_writes_per_s"] = max((p["writes_per_s"] for p in points if p["kept_up"]), default=None)
        case["max_sustained_writes_per_s"] = max((p["writes_per_s"] for p in points if p["sustained"]), default=None)
        per_cpu = [p["writes_per_edge_cpu_second"] for p in points if p["kept_up"] and p["writes_per_edge_cpu_second"]]
        case["writes_per_edge_cpu_second_median"] = round(statistics.median(per_cpu)) if per_cpu else None
        ours.send(("stop",))
    finally:
        client.join(30)
        if client.is_alive():
            client.kill()
        stop_relay(proc)
        await relay.close()
    return case


async def run_all(loops: list[str], counts: list[int], targets: list[int], seconds: float) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis", appendonly=False).start()
        try:
            return [await run_edge_case(redis.url, loop, n, targets, seconds) for n in counts for loop in loops]
        finally:
            redis.stop()


def summarise(cases: list[dict]) -> dict[str, Any]:
    """Per loop and viewer count: writes per edge CPU-second, and the most writes/s kept up and sustained."""
    keys = ("writes_per_edge_cpu_second_median", "max_kept_up_writes_per_s", "max_sustained_writes_per_s")
    return {f"{case['loop']} {case['viewers']} viewers": {key: case[key] for key in keys} for case in cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default="2000,5000")
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--writes", default="25000,50000,100000,150000,200000,300000,400000",
                        help="target frame writes a second, ramped in this order")
    parser.add_argument("--seconds", type=float, default=10.0, help="publishing time per rate")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("bench.edge_throughput needs two cores (the edge on one, its viewers on the other)")
    conditions = run_conditions()
    os.sched_setaffinity(0, {OTHER_CORE})  # Redis, the publisher and the viewers' process inherit it
    cases = asyncio.run(run_all(args.loops.split(","), [int(n) for n in args.viewers.split(",")],
                                [int(n) for n in args.writes.split(",")], args.seconds))
    write_result({**conditions, "edge_core": EDGE_CORE, "viewers_redis_and_publisher_core": OTHER_CORE,
                  "seconds_per_rate": args.seconds, "p99_limit_ms": P99_LIMIT_MS,
                  "summary": summarise(cases), "cases": cases}, args.out)


if __name__ == "__main__":
    main()
