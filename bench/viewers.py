"""Viewer fan-out benchmark: delivery delay, server memory per viewer, what every viewer got.

The caption server and a publisher (a partial every second, a final every three) run in the
measuring process; the viewers (bench.clients) are `websockets` Sans-I/O clients, one asyncio
loop in a separate process, some of which read slowly (`--slow-read-bps`, default 100 B/s,
below the caption stream's rate, so they fall behind, are closed by the server and resume with
`since`; `finals` says how their connections ended). Each caption's `sent` is its publish time.
Two delays are reported per message: `arrival` (kernel receive timestamp on the viewer's
socket, what the relay controls) and the plain `p50/p99` (when the viewer process handled it,
which adds this one process's backlog of thousands of sockets). Each point runs in a fresh
server process so memory freed by one point cannot flatter the next one's RSS.

    python -m bench.viewers [--viewers 100,1000,5000] [--seconds 25] [--slow 0.1] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.clients import Crowd, completeness, crowd_process, raise_fd_limit
from bench.relay_run import run_conditions, write_result
from relay.hub import CaptionHub
from relay.messages import Caption, SourceState
from relay.server import ServerSettings, create_app, serve

SENTENCES = (
    "Good morning everyone, and welcome to the annual general meeting of the cooperative.",
    "Before we start, a few practical notes about the agenda and how to ask questions.",
    "The first item is the approval of last year's minutes, which you received by email.",
    "We will now hear the treasurer's report on the accounts for the financial year.",
)


@dataclass(frozen=True, slots=True)
class Point:
    """One measurement: how many viewers, how many of them slow (and how slow), for how long."""

    viewers: int
    slow: int
    seconds: float
    slow_read_bps: int = 100
    max_buffer_bytes: int = ServerSettings().max_buffer_bytes
    warmup_s: float = 3.0
    partial_interval_s: float = 1.0
    final_every: int = 3


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _caption(n: int, final: bool) -> Caption:
    en = SENTENCES[n % len(SENTENCES)]
    text = en if final else en[: len(en) * 2 // 3]
    return Caption(
        kind="final" if final else "partial",
        id=f"u{n}",
        lang="en",
        text=text,
        start=n * 3.0,
        end=n * 3.0 + 2.8,
        wall=time.time(),
        translations={"en": text, "fr": f"[fr] {text}", "es": f"[es] {text}"},
        mt={"fr": "opus-mt-en-fr", "es": "opus-mt-en-es"},
    )


async def _publish(hub: CaptionHub, point: Point, duration_s: float, first_tick: int, fanout_s: list[float]) -> int:
    """Publish on a fixed, drift-free schedule, timing each fan-out; return the next tick number."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    ticks = int(duration_s / point.partial_interval_s)
    for k in range(ticks):
        await asyncio.sleep(max(0.0, start + k * point.partial_interval_s - loop.time()))
        tick = first_tick + k
        caption = _caption(tick // point.final_every, final=tick % point.final_every == point.final_every - 1)
        began = time.perf_counter()
        hub.publish(caption)
        fanout_s.append(time.perf_counter() - began)
    return first_tick + ticks


async def run_point(point: Point) -> dict[str, Any]:
    """Measure one point with the server in this process and the viewers in another."""
    raise_fd_limit(point.viewers + 256)
    hub = CaptionHub(backlog=100)
    hub.source_state(SourceState.CONNECTED)
    loop = asyncio.get_running_loop()
    spawn = multiprocessing.get_context("spawn")
    app = create_app(hub, settings=ServerSettings(max_buffer_bytes=point.max_buffer_bytes, max_viewers_per_address=0))
    async with serve(app, "127.0.0.1", 0) as url:
        gc.collect()
        rss_empty, load = rss_bytes(), os.getloadavg()[0]
        ours, theirs = spawn.Pipe()
        crowd = Crowd(url.replace("http", "ws", 1) + "/ws", point.viewers, point.slow, point.slow_read_bps)
        viewers = spawn.Process(target=crowd_process, args=(crowd, theirs))
        viewers.start()
        try:
            if await loop.run_in_executor(None, _recv_within, ours, 300.0, viewers) != "ready":
                raise RuntimeError("viewer process failed to connect")
            fanout_s: list[float] = []
            tick = await _publish(hub, point, point.warmup_s, 0, [])
            measure_from, cpu_from = time.time(), time.process_time()
            await _publish(hub, point, point.seconds, tick, fanout_s)
            cpu_s = time.process_time() - cpu_from
            rss_full, attached = rss_bytes(), hub.viewer_count
            ours.send((measure_from, tick + len(fanout_s)))
            result = await loop.run_in_executor(None, _recv_within, ours, 120.0, viewers)
        finally:
            viewers.join(30)
            if viewers.is_alive():
                viewers.kill()
    result.update(fanout_ms=np.array(fanout_s) * 1000.0, load=load, dropped=hub.dropped)
    summary = _summarise(point, result, rss_empty, rss_full, cpu_s, attached)
    summary["finals"] = completeness(result, dict.fromkeys(range(1, hub.seq + 1)), point.slow)
    return summary


def _recv_within(
    conn: multiprocessing.connection.Connection, timeout_s: float, process: multiprocessing.process.BaseProcess
) -> Any:
    """Receive from a child process, failing fast if it died."""
    deadline = time.monotonic() + timeout_s
    while not conn.poll(1.0):
        if not process.is_alive():
            raise RuntimeError(f"{process.name} exited with {process.exitcode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.name} did not answer within {timeout_s} s")
    return conn.recv()


def _percentile(values_ms: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values_ms, q)), 1) if values_ms.size else None


