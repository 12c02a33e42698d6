"""Viewer fan-out benchmark: delivery delay and server memory per viewer.

The caption server and a publisher (a partial every second, a final every three)
run in the measuring process; the viewers are `websockets` Sans-I/O clients, one
asyncio loop in a separate process, some of which stop reading ("stalled").
Each caption's `sent` is its publish time. Two delays are reported per message:
`arrival` (kernel receive timestamp on the viewer's socket, what the relay
controls) and the plain `p50/p99` (when the viewer process handled it, which adds
this one process's backlog of thousands of sockets). Each point runs in a fresh
server process so memory freed by one point cannot flatter the next one's RSS.

    python -m bench.viewers [--viewers 100,1000,5000] [--seconds 25] [--stalled 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import resource
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
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
_SENT_KEY = b'"sent":'
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux: kernel receive time of each read
_CMSG_SPACE = socket.CMSG_SPACE(16)


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


class _BenchViewer:
    """One viewer on a raw non-blocking socket, speaking WebSocket through websockets' Sans-I/O protocol.

    Each read also yields the kernel's arrival time (SO_TIMESTAMPNS), so the delay
    is known both on arrival (what the relay controls) and once this process got
    round to it (plus the benchmark's own backlog of 5,000 sockets).
    """

    def __init__(self, sock: socket.socket, uri: str, stalled: bool, ready: asyncio.Future[None]) -> None:
        self.sock = sock
        self.protocol = ClientProtocol(parse_uri(uri))
        self.stalled = stalled
        self.ready = ready
        self.samples: list[tuple[float, float, float]] = []  # (publish time, arrival delay, handled delay)
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            data, ancillary, _, _ = self.sock.recvmsg(65536, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancillary = b"", []
        if not data:
            self.close()
            return
        arrived = next((_timespec(raw) for level, kind, raw in ancillary if kind == _SO_TIMESTAMPNS), time.time())
        now = time.time()
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, WsFrame) and event.opcode is Opcode.TEXT:
                self._on_text(bytes(event.data), arrived, now)
        self._flush()

    def _on_text(self, data: bytes, arrived: float, now: float) -> None:
        if not self.ready.done():
            self.ready.set_result(None)  # the hello
            if self.stalled:
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            return
        at = data.rfind(_SENT_KEY)  # captions end with "sent":<float>}; parsing all JSON would slow the clients
        if at >= 0:
            wall = float(data[at + len(_SENT_KEY) : -1])
            self.samples.append((wall, arrived - wall, now - wall))

    def _flush(self) -> None:
        for chunk in self.protocol.data_to_send():
            with contextlib.suppress(OSError):
                self.sock.send(chunk)  # a handshake or a pong: tiny, fits the empty send buffer

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before hello"))


def _timespec(raw: bytes) -> float:
    seconds, nanoseconds = struct.unpack("qq", raw[:16])
    return float(seconds + nanoseconds / 1e9)


async def _viewers_main(url: str, point: Point, conn: multiprocessing.connection.Connection) -> None:
    """Client process: connect every viewer, report ready, record delays until told to stop."""
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    gate = asyncio.Semaphore(100)  # connect in waves: no SYN flood against the listen backlog

    async def one(index: int) -> _BenchViewer:
        ready: asyncio.Future[None] = loop.create_future()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        sock.setblocking(False)
        async with gate:
            await loop.sock_connect(sock, address)
            viewer = _BenchViewer(sock, url, index < point.stalled, ready)
            await asyncio.wait_for(ready, 60)
        return viewer

    viewers = await asyncio.gather(*(one(i) for i in range(point.viewers)))
    conn.send("ready")
    measure_from, published = await loop.run_in_executor(None, conn.recv)
    healthy = viewers[point.stalled :]
    with contextlib.suppress(TimeoutError):  # let the last caption reach every healthy viewer
        async with asyncio.timeout(10.0):
            while any(len(v.samples) < published for v in healthy):
                await asyncio.sleep(0.05)
    kept = [[sample[1:] for sample in v.samples if sample[0] >= measure_from] for v in healthy]
    delays = np.array([pair for per_viewer in kept for pair in per_viewer]).reshape(-1, 2)
    conn.send({"arrival": delays[:, 0], "delays": delays[:, 1], "min_received": min(map(len, kept), default=0)})
    for viewer in viewers:
        viewer.close()


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
    async with serve(create_app(hub), "127.0.0.1", 0) as url:
        gc.collect()
        rss_empty, load = rss_bytes(), os.getloadavg()[0]
        ours, theirs = spawn.Pipe()
        viewers = spawn.Process(target=_viewers_process, args=(url.replace("http", "ws", 1) + "/ws", point, theirs))
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
) -> dict[str, Any]:
    """Measure every viewer count without and with stalled viewers, each in a fresh server process.

    A fresh process per point keeps memory freed by one point from flattering the next one's RSS.
    """
    points = []
    for viewers in viewer_counts:
        for fraction in (0.0, stalled_fraction):
            stalled = int(viewers * fraction)
            point = Point(viewers=viewers, stalled=stalled, seconds=seconds)
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
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.viewers.split(",")]
    json.dump(run(counts, args.seconds, args.stalled), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
