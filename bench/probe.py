"""A measuring viewer: one WebSocket viewer on its own thread, each message stamped on arrival.

The socket asks the kernel for software receive timestamps (SO_TIMESTAMPING with
SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE). Each `recvmsg` then carries, as
SCM_TIMESTAMPING ancillary data, the CLOCK_REALTIME time at which the kernel's network stack
received the newest segment of that read. A dedicated thread blocks in `recvmsg`, so a read
holds one segment in practice (`reads_with_several_frames` says when not): that time is when
the message reached the viewer's socket, not when a busy event loop got round to it.
CLOCK_REALTIME is the clock of `time.time()`, hence of the relay's `sent` stamps.

With `reconnect_after_s`, a lost connection (a server killed, say) is opened again every that many
seconds until it succeeds, resuming with `since` (its last final) and `session` as viewers do.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.uri import parse_uri

SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)  # Linux
_SOF_RX_SOFTWARE = 1 << 3
_SOF_SOFTWARE = 1 << 4
_ANCILLARY = socket.CMSG_SPACE(48)  # struct scm_timestamping: three timespecs, software first
ENDED_GRACE_S = 2.0  # after the source ended: room for the last track captions


@dataclass(frozen=True, slots=True)
class Arrival:
    """One message as the measuring viewer got it."""

    kernel_s: float  # CLOCK_REALTIME: the kernel received the segment that completed the message
    read_s: float  # time.time() right after recvmsg returned (user space, for comparison)
    message: dict[str, Any]


@dataclass(slots=True)
class ProbeResult:
    """Everything the measuring viewer received, and how its reads went."""

    arrivals: list[Arrival] = field(default_factory=list)
    reads: int = 0
    reads_without_timestamp: int = 0
    reads_with_several_frames: int = 0
    close_code: int | None = None
    reconnections: int = 0


def kernel_timestamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The software receive time in SCM_TIMESTAMPING ancillary data, if present."""
    for level, kind, raw in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(raw) >= 16:
            seconds, nanoseconds = struct.unpack("qq", raw[:16])
            if seconds or nanoseconds:
                return seconds + nanoseconds / 1e9
    return None


class MeasuringViewer:
    """Connect to `ws_url`, record every text message with its arrival time until stopped or closed."""

    def __init__(self, ws_url: str, reconnect_after_s: float | None = None) -> None:
        self._url = ws_url
        self._reconnect_after_s = reconnect_after_s
        self._stop = threading.Event()
        self.result = ProbeResult()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)
        self._sock: socket.socket | None = None
        self.ended = threading.Event()  # the source ended (status "ended", or `end`), or the connection closed

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect (handshake included in the thread) and start reading."""
        self._sock = self._connect(timeout_s)
        self._thread.start()

    def _connect(self, timeout_s: float) -> socket.socket:
        parts = urlsplit(self._url)
        sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=timeout_s)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, _SOF_RX_SOFTWARE | _SOF_SOFTWARE)
        sock.settimeout(0.5)  # wakes the thread to notice stop()
        return sock

    def stop(self, timeout_s: float = 10.0) -> ProbeResult:
        """Stop reading and return what arrived."""
        self._stop.set()
        self._thread.join(timeout_s)
        return self.result

    def wait_closed(self, timeout_s: float) -> bool:
        """Wait for the server to close the connection; True if it did."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            while self._sock is not None:
                protocol = ClientProtocol(parse_uri(self._url + self._resume_query()))
                self._read_connection(self._sock, protocol)
                self._sock = self._reconnect()
        finally:
            self.ended.set()  # nothing more will come

    def _read_connection(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        """Read one connection until it ends or stop() is called."""
        protocol.send_request(protocol.connect())
        try:
            self._send(sock, protocol)
            while not self._stop.is_set():
                try:
                    data, ancillary, _, _ = sock.recvmsg(65536, _ANCILLARY)
                except TimeoutError:
                    continue
                read_s = time.time()
                if not data:
                    break
                self._take(protocol, data, ancillary, read_s)
                self._send(sock, protocol)  # pongs: a measuring viewer answers pings like any other
        except OSError:
            pass
        finally:
            self.result.close_code = protocol.close_rcvd.code if protocol.close_rcvd else None
            with contextlib.suppress(OSError):
                sock.close()

    def _reconnect(self) -> socket.socket | None:
        """A new connection after a lost one, if asked to reconnect and not stopped or ended."""
        if self._reconnect_after_s is None:
            return None
        while not self._stop.wait(self._reconnect_after_s) and not self.ended.is_set():
            with contextlib.suppress(OSError):
                sock = self._connect(5.0)
                self.result.reconnections += 1
                return sock
        return None

    def _resume_query(self) -> str:
        """`?since=...&session=...` once a hello and a final arrived (as viewers resume), else empty."""
        messages = [a.message for a in self.result.arrivals]
        session = next((m["session"] for m in reversed(messages) if m["type"] == "hello"), None)
        seqs = [m["seq"] for m in messages if m["type"] in ("final", "track")]
        return f"?since={max(seqs)}&session={session}" if session and seqs else ""

    def _take(self, protocol: ClientProtocol, data: bytes, ancillary: list, read_s: float) -> None:
        result = self.result
        result.reads += 1
        kernel_s = kernel_timestamp(ancillary)
        if kernel_s is None:
            result.reads_without_timestamp += 1
            kernel_s = read_s
        protocol.receive_data(data)
        texts = [e for e in protocol.events_received() if isinstance(e, WsFrame) and e.opcode is Opcode.TEXT]
        if len(texts) > 1:
            result.reads_with_several_frames += 1
        for frame in texts:
            message = json.loads(bytes(frame.data))
            result.arrivals.append(Arrival(kernel_s, read_s, message))
            if message.get("type") == "end":
                self.ended.set()
            elif message.get("type") == "status" and message.get("state") == "ended" and message.get("channel") == "floor":
                # The source is over (the session goes on, waiting for the next): its last captions
                # are out; track captions decided on them may follow within the composer's tick.
                threading.Timer(ENDED_GRACE_S, self.ended.set).start()

    @staticmethod
    def _send(sock: socket.socket, protocol: ClientProtocol) -> None:
        for chunk in protocol.data_to_send():
            if chunk:
                sock.sendall(chunk)
