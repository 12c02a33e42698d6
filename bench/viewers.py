"""Viewer fan-out benchmark: delivery delay and server memory per viewer.

The caption server and a publisher (a partial every second, a final every three)
run in the measuring process; the viewers are `websockets` Sans-I/O clients, one
asyncio loop in a separate process, some of which stop reading ("stalled").
Each caption's `wall` is its publish time, so a viewer's delay is `now - wall`.

    python -m bench.viewers [--viewers 100,1000,5000] [--seconds 25] [--stalled 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import multiprocessing.connection
import resource
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence
from urllib.parse import urlsplit

import numpy as np
from websockets.client import ClientProtocol
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.uri import parse_uri

from relay.hub import CaptionHub
from relay.messages import Caption, SourceState
from relay.server import create_app, serve

SENTENCES = (
    "Good morning everyone, and welcome to the annual general meeting of the cooperative.",
    "Before we start, a few practical notes about the agenda and how to ask questions.",
    "The first item is the approval of last year's minutes, which you received by email.",
    "We will now hear the treasurer's report on the accounts for the financial year.",
)
_WALL_KEY = b'"wall":'


@dataclass(frozen=True, slots=True)
class Point:
    """One measurement: how many viewers, how many of them stalled, for how long."""

    viewers: int
    stalled: int
    seconds: float
    warmup_s: float = 3.0
    partial_interval_s: float = 1.0
    final_every: int = 3


def raise_fd_limit(needed: int) -> None:
    """Raise RLIMIT_NOFILE's soft limit towards `needed` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


class _BenchViewer(asyncio.Protocol):
    """One viewer: WebSocket handshake and frames via websockets' Sans-I/O protocol."""

    def __init__(self, uri: str, stalled: bool, ready: asyncio.Future[None]) -> None:
        self.protocol = ClientProtocol(parse_uri(uri))
        self.stalled = stalled
        self.ready = ready
        self.walls: list[float] = []
        self.delays: list[float] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, WsFrame) and event.opcode is Opcode.TEXT:
                self._on_text(event.data, now)
        self._flush()

    def _on_text(self, data: bytes, now: float) -> None:
        if not self.ready.done():
            self.ready.set_result(None)  # the hello
            if self.stalled and self.transport is not None:
                self.transport.pause_reading()
            return
        at = data.rfind(_WALL_KEY)
        if at >= 0:
            wall = float(data[at + len(_WALL_KEY) : -1])
            self.walls.append(wall)
            self.delays.append(now - wall)

    def _flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            for chunk in self.protocol.data_to_send():
                if chunk:
                    self.transport.write(chunk)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before hello"))


async def _viewers_main(url: str, point: Point, conn: multiprocessing.connection.Connection) -> None:
    """Client process: connect every viewer, report ready, record delays until told to stop."""
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    gate = asyncio.Semaphore(100)  # connect in waves: no SYN flood against the listen backlog

    async def one(index: int) -> _BenchViewer:
        ready: asyncio.Future[None] = loop.create_future()
        async with gate:
            _, viewer = await loop.create_connection(
                lambda: _BenchViewer(url, index < point.stalled, ready), parts.hostname, parts.port
            )
            await asyncio.wait_for(ready, 60)
        return viewer

    viewers = await asyncio.gather(*(one(i) for i in range(point.viewers)))
    conn.send("ready")
    measure_from = await loop.run_in_executor(None, conn.recv)
    delays, received = [], []
    for viewer in viewers[point.stalled :]:
        walls = np.array(viewer.walls)
        in_window = walls >= measure_from
        delays.append(np.array(viewer.delays)[in_window])
        received.append(int(in_window.sum()))
    conn.send({"delays": np.concatenate(delays) if delays else np.zeros(0), "min_received": min(received, default=0)})
    for viewer in viewers:
        if viewer.transport is not None:
            viewer.transport.abort()


def _viewers_process(url: str, point: Point, conn: multiprocessing.connection.Connection) -> None:
    raise_fd_limit(point.viewers + 256)
    asyncio.run(_viewers_main(url, point, conn))


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


