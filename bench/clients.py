"""Thousands of benchmark viewers in one process: delivery delays, what each got, how slow ones fare.

Each viewer is a raw non-blocking socket. It opens its connection with websockets' Sans-I/O
handshake (`ClientProtocol`), then reads the server's frames itself (relay sends them unmasked
and unfragmented: a header, then the payload; about 1 µs a frame, websockets' parser about 5),
answers pings with a masked pong, and takes a close frame (its code) or EOF as the end. Every read carries the kernel's receive time
(SO_TIMESTAMPNS, CLOCK_REALTIME; for a read holding several segments it is the newest one's,
so a frame is never counted as arriving earlier than it did). Per frame two delays from the
caption's `sent`: on arrival at the socket, and once this one process got round to it.

A slow viewer really reads slowly: a small receive buffer and `read_bps` bytes a second, read
in quarter-second portions. When the relay drops it (close 4001) or the connection is lost,
it reconnects with `since` (its last final) and `session`, as the browser viewer does: after
RECONNECT_AFTER_S, or with `Crowd.browser_backoff` after the browser's own delay (web/connection.js:
half of min(30 s, 0.5 s x 2^attempt) plus a random part of the other half, the attempt count reset by
a hello), which spreads a crowd reconnecting at once.

Every viewer records each final's seq and the CRC-32 of its JSON, to be compared with the
relay's durable transcript (which stores the exact frame viewers got).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing.connection
import resource
import random
import re
import socket
import struct
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

_SENT = re.compile(rb'"sent":([0-9.]+)')
_NUMBERED_PREFIXES = (b'{"type":"final"', b'{"type":"track"')  # finals and track captions share `seq`
_SEQ = re.compile(rb'"seq":(\d+)')
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux
_CMSG_SPACE = socket.CMSG_SPACE(16)
SLOW_RCVBUF_BYTES = 4096  # the kernel doubles it: a few KB may wait unread on the viewer's side
SLOW_TICK_S = 0.25
RECONNECT_AFTER_S = 1.0
BROWSER_BASE_DELAY_S, BROWSER_MAX_DELAY_S = 0.5, 30.0  # web/connection.js
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA
_HEAD_END = b"\r\n\r\n"


def split_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Server frames in `data` as (opcode, payload), and the bytes of an incomplete last frame."""
    frames: list[tuple[int, bytes]] = []
    pos, end = 0, len(data)
    while end - pos >= 2:
        size = data[pos + 1] & 0x7F
        head = 2
        if size == 126:
            if end - pos < 4:
                break
            size, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
        elif size == 127:
            if end - pos < 10:
                break
            size, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
        if end - pos < head + size:
            break
        frames.append((data[pos] & 0x0F, data[pos + head : pos + head + size]))
        pos += head + size
    return frames, data[pos:]


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A client's control frame (masked, as a client must; a zero mask leaves the payload as is)."""
    return bytes((0x80 | opcode, 0x80 | len(payload))) + b"\0\0\0\0" + payload


def pong(payload: bytes) -> bytes:
    """A client's pong to a ping carrying `payload`."""
    return client_frame(OP_PONG, payload)


@dataclass(frozen=True, slots=True)
class Crowd:
    """The viewers to run: how many, how many of them slow, and how slow."""

    ws_url: str
    viewers: int
    slow: int = 0
    slow_read_bps: int = 100
    browser_backoff: bool = False  # reconnect as the browser does (jittered backoff), not after a fixed second


