"""Thousands of lean benchmark viewers in one process, for the edge throughput bench: counts, not content.

Like bench.clients' viewers (whose frame reading, split_frames and pong, they share) these open
their connection with websockets' handshake (`ClientProtocol`), then read the server's frames
themselves (relay sends them unmasked and unfragmented: a header, then the payload), answer
pings, but run on one plain epoll loop, no asyncio, and keep no per-frame record: at a few hundred
thousand frames a second they, not the edge, would otherwise be measured. A close or a lost
connection is counted, not resumed: in this bench a viewer the edge drops is a failure.

Per viewer they count the caption frames published since the point began (each frame's `sent`).
Delay samples (kernel receive time, SO_TIMESTAMPNS, minus `sent`) are taken from a read's last
frame only, and only when the read ends on a frame boundary: the timestamp of a read is its
newest segment's, which is that frame's own; earlier frames in the read arrived earlier, and
stamping them with it would overstate their delay.
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import os
import select
import socket
import time
from array import array
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

from bench.clients import (
    _CMSG_SPACE, _SENT, _SO_TIMESTAMPNS, OP_CLOSE, OP_PING, OP_TEXT, _timespec, pong, raise_fd_limit, split_frames,
)

_READ_BYTES = 262_144
_BATCH = 200  # connections opened at once
_WAIT_COMPLETE_S = 5.0  # after a point: how long the last frames may take to reach every viewer


class LeanViewer:
    """One connection: its unparsed bytes, whether it got its hello, and its count this point."""

    __slots__ = ("sock", "carry", "hello", "count", "open")

    def __init__(self, sock: socket.socket, carry: bytes) -> None:
        self.sock, self.carry, self.hello, self.count, self.open = sock, carry, False, 0, True


def _open_batch(address: tuple[str, int], ws_url: str, n: int) -> list[LeanViewer]:
    """Open `n` connections and complete their handshakes (requests all sent before reading)."""
    pending = []
    for _ in range(n):
        sock = socket.create_connection(address, timeout=30)
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        protocol = ClientProtocol(parse_uri(ws_url))
        protocol.send_request(protocol.connect())
        sock.sendall(b"".join(protocol.data_to_send()))
        pending.append((sock, protocol))
    viewers = []
    for sock, protocol in pending:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the edge closed a connection during the handshake")
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        protocol.receive_data(head + b"\r\n\r\n")
        if protocol.state is not State.OPEN:
            raise ConnectionError(f"handshake refused: {protocol.handshake_exc}")
        sock.setblocking(False)
        viewers.append(LeanViewer(sock, rest))
    return viewers


class Crowd:
    """The viewers and their epoll loop; `since` is when the current point began (None: not counting)."""

    def __init__(self, ws_url: str, viewers: int) -> None:
        parts = urlsplit(ws_url)
        address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.viewers: list[LeanViewer] = []
        while len(self.viewers) < viewers:
            self.viewers += _open_batch(address, ws_url, min(_BATCH, viewers - len(self.viewers)))
        self.by_fd = {v.sock.fileno(): v for v in self.viewers}
        self.poll = select.epoll()
        for fd in self.by_fd:
            self.poll.register(fd, select.EPOLLIN)
        self.since: float | None = None
        self.delays = array("d")
        self.reads = self.closed = 0
        for viewer in self.viewers:  # what came with the handshake's answer (the hello, usually)
            data, viewer.carry = viewer.carry, b""
            self._frames(viewer, data, time.time())

    def step(self, timeout_s: float) -> None:
        """Read every socket that is ready (waiting up to `timeout_s` for one)."""
        for fd, _ in self.poll.poll(timeout_s):
            viewer = self.by_fd.get(fd)
            if viewer is not None:
                self._read(viewer)

    def _read(self, viewer: LeanViewer) -> None:
        try:
            data, ancillary, _, _ = viewer.sock.recvmsg(_READ_BYTES, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancillary = b"", []
        if not data:
            self._close(viewer)
            return
        self.reads += 1
        arrived = next((_timespec(raw) for _, kind, raw in ancillary if kind == _SO_TIMESTAMPNS), time.time())
        self._frames(viewer, data, arrived)

    def _frames(self, viewer: LeanViewer, data: bytes, arrived: float) -> None:
        frames, viewer.carry = split_frames(viewer.carry + data)
        since, sent = self.since, None
        for opcode, payload in frames:
            if opcode == OP_TEXT:
                match = _SENT.search(payload)
                if match is None:
                    viewer.hello = viewer.hello or payload.startswith(b'{"type":"hello"')
                    continue
                sent = float(match.group(1))
                if since is not None and sent >= since:
                    viewer.count += 1
            elif opcode == OP_PING:
                with contextlib.suppress(OSError):
                    viewer.sock.send(pong(payload))
            elif opcode == OP_CLOSE:
                self._close(viewer)
                return
        if since is not None and sent is not None and sent >= since and not viewer.carry:
            self.delays.append(arrived - sent)

    def _close(self, viewer: LeanViewer) -> None:
        if viewer.open:
            viewer.open = False
            self.closed += 1
            self.poll.unregister(viewer.sock.fileno())
            viewer.sock.close()

    def begin(self, since: float) -> None:
        """Count from now on the frames sent at or after `since`."""
        self.since, self.delays, self.reads = since, array("d"), 0
        for viewer in self.viewers:
            viewer.count = 0

    def finish(self, expected: int) -> dict[str, Any]:
        """Wait (a few seconds at most) until every open viewer holds `expected` frames; what they got."""
        deadline = time.monotonic() + _WAIT_COMPLETE_S
        while time.monotonic() < deadline and any(v.count < expected for v in self.viewers if v.open):
            for _ in range(50):
                self.step(0.01)
        counts = np.array([v.count for v in self.viewers])
        delays_ms = np.frombuffer(self.delays, dtype=np.float64) * 1000 if len(self.delays) else np.zeros(0)
        self.since = None
        return {
            "frames": int(counts.sum()),
            "viewers_complete": int((counts >= expected).sum()),
            "per_viewer_min": int(counts.min()) if counts.size else 0,
            "closed": self.closed,
            "reads": self.reads,
            "delay_ms": {
                "p50": _pct(delays_ms, 50), "p99": _pct(delays_ms, 99),
                "max": round(float(delays_ms.max()), 1) if delays_ms.size else None,
                "samples": int(delays_ms.size),
            },
        }


def _pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values.size else None


def crowd_process(ws_url: str, viewers: int, nice: int, conn: multiprocessing.connection.Connection) -> None:
    """Entry point: connect, say ("ready", seconds, closed); then obey ("begin", since),
    ("finish", expected, seconds of publishing) and ("stop",)."""
    raise_fd_limit(viewers + 256)
    os.nice(nice)  # the publisher and Redis share this core: they come first, the viewers read in between
    started = time.monotonic()
    crowd = Crowd(ws_url, viewers)
    while not all(v.hello for v in crowd.viewers if v.open) and time.monotonic() - started < 120:
        crowd.step(0.05)
    conn.send(("ready", round(time.monotonic() - started, 1), crowd.closed))
    began_cpu = time.process_time()
    while True:
        crowd.step(0.02)
        if not conn.poll():
            continue
        message = conn.recv()
        cpu = time.process_time()
        if message[0] == "begin":
            crowd.begin(message[1])
            began_cpu = cpu
        elif message[0] == "finish":
            summary = crowd.finish(message[1])
            summary["cpu_percent"] = round(100 * (cpu - began_cpu) / message[2], 1)  # while publishing
            conn.send(summary)
        else:
            break