async def _publish(hub: CaptionHub, point: Point, duration_s: float, first_tick: int) -> int:
    """Publish on a fixed, drift-free schedule; return the next tick number."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    ticks = int(duration_s / point.partial_interval_s)
    for k in range(ticks):
        await asyncio.sleep(max(0.0, start + k * point.partial_interval_s - loop.time()))
        tick = first_tick + k
        hub.publish(_caption(tick // point.final_every, final=tick % point.final_every == point.final_every - 1))
    return first_tick + ticks


async def run_point(point: Point) -> dict[str, Any]:
    """Measure one point with the server in this process and the viewers in another."""
    raise_fd_limit(point.viewers + 256)
    hub = CaptionHub(backlog=100)
    hub.source_state(SourceState.CONNECTED)
    loop = asyncio.get_running_loop()
    async with serve(create_app(hub), "127.0.0.1", 0) as url:
        gc.collect()
        rss_empty = rss_bytes()
        ours, theirs = multiprocessing.get_context("spawn").Pipe()
        process = multiprocessing.get_context("spawn").Process(
            target=_viewers_process, args=(url + "/ws", point, theirs), daemon=True
        )
        process.start()
        try:
            if await loop.run_in_executor(None, _recv_within, ours, 300.0) != "ready":
                raise RuntimeError("viewer process failed to connect")
            tick = await _publish(hub, point, point.warmup_s, 0)
            measure_from, cpu_from = time.time(), time.process_time()
            await _publish(hub, point, point.seconds, tick)
            cpu_s = time.process_time() - cpu_from
            rss_full = rss_bytes()
            ours.send(measure_from)
            result = await loop.run_in_executor(None, _recv_within, ours, 120.0)
        finally:
            process.join(30)
            if process.is_alive():
                process.kill()
    return _summarise(point, result, rss_empty, rss_full, cpu_s, hub.viewer_count)


def _recv_within(conn: multiprocessing.connection.Connection, timeout_s: float) -> Any:
    if not conn.poll(timeout_s):
        raise TimeoutError("viewer process did not answer")
    return conn.recv()


def _summarise(point: Point, result: dict[str, Any], rss_empty: int, rss_full: int, cpu_s: float, attached: int) -> dict[str, Any]:
    delays_ms = result["delays"] * 1000.0
    expected = int(point.seconds / point.partial_interval_s)
    return {
        **asdict(point),
        "samples": int(delays_ms.size),
        "p50_ms": round(float(np.percentile(delays_ms, 50)), 1) if delays_ms.size else None,
        "p99_ms": round(float(np.percentile(delays_ms, 99)), 1) if delays_ms.size else None,
        "max_ms": round(float(delays_ms.max()), 1) if delays_ms.size else None,
        "captions_published": expected,
        "healthy_received_min": result["min_received"],
        "viewers_still_attached": attached,
        "server_rss_empty_mb": round(rss_empty / 2**20, 1),
        "server_rss_mb": round(rss_full / 2**20, 1),
        "rss_per_viewer_kb": round((rss_full - rss_empty) / max(1, point.viewers) / 1024, 1),
        "server_cpu_pct": round(100.0 * cpu_s / point.seconds, 1),
    }


def _fresh_process_point(point: Point, conn: multiprocessing.connection.Connection) -> None:
    conn.send(asyncio.run(run_point(point)))


def run(
    viewer_counts: Sequence[int] = (100, 1000, 5000),
    seconds: float = 25.0,
    stalled_fraction: float = 0.1,
) -> dict[str, Any]:
    """Measure every viewer count without and with stalled viewers, each in a fresh server process.

    A fresh process per point keeps memory freed by one point from flattering the next one's RSS.
    """
    points = []
    for viewers in viewer_counts:
        for fraction in (0.0, stalled_fraction):
            point = Point(viewers=viewers, stalled=int(viewers * fraction), seconds=seconds)
            ours, theirs = multiprocessing.get_context("spawn").Pipe()
            worker = multiprocessing.get_context("spawn").Process(target=_fresh_process_point, args=(point, theirs))
            worker.start()
            points.append(_recv_within(ours, seconds + 600.0))
            worker.join(60)
    return {"python": sys.version.split()[0], "points": points}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", default="100,1000,5000", help="comma-separated viewer counts")
    parser.add_argument("--seconds", type=float, default=25.0, help="measured seconds per point")
    parser.add_argument("--stalled", type=float, default=0.1, help="fraction of stalled viewers")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.viewers.split(",")]
    json.dump(run(counts, args.seconds, args.stalled), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