class BenchViewer:
    """One viewer; reconnects with `since` whenever its connection ends, until stopped."""

    def __init__(
        self, address: tuple[str, int], ws_url: str, read_bps: int | None, first: asyncio.Future[None],
        browser_backoff: bool = False,
    ) -> None:
        self.address, self.ws_url, self.read_bps = address, ws_url, read_bps
        self.first = first  # resolved by the first hello
        self.browser_backoff = browser_backoff
        self.attempt = 0  # reconnections since the last hello (the browser's backoff exponent)
        self.hellos: list[tuple[float, bool]] = []  # (arrival, resumed) of each hello
        self.samples: list[tuple[float, float, float]] = []  # (sent, arrival delay, handled delay)
        self.finals: dict[int, tuple[int, float]] = {}  # seq -> (CRC-32 of the frame's JSON, arrival)
        self.duplicates = 0
        self.bytes_read = 0
        self.connections = 0
        self.closes: Counter[str] = Counter()
        self.session: str | None = None
        self.stopping = False
        self._sock: socket.socket | None = None
        self._protocol: ClientProtocol | None = None  # only until the handshake is done
        self._carry = b""  # the response's head so far, then the bytes of an incomplete frame
        self._tick: asyncio.TimerHandle | None = None

    async def connect(self) -> None:
        """Open a connection (resuming after the last final received, if any) and start reading."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        if self.read_bps is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF_BYTES)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, self.address)
        query = f"?since={max(self.finals)}&session={self.session}" if self.finals and self.session else ""
        protocol = ClientProtocol(parse_uri(self.ws_url + query))
        protocol.send_request(protocol.connect())
        self._sock, self._protocol, self._carry = sock, protocol, b""
        self.connections += 1
        self._send(b"".join(protocol.data_to_send()))
        if self.read_bps is None:
            loop.add_reader(sock.fileno(), self._read, 65536)
        else:
            self._tick = loop.call_later(SLOW_TICK_S, self._slow_read)

    def _slow_read(self) -> None:
        self._tick = None
        assert self.read_bps is not None
        budget = max(1, int(self.read_bps * SLOW_TICK_S))
        while budget > 0 and self._sock is not None:
            got = self._read(budget)
            if got <= 0:
                break
            budget -= got
        if self._sock is not None:
            self._tick = asyncio.get_running_loop().call_later(SLOW_TICK_S, self._slow_read)

    def _read(self, size: int) -> int:
        """Read up to `size` bytes; return how many (0: nothing there, -1: connection over)."""
        sock = self._sock
        if sock is None:
            return -1
        try:
            data, ancillary, _, _ = sock.recvmsg(size, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            data, ancillary = b"", []
        if not data:
            self._connection_over("lost")
            return -1
        read = len(data)
        self.bytes_read += read
        arrived = next((_timespec(raw) for _, kind, raw in ancillary if kind == _SO_TIMESTAMPNS), time.time())
        now = time.time()
        if self._protocol is not None:
            data = self._handshake(data)
        if data and not self._frames(data, arrived, now):
            return -1
        return read if self._sock is not None else -1

    def _handshake(self, data: bytes) -> bytes:
        """Collect the response's head; once it is a 101, the bytes after it (frames), else b""."""
        assert self._protocol is not None
        self._carry += data
        if _HEAD_END not in self._carry:
            return b""
        head, rest = self._carry.split(_HEAD_END, 1)
        self._protocol.receive_data(head + _HEAD_END)
        if self._protocol.state is not State.OPEN:  # e.g. 503/429 from the limits
            self._connection_over("http " + head.split(b" ", 2)[1].decode(errors="replace"))
            return b""
        self._protocol, self._carry = None, b""
        return rest

    def _frames(self, data: bytes, arrived: float, now: float) -> bool:
        """Handle the frames in `data` (after any carried bytes); False once the connection is over."""
        frames, self._carry = split_frames(self._carry + data if self._carry else data)
        for opcode, payload in frames:
            if opcode == OP_TEXT:
                self._on_text(payload, arrived, now)
            elif opcode == OP_PING:
                self._send(pong(payload))
            elif opcode == OP_CLOSE:
                self._send(client_frame(OP_CLOSE, payload[:2]))  # echo the code, as websockets did
                self._connection_over(str(int.from_bytes(payload[:2], "big")) if len(payload) >= 2 else "1005")
                return False
        return True

    def _on_text(self, data: bytes, arrived: float, now: float) -> None:
        if data.startswith(b'{"type":"hello"'):
            hello = json.loads(data)
            self.session, self.attempt = hello["session"], 0
            self.hellos.append((arrived, bool(hello.get("resumed"))))
            if not self.first.done():
                self.first.set_result(None)
            return
        match = _SENT.search(data)  # a regular expression: parsing all JSON would slow the clients
        if match is not None:
            sent = float(match.group(1))
            self.samples.append((sent, arrived - sent, now - sent))
        if data.startswith(_NUMBERED_PREFIXES) and (match := _SEQ.search(data)):
            seq = int(match.group(1))
            self.duplicates += seq in self.finals
            self.finals[seq] = (zlib.crc32(data), arrived)

    def _send(self, data: bytes) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.send(data)  # a handshake, a pong or a close: tiny

    def _connection_over(self, how: str) -> None:
        self.closes[how] += 1
        self.close()
        if not self.stopping:
            asyncio.get_running_loop().call_later(self._reconnect_delay(), self._reconnect)

    def _reconnect_delay(self) -> float:
        if not self.browser_backoff:
            return RECONNECT_AFTER_S
        ceiling = min(BROWSER_MAX_DELAY_S, BROWSER_BASE_DELAY_S * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 10)
        return ceiling / 2 + random.random() * ceiling / 2

    def _reconnect(self) -> None:
        if not self.stopping:
            asyncio.ensure_future(self._connect_again())

    async def _connect_again(self) -> None:
        try:
            await self.connect()
        except OSError:
            self._connection_over("refused")

    def close(self) -> None:
        """Close the current connection (a later reconnect may open another)."""
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        if self._sock is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
        self._sock = self._protocol = None
        self._carry = b""


def _timespec(raw: bytes) -> float:
    seconds, nanoseconds = struct.unpack("qq", raw[:16])
    return float(seconds + nanoseconds / 1e9)