def _summarise(
    point: Point, result: dict[str, Any], rss_empty: int, rss_full: int, cpu_s: float, attached: int
) -> dict[str, Any]:
    delays_ms, arrival_ms = result["delays"] * 1000.0, result["arrival"] * 1000.0
    expected = int(point.seconds / point.partial_interval_s)
    return {
        **asdict(point),
        "samples": int(delays_ms.size),
        "arrival_p50_ms": _percentile(arrival_ms, 50),
        "arrival_p99_ms": _percentile(arrival_ms, 99),
        "p50_ms": _percentile(delays_ms, 50),
        "p99_ms": _percentile(delays_ms, 99),
        "max_ms": _percentile(delays_ms, 100),
        "fanout_p50_ms": _percentile(result["fanout_ms"], 50),
        "fanout_max_ms": _percentile(result["fanout_ms"], 100),
        "captions_published": expected,
        "kept_up_received_min": result["min_received"],
        "stream_bytes_per_s": round(result["bytes_read_median"] / (point.seconds + point.warmup_s)),
        "dropped_by_server": result["dropped"],
        "viewers_still_attached": attached,
        "server_rss_empty_mb": round(rss_empty / 2**20, 1),
        "server_rss_mb": round(rss_full / 2**20, 1),
        "rss_per_viewer_kb": round((rss_full - rss_empty) / max(1, point.viewers) / 1024, 1),
        "server_cpu_pct": round(100.0 * cpu_s / point.seconds, 1),
        "loadavg_before": round(result["load"], 2),
    }


def _fresh_process_point(point: Point, conn: multiprocessing.connection.Connection) -> None:
    conn.send(asyncio.run(run_point(point)))


def run(
    viewer_counts: Sequence[int] = (100, 1000, 5000),
    seconds: float = 25.0,
    slow_fraction: float = 0.1,
    **settings: int,
) -> dict[str, Any]:
    """Measure every viewer count without and with slow viewers, each in a fresh server process.

    A fresh process per point keeps memory freed by one point from flattering the next one's RSS.
    `settings`: slow_read_bps, max_buffer_bytes (see Point).
    """
    points = []
    for viewers in viewer_counts:
        for fraction in (0.0, slow_fraction):
            point = Point(viewers=viewers, slow=int(viewers * fraction), seconds=seconds, **settings)
            ours, theirs = multiprocessing.get_context("spawn").Pipe()
            worker = multiprocessing.get_context("spawn").Process(target=_fresh_process_point, args=(point, theirs))
            worker.start()
            points.append(_recv_within(ours, seconds + 600.0, worker))
            worker.join(60)
    return {"python": sys.version.split()[0], "points": points}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default="100,1000,5000", help="comma-separated viewer counts")
    parser.add_argument("--seconds", type=float, default=25.0, help="measured seconds per point")
    parser.add_argument("--slow", type=float, default=0.1, help="slow share in the second run of each count")
    parser.add_argument("--slow-read-bps", type=int, default=100, help="bytes a second a slow viewer reads")
    parser.add_argument("--viewer-buffer-kib", type=int, default=1024, help="server's unsent limit a viewer (1024)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.viewers.split(",")]
    conditions = run_conditions()
    result = run(counts, args.seconds, args.slow, slow_read_bps=args.slow_read_bps,
                 max_buffer_bytes=args.viewer_buffer_kib * 1024)
    write_result({**conditions, **result}, args.out)


if __name__ == "__main__":
    main()
