"""One `relay edge` on one core: the frame writes a second it sustains, with asyncio's loop and uvloop's.

    python -m bench.edge_throughput [--viewers 2000,5000] [--loops asyncio,uvloop]
        [--writes 25000,50000,100000,150000,200000,300000,400000] [--seconds 10] [--out FILE]

A real redis-server; this process plays the transcribing relay: a `CaptionHub` fed synthetic
captions (four growing partials, then the final, in English with French and Spanish
translations, as the relay encodes them) whose frames a real `RedisPublisher` XADDs to the
event's stream, exactly as `relay serve --redis` does. One real `relay edge --loop LOOP` process,
pinned to core 0 (sched_setaffinity), serves N viewers of a second process (bench.edge_viewers,
lean epoll viewers) pinned, with Redis and this process, to core 1.

For each viewer count an edge per loop (each with its own event and viewers) is started, and
captions are published at increasing rates, each for `--seconds`, each rate on one edge then the
other, so that both meet alike conditions on the shared machine; a frame
write is one entry delivered to one viewer's socket, so the target writes/s is entries/s × N.
Per point: the writes/s the viewers really got (frames whose `sent` is in the point, counted per
viewer), the share of the expected frames they got, the edge's CPU % (psutil, over the
publishing span), writes per edge CPU-second, the viewers' CPU % (if it nears 100 %, they are the
limit, not the edge), and the sent → socket delay (`sent` is stamped when the hub encodes the
caption, so it covers the publisher, Redis, the edge and the kernel). A point is kept up when
every viewer got ≥ 99.9 % of its frames within 5 s of the end of publishing and none was closed;
sustained when, besides, the delay p99 is under 250 ms. An edge's ramp stops (and the edge is
killed, its backlog off the core) at its first point not kept up, or whose delay p99 is over 1 s
(falling behind). Not at a CPU limit: a saturated edge writes all the entries of one Redis read
to a viewer in one go, so its frame writes a second can still grow at full CPU.

On a shared machine other processes run on the edge's core too: the time the edge was runnable
but waiting for its core (/proc/PID/schedstat) is reported per point, and writes per edge
CPU-second, which such waiting does not change, is the per-core figure (the edge is one thread:
one core gives it at most one CPU-second a second). The edge's CPU includes the kernel's loopback
TCP work for its writes (on 127.0.0.1 the viewers' receive path runs in the sender's system call).
Also: the edge's start-up time, its idle RSS and RSS per viewer, which heavy libraries (model
stack, FFmpeg) its process maps, and, first, bench.send_floor: what bare send() calls cost per
frame on the edge's core, one frame per call and several joined.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

from bench.edge_feeder import SyntheticRelay
from bench.edge_viewers import crowd_process
from bench.relay_run import RELAY, run_conditions, write_result
from bench.send_floor import measure_send_floor
from bench.viewers import _recv_within
from tests.support.redis_server import RedisServer

EDGE_CORE, OTHER_CORE = 0, 1
P99_LIMIT_MS = 250.0
FALLING_BEHIND_MS = 1000.0  # a p99 this high: the edge is not keeping pace, whatever it delivers in the end
VIEWERS_NICE = 5
HEAVY_LIBRARIES = ("ctranslate2", "onnxruntime", "libavcodec", "libtorch", "uvloop")


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
    """The edge's count of viewers dropped as too slow (None if it does not answer: busy fanning out)."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("relay_edge_viewers_dropped_total "):
                    return float(line.split()[1])
    except OSError:
        pass
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