async def connect_crowd(crowd: Crowd) -> list[BenchViewer]:
    """Connect every viewer (slow ones first), in waves so the listen backlog is not flooded."""
    loop = asyncio.get_running_loop()
    parts = urlsplit(crowd.ws_url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    gate = asyncio.Semaphore(100)

    async def one(index: int) -> BenchViewer:
        viewer = BenchViewer(address, crowd.ws_url, crowd.slow_read_bps if index < crowd.slow else None,
                             loop.create_future(), crowd.browser_backoff)
        async with gate:
            await viewer.connect()
            await asyncio.wait_for(viewer.first, 60)
        return viewer

    return list(await asyncio.gather(*(one(i) for i in range(crowd.viewers))))


def summarise_crowd(viewers: list[BenchViewer], slow: int, measure_from: float) -> dict[str, Any]:
    """Delays of the viewers that kept up (frames sent after `measure_from`), and what every viewer got."""
    healthy = viewers[slow:]
    kept = [[s for s in v.samples if s[0] >= measure_from] for v in healthy]
    delays = np.array([sample for per_viewer in kept for sample in per_viewer]).reshape(-1, 3)
    return {
        "sent": delays[:, 0],
        "arrival": delays[:, 1],
        "delays": delays[:, 2],
        "min_received": min(map(len, kept), default=0),
        "bytes_read_median": float(np.median([v.bytes_read for v in healthy])) if healthy else 0.0,
        "finals": [v.finals for v in viewers],
        "duplicates": [v.duplicates for v in viewers],
        "connections": [v.connections for v in viewers],
        "closes": [dict(v.closes) for v in viewers],
        "hellos": [v.hellos for v in viewers],
    }


def raise_fd_limit(needed: int) -> None:
    """Raise RLIMIT_NOFILE's soft limit towards `needed` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _crowd_main(crowd: Crowd, conn: multiprocessing.connection.Connection) -> None:
    """Connect, report ready, and on (measure_from, published[, last_seq]) report what every viewer got.

    It first waits (10 s at most) for every viewer that keeps up to hold `published` frames and
    the final numbered `last_seq`.
    """
    loop = asyncio.get_running_loop()
    viewers = await connect_crowd(crowd)
    conn.send("ready")
    measure_from, published, *last = await loop.run_in_executor(None, conn.recv)
    last_seq = last[0] if last else 0
    healthy = viewers[crowd.slow :]
    with contextlib.suppress(TimeoutError):  # let the last caption reach every viewer that keeps up
        async with asyncio.timeout(10.0):
            while any(len(v.samples) < published or (last_seq and last_seq not in v.finals) for v in healthy):
                await asyncio.sleep(0.05)
    for viewer in viewers:
        viewer.stopping = True
        viewer.close()
    conn.send(summarise_crowd(viewers, crowd.slow, measure_from))


def crowd_process(crowd: Crowd, conn: multiprocessing.connection.Connection) -> None:
    """Entry point of the viewers' process."""
    raise_fd_limit(crowd.viewers + 256)
    asyncio.run(_crowd_main(crowd, conn))


def completeness(got: dict[str, Any], expected: dict[int, int | None], slow: int) -> dict[str, Any]:
    """Compare each viewer's finals with those published (seq -> CRC-32 of the frame, None: unchecked).

    A viewer that kept up must hold every published final, byte for byte. A slow viewer may
    still be behind when the run stops, but what it holds must be every final up to its
    latest, with no gap: dropped and resumed, it lost nothing.
    """
    finals, closes = got["finals"], got["closes"]

    def wrong(held: dict[int, tuple[int, float]]) -> int:
        return sum(1 for seq, (crc, _) in held.items() if seq not in expected or expected[seq] not in (None, crc))

    healthy = finals[slow:]
    report: dict[str, Any] = {
        "finals_published": len(expected),
        "kept_up": {
            "viewers": len(healthy),
            "complete": sum(1 for held in healthy if set(held) == set(expected) and not wrong(held)),
            "missing_finals": sum(len(set(expected) - set(held)) for held in healthy),
            "differing_from_published": sum(wrong(held) for held in healthy),
            "reconnected": sum(1 for n in got["connections"][slow:] if n > 1),
        },
        "duplicates": sum(got["duplicates"]),
    }
    if slow:
        held_slow = finals[:slow]
        behind = [len(expected) - len(held) for held in held_slow]
        ends: Counter[str] = Counter()
        for per_viewer in closes[:slow]:
            ends.update(per_viewer)
        report["slow"] = {
            "viewers": slow,
            "without_gap": sum(1 for held in held_slow if set(held) == _up_to(expected, max(held, default=0))),
            "differing_from_published": sum(wrong(held) for held in held_slow),
            "finals_behind_at_end": {"p50": float(np.median(behind)), "max": max(behind)},
            "connections": {"p50": float(np.median(got["connections"][:slow])), "max": max(got["connections"][:slow])},
            "connection_ends": dict(ends),  # "4001": dropped as too slow; "lost": no close frame (e.g. ping timeout)
        }
    return report


def _up_to(expected: dict[int, int | None], last: int) -> set[int]:
    """The published finals up to seq `last`."""
    return {seq for seq in expected if seq <= last}
