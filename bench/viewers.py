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
import multiprocessing.process
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any
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
    client_processes: int = 1


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
        self.samples: list[tuple[float, float]] = []  # (publish time, delay)
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
                self._on_text(bytes(event.data), now)
        self._flush()

    def _on_text(self, data: bytes, now: float) -> None:
        if not self.ready.done():
            self.ready.set_result(None)  # the hello
            if self.stalled and self.transport is not None:
                self.transport.pause_reading()
            return
        at = data.rfind(_WALL_KEY)  # captions end with "wall":<float>}; parsing all JSON would slow the clients
        if at >= 0:
            wall = float(data[at + len(_WALL_KEY) : -1])
            self.samples.append((wall, now - wall))

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
                lambda: _BenchViewer(url, index < point.stalled, ready), parts.hostname or "127.0.0.1", parts.port or 80
            )
            await asyncio.wait_for(ready, 60)
        return viewer

    viewers = await asyncio.gather(*(one(i) for i in range(point.viewers)))
    conn.send("ready")
    measure_from = await loop.run_in_executor(None, conn.recv)
    kept = [[delay for wall, delay in v.samples if wall >= measure_from] for v in viewers[point.stalled :]]
    delays = np.array([delay for per_viewer in kept for delay in per_viewer])
    conn.send({"delays": delays, "min_received": min(map(len, kept), default=0)})
    for viewer in viewers:
        if viewer.transport is not None:
            viewer.transport.abort()


def _viewers_process(url: str, point: Point, conn: multiprocessing.connection.Connection) -> None:
    raise_fd_limit(point.viewers + 256)
    os.nice(int(os.environ.get("BENCH_VIEWER_NICE", "0")))
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


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class _ViewerProcesses:
    """The client processes of one point, each one asyncio loop with its share of the viewers."""

    def __init__(self, ws_url: str, point: Point) -> None:
        spawn = multiprocessing.get_context("spawn")
        self._links = []
        for viewers, stalled in zip(
            _split(point.viewers, point.client_processes), _split(point.stalled, point.client_processes)
        ):
            ours, theirs = spawn.Pipe()
            share = replace(point, viewers=viewers, stalled=stalled)
            process = spawn.Process(target=_viewers_process, args=(ws_url, share, theirs), daemon=True)
            process.start()
            self._links.append((ours, process))

    async def ready(self) -> None:
        loop = asyncio.get_running_loop()
        for conn, process in self._links:
            if await loop.run_in_executor(None, _recv_within, conn, 300.0, process) != "ready":
                raise RuntimeError("viewer process failed to connect")

    async def stop(self, measure_from: float) -> dict[str, Any]:
        """Collect every process's delays since `measure_from`."""
        loop = asyncio.get_running_loop()
        for conn, _ in self._links:
            conn.send(measure_from)
        results = [
            await loop.run_in_executor(None, _recv_within, conn, 120.0, process) for conn, process in self._links
        ]
        return {
            "delays": np.concatenate([r["delays"] for r in results]),
            "min_received": min(r["min_received"] for r in results),
        }

    def close(self) -> None:
        for _, process in self._links:
            process.join(30)
            if process.is_alive():
                process.kill()


async def run_point(point: Point) -> dict[str, Any]:
    """Measure one point with the server in this process and the viewers in other processes."""
    raise_fd_limit(point.viewers + 256)
    hub = CaptionHub(backlog=100)
    hub.source_state(SourceState.CONNECTED)
    async with serve(create_app(hub), "127.0.0.1", 0) as url:
        gc.collect()
        rss_empty, load = rss_bytes(), os.getloadavg()[0]
        clients = _ViewerProcesses(url.replace("http://", "ws://") + "/ws", point)
        try:
            await clients.ready()
            fanout_s: list[float] = []
            tick = await _publish(hub, point, point.warmup_s, 0, [])
            measure_from, cpu_from = time.time(), time.process_time()
            await _publish(hub, point, point.seconds, tick, fanout_s)
            cpu_s = time.process_time() - cpu_from
            rss_full, attached = rss_bytes(), hub.viewer_count
            result = await clients.stop(measure_from)
        finally:
            clients.close()
    result.update(fanout_ms=np.array(fanout_s) * 1000.0, load=load)
    return _summarise(point, result, rss_empty, rss_full, cpu_s, attached)


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


def _summarise(
    point: Point, result: dict[str, Any], rss_empty: int, rss_full: int, cpu_s: float, attached: int
) -> dict[str, Any]:
    delays_ms = result["delays"] * 1000.0
    expected = int(point.seconds / point.partial_interval_s)
    return {
        **asdict(point),
        "samples": int(delays_ms.size),
        "p50_ms": round(float(np.percentile(delays_ms, 50)), 1) if delays_ms.size else None,
        "p99_ms": round(float(np.percentile(delays_ms, 99)), 1) if delays_ms.size else None,
        "max_ms": round(float(delays_ms.max()), 1) if delays_ms.size else None,
        "fanout_p50_ms": round(float(np.percentile(result["fanout_ms"], 50)), 1),
        "fanout_max_ms": round(float(result["fanout_ms"].max()), 1),
        "captions_published": expected,
        "healthy_received_min": result["min_received"],
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
    stalled_fraction: float = 0.1,
    client_processes: int = 1,
) -> dict[str, Any]:
    """Measure every viewer count without and with stalled viewers, each in a fresh server process.

    A fresh process per point keeps memory freed by one point from flattering the next one's RSS.
    """
    points = []
    for viewers in viewer_counts:
        for fraction in (0.0, stalled_fraction):
            stalled = int(viewers * fraction)
            point = Point(viewers=viewers, stalled=stalled, seconds=seconds, client_processes=client_processes)
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
    parser.add_argument("--stalled", type=float, default=0.1, help="fraction of stalled viewers")
    parser.add_argument("--client-processes", type=int, default=1, help="processes sharing the viewers")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.viewers.split(",")]
    json.dump(run(counts, args.seconds, args.stalled, args.client_processes), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
