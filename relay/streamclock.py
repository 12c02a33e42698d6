"""Stream time of a live source across reconnects: a replay told from a restarted timeline."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from fractions import Fraction
from typing import Union

import av

from relay.hls.pts import TICK_HZ as _TICK_HZ
from relay.hls.pts import TICK_WRAP as _TICK_WRAP
from relay.messages import SAMPLE_RATE_HZ

_LOGGER = logging.getLogger(__name__)

_PacketKey = tuple[Union[int, None], bytes]  # (timestamp tick, digest of the bytes)


class StreamClock:
    """Where the stream is (samples handed over), and what was heard lately.

    After a reconnect a live source may replay what was already heard (an HLS server sends
    its playlist window again), or start a fresh timeline (an RTMP/SRT encoder restarted
    with timestamps from 0, an MPEG-TS timestamp wrap). Timestamps alone cannot tell these
    apart, so a packet counts as a replay only if the same bytes at the same timestamp were
    heard in the last `_HISTORY_S`. The first packet that is not starts the new audio: the
    clock jumps by the gap in timestamps when that gap fits the time away (HLS), else by
    the time away from the last packet heard.
    """

    _HISTORY_S = 90.0
    _GAP_SLACK_S = 60.0  # a timestamp gap this much longer than the time away is another timeline

    def __init__(self) -> None:
        self.samples = 0
        self.fresh = False  # this connection delivered audio not heard before
        self.reconnected = False
        self._last_tick: int | None = None  # where the last packet taken ends
        self._heard_at: float | None = None  # time.monotonic() of the last packet taken
        self._heard: dict[_PacketKey, float] = {}  # packet -> stream time last heard
        self._order: deque[tuple[_PacketKey, float]] = deque()  # oldest first, to forget

    def new_connection(self) -> None:
        """A reopened source: what comes first may be a replay."""
        self.fresh = False
        self.reconnected = True

    def admit(self, packet: av.Packet) -> bool:
        """True for a packet to decode; False for one replayed after a reconnect."""
        if packet.size == 0:  # the demuxer's end marker: it flushes the decoder
            return True
        tick = packet_tick(packet)
        key = (tick, hashlib.blake2b(bytes(packet), digest_size=8).digest())
        if not self.fresh:
            if self.reconnected and key in self._heard:
                return False
            self._jump(tick)
            self.fresh = True
        self._remember(key, self.samples / SAMPLE_RATE_HZ)
        if tick is not None:  # where this packet ends: the next one follows on without a gap
            self._last_tick = tick + _tick_span(packet.duration, packet.time_base)
        self._heard_at = time.monotonic()
        return True

    def _remember(self, key: _PacketKey, now: float) -> None:
        """Keep the packets of the last _HISTORY_S of stream (stream time, so a fast file stays small)."""
        self._heard[key] = now
        self._order.append((key, now))
        while now - self._order[0][1] > self._HISTORY_S:
            old, when = self._order.popleft()
            if self._heard.get(old) == when:  # not heard again since
                del self._heard[old]

    def _jump(self, tick: int | None) -> None:
        """First new packet of a connection: move the clock over the time the source was away."""
        if not self.reconnected or self._heard_at is None:
            return
        away_s = time.monotonic() - self._heard_at
        if tick is not None and self._last_tick is not None:
            gap_s = ((tick - self._last_tick) % _TICK_WRAP) / _TICK_HZ
            if gap_s <= away_s + self._GAP_SLACK_S:
                away_s = gap_s
        _LOGGER.info("Source back after %.1f s of stream", away_s)
        self.samples += int(max(away_s, 0.0) * SAMPLE_RATE_HZ)


def _tick_span(duration: int | None, time_base: Fraction | None) -> int:
    return round(duration * time_base * _TICK_HZ) if duration and time_base else 0


def packet_tick(packet: av.Packet) -> int | None:
    """The packet's timestamp as an MPEG-TS tick, modulo the wrap (so an unwrapped and a
    wrapped copy of the same packet agree); None without a timestamp."""
    if packet.pts is None or packet.time_base is None:
        return None
    return round(packet.pts * packet.time_base * _TICK_HZ) % _TICK_WRAP