class EdgeCase:
    """One edge (`loop`) with its own event, publisher and `viewers` viewers; points run one at a time."""

    def __init__(self, redis_url: str, loop: str, viewers: int) -> None:
        self.redis_url, self.loop, self.viewers = redis_url, loop, viewers
        self.event = f"bench-{loop}-{viewers}"
        self.report: dict[str, Any] = {"loop": loop, "viewers": viewers, "points": []}
        self.done = False

    async def start(self) -> None:
        self.relay = SyntheticRelay(self.redis_url, self.event)
        await self.relay.ready()
        self.proc, self.url, self.report["edge_startup_s"] = await asyncio.to_thread(
            start_edge, self.redis_url, self.event, self.loop)
        self.edge = psutil.Process(self.proc.pid)
        await asyncio.sleep(1.0)
        self.report["edge_libraries_mapped"] = mapped_libraries(self.proc.pid)
        idle = self.report["edge_idle_rss_mb"] = _rss_mb(self.edge)
        spawn = multiprocessing.get_context("spawn")
        self.conn, theirs = spawn.Pipe()
        ws_url = self.url.replace("http", "ws", 1) + "/ws"
        self.client = spawn.Process(target=crowd_process, name="viewers", args=(ws_url, self.viewers, VIEWERS_NICE, theirs))
        self.client.start()
        theirs.close()
        _, self.report["connect_s"], self.report["closed_while_connecting"] = await asyncio.to_thread(
            _recv_within, self.conn, 300.0, self.client)
        await asyncio.sleep(1.0)
        loaded = self.report["edge_rss_mb_with_viewers"] = _rss_mb(self.edge)
        self.report["rss_per_viewer_kb"] = round((loaded - idle) * 1024 / self.viewers, 1)

    async def point(self, target: int, seconds: float) -> None:
        """Publish at `target` / viewers entries a second for `seconds`; what the edge and viewers did."""
        self.conn.send(("begin", time.time()))
        await asyncio.sleep(0.3)  # the viewers count from now: nothing is published meanwhile
        cpu0, waited0, t0 = _cpu_s(self.edge), _waited_s(self.edge.pid), time.monotonic()
        entries = await self.relay.publish_for(target / self.viewers, seconds)
        span, cpu1, waited = time.monotonic() - t0, _cpu_s(self.edge), _waited_s(self.edge.pid) - waited0
        user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
        self.conn.send(("finish", entries, span))
        got = await asyncio.to_thread(_recv_within, self.conn, 60.0, self.client)
        frames, delay = got["frames"], got["delay_ms"]
        point = {
            "target_writes_per_s": target,
            "entries_per_s": round(entries / span, 1),
            "writes_per_s": round(frames / span),
            "delivered_share": round(frames / (entries * self.viewers), 5),
            "viewers_complete": got["viewers_complete"],
            "edge_cpu_percent": round(100 * (user + system) / span, 1),
            "edge_cpu_percent_user_system": [round(100 * user / span, 1), round(100 * system / span, 1)],
            "edge_waiting_for_its_core_percent": round(100 * waited / span, 1),
            "writes_per_edge_cpu_second": round(frames / (user + system)) if user + system else None,
            "viewers_cpu_percent": got["cpu_percent"],
            "sent_to_socket_ms": delay,
            "viewers_closed": got["closed"],
            "dropped_by_edge": dropped_viewers(self.url),
            "edge_rss_mb": _rss_mb(self.edge),
            "loadavg_1": round(os.getloadavg()[0], 2),
        }
        point["kept_up"] = point["delivered_share"] >= 0.999 and not got["closed"]
        point["sustained"] = point["kept_up"] and delay["p99"] is not None and delay["p99"] <= P99_LIMIT_MS
        print(f"edge {self.loop} {self.viewers} viewers: {point}", flush=True)
        self.report["points"].append(point)
        # Not at a CPU limit: a busy edge batches (one write per viewer for all the entries of a
        # Redis read), so it may deliver more frames a second at 95 % CPU than at 90 %.
        self.done = not point["kept_up"] or delay["p99"] is None or delay["p99"] > FALLING_BEHIND_MS

    async def stop(self) -> dict[str, Any]:
        """Kill the edge at once (saturated, it may still be working off a backlog on the shared core)."""
        if hasattr(self, "client"):
            with contextlib.suppress(OSError):
                self.conn.send(("stop",))
            await asyncio.to_thread(self.client.join, 30)
            if self.client.is_alive():
                self.client.kill()
        if hasattr(self, "proc"):
            self.proc.kill()
            self.proc.wait(10)
        if hasattr(self, "relay"):
            await self.relay.close()
        points = self.report["points"]
        best = {"kept_up": [p["writes_per_s"] for p in points if p["kept_up"]],
                "sustained": [p["writes_per_s"] for p in points if p["sustained"]]}
        self.report["max_kept_up_writes_per_s"] = max(best["kept_up"], default=None)
        self.report["max_sustained_writes_per_s"] = max(best["sustained"], default=None)
        per_cpu = [p["writes_per_edge_cpu_second"] for p in points if p["kept_up"] and p["writes_per_edge_cpu_second"]]
        self.report["writes_per_edge_cpu_second_median"] = round(statistics.median(per_cpu)) if per_cpu else None
        return self.report


async def run_viewer_count(redis_url: str, loops: list[str], viewers: int, targets: list[int],
                           seconds: float) -> list[dict[str, Any]]:
    """An edge per loop, the same viewer count; each rate run on each edge in turn (alike conditions)."""
    cases = [EdgeCase(redis_url, loop, viewers) for loop in loops]
    try:
        for case in cases:
            await case.start()
        for target in targets:
            for case in cases:
                if not case.done:
                    await case.point(target, seconds)
                    if case.done:
                        await case.stop()  # its backlog must not load the core the others are measured on
            if all(case.done for case in cases):
                break
    finally:
        reports = [await case.stop() if not case.done else case.report for case in cases]
    return reports


async def run_all(loops: list[str], counts: list[int], targets: list[int], seconds: float) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis", appendonly=False).start()
        try:
            return [case for n in counts for case in await run_viewer_count(redis.url, loops, n, targets, seconds)]
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
    floor = measure_send_floor(sender_core=EDGE_CORE, reader_core=OTHER_CORE)
    os.sched_setaffinity(0, {OTHER_CORE})  # Redis, the publisher and the viewers' process inherit it
    cases = asyncio.run(run_all(args.loops.split(","), [int(n) for n in args.viewers.split(",")],
                                [int(n) for n in args.writes.split(",")], args.seconds))
    write_result({**conditions, "edge_core": EDGE_CORE, "viewers_redis_and_publisher_core": OTHER_CORE,
                  "seconds_per_rate": args.seconds, "p99_limit_ms": P99_LIMIT_MS,
                  "summary": summarise(cases), "send_floor": floor, "cases": cases}, args.out)


if __name__ == "__main__":
    main()
