"""Stream time to the source's presentation time (MPEG-TS ticks) and back.

The relay counts stream time in samples from the first sample it heard; a player counts in the
source's presentation timestamps (90 kHz, 33 bits, wrapping every 26.5 hours). Within one run of
the source the two advance together, so the map is a list of anchors (stream second, tick), a new
one only where the source's timestamps jump (a reconnect that skipped audio, an encoder restart,
a discontinuity). Ticks are kept modulo 2**33, and every difference is taken the short way round
the wrap, so a stream that wraps mid-event maps on without a seam.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

TICK_HZ = 90_000
TICK_WRAP = 2**33  # MPEG-TS timestamps are 33 bits of a 90 kHz clock
_HALF_WRAP = TICK_WRAP // 2
_JUMP_TICKS = 1_800  # 20 ms: timestamps further than this from the running count are a new anchor
_MAX_ANCHORS = 4_096  # a source that jumps all the time keeps the newest


def signed_ticks(delta: int) -> int:
    """A tick difference taken the short way round the wrap: in [-2**32, 2**32)."""
    return (delta + _HALF_WRAP) % TICK_WRAP - _HALF_WRAP


def seconds_to_ticks(seconds: float) -> int:
    return round(seconds * TICK_HZ)


@dataclass(frozen=True, slots=True)
class Anchor:
    """Stream time `stream_s` played at presentation tick `tick` (modulo the wrap)."""

    stream_s: float
    tick: int


class PtsMap:
    """Anchors observed on the floor's audio, oldest first; used on the event loop only."""

    def __init__(self) -> None:
        self._anchors: deque[Anchor] = deque(maxlen=_MAX_ANCHORS)

    @property
    def anchors(self) -> list[Anchor]:
        return list(self._anchors)

    def observe(self, stream_s: float, tick: int | None) -> None:
        """The audio at `stream_s` carries presentation tick `tick` (None: the source has no timestamps)."""
        if tick is None:
            return
        tick %= TICK_WRAP
        if self._anchors:
            last = self._anchors[-1]
            if stream_s < last.stream_s:  # stream time only grows; an older sample says nothing new
                return
            predicted = last.tick + seconds_to_ticks(stream_s - last.stream_s)
            if abs(signed_ticks(tick - predicted)) <= _JUMP_TICKS:
                return
        self._anchors.append(Anchor(stream_s, tick))

    def tick_at(self, stream_s: float) -> int:
        """The presentation tick of stream time `stream_s` (without timestamps: stream time itself)."""
        anchor = self._anchor_for(stream_s)
        if anchor is None:
            return seconds_to_ticks(stream_s) % TICK_WRAP
        return (anchor.tick + seconds_to_ticks(stream_s - anchor.stream_s)) % TICK_WRAP

    def stream_at(self, tick: int, slack_s: float = 1.0) -> float | None:
        """The stream time of presentation tick `tick`, or None before any audio was heard.

        The newest anchor whose run the tick falls in wins (a source that restarted its clock
        reuses old ticks); before the first anchor the first run is extended backwards (a live
        playlist lists segments aired before the relay started). `slack_s` lets a tick a little
        before its run's first sample (a segment's video starts before its audio) belong to it.
        """
        anchors = self._anchors
        for index in range(len(anchors) - 1, -1, -1):
            anchor = anchors[index]
            stream_s = anchor.stream_s + signed_ticks(tick - anchor.tick) / TICK_HZ
            run_end = anchors[index + 1].stream_s if index + 1 < len(anchors) else float("inf")
            if index == 0 or anchor.stream_s - slack_s <= stream_s < run_end:
                return stream_s
        return None

    def _anchor_for(self, stream_s: float) -> Anchor | None:
        """The anchor whose run holds `stream_s` (the first one for times before it)."""
        found = None
        for anchor in reversed(self._anchors):
            found = anchor
            if anchor.stream_s <= stream_s:
                break
        return found
