"""What the HLS routes serve: the current presentation's published segments, a sliding window.

The same object serves `relay serve` (filled by the packager as segments close) and `relay
edge` (filled from Redis), so both give the same playlists and byte-identical segments. Its
`state()` (everything but the segment files) is what travels to the edges.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relay.hls.packager import ClosedSegment, SegmentSpan
from relay.hls.playlist import MasterError, SegmentEntry, decorate_master, media_playlist

WINDOW_MAX_S = 3600.0  # a DVR source may list the whole event: captions for its last hour


@dataclass(frozen=True, slots=True)
class MasterSource:
    """The source's master (or media) playlist as fetched, and where it was fetched from (for its URIs)."""

    text: str
    base_url: str


class HlsWindow:
    """One presentation's segments (consecutive sequence numbers, oldest first) and how to name them."""

    def __init__(self, langs: Sequence[str], presentation: str, target_duration_s: int = 6,
                 max_s: float = WINDOW_MAX_S) -> None:
        self.langs = tuple(langs)
        self.presentation = presentation
        self.target_duration_s = target_duration_s
        self.ended = False
        self.master: MasterSource | None = None
        self.master_error = "the source is not HLS; give the public master with --hls-master URL"
        self.source_first_sn: int | None = None  # the source's own window starts here: ours never earlier
        self._max_s = max_s
        self._segments: deque[SegmentSpan] = deque()
        self._bodies: dict[tuple[str, int], bytes] = {}

    @property
    def segments(self) -> list[SegmentSpan]:
        return list(self._segments)

    @property
    def last_sn(self) -> int | None:
        return self._segments[-1].sn if self._segments else None

    def add(self, segment: ClosedSegment) -> list[int]:
        """Publish a closed segment; return the sequence numbers that left the window."""
        if self._segments and segment.sn != self._segments[-1].sn + 1:
            dropped = self._drop(len(self._segments))  # a gap cannot be listed: the window starts anew
        else:
            dropped = []
        self._segments.append(segment.span)
        for lang, body in segment.bodies.items():
            self._bodies[(lang, segment.sn)] = body
        return dropped + self._trim()

    def body(self, lang: str, presentation: str, sn: int) -> bytes | None:
        """A published segment's WebVTT file, or None (unknown, or no longer in the window)."""
        if presentation != self.presentation:
            return None
        return self._bodies.get((lang, sn))

    def playlist(self, lang: str, query: str = "") -> str | None:
        """The media playlist of `lang`, or None before its first segment (or for a language not served)."""
        if lang not in self.langs or not self._segments:
            return None
        entries = [SegmentEntry(s.sn, s.duration_s, s.cc, s.program_date_time) for s in self._segments]
        target = max(self.target_duration_s, *(round(s.duration_s) for s in self._segments))
        return media_playlist(entries, lambda sn: f"{lang}/{self.presentation}-{sn}.vtt{query}", target, self.ended)

    def master_playlist(self, query: str = "") -> str:
        """The source's master with the renditions added; raises MasterError when there is none to give."""
        if self.master is None:
            raise MasterError(self.master_error)
        return decorate_master(self.master.text, self.master.base_url, self.langs, lambda lang: f"{lang}.m3u8{query}")

    def set_source_first_sn(self, sn: int) -> list[int]:
        """The source's playlist now starts at `sn`; return what left our window with it."""
        self.source_first_sn = sn
        return self._trim()

    def _trim(self) -> list[int]:
        excess = 0
        first = self.source_first_sn
        total = sum(s.duration_s for s in self._segments)
        for span in self._segments:
            if (first is not None and span.sn < first) or total > self._max_s:
                excess += 1
                total -= span.duration_s
            else:
                break
        return self._drop(min(excess, len(self._segments) - 1))  # the newest stays listed

    def _drop(self, count: int) -> list[int]:
        dropped = []
        for _ in range(count):
            span = self._segments.popleft()
            dropped.append(span.sn)
            for lang in self.langs:
                self._bodies.pop((lang, span.sn), None)
        return dropped

    def state(self) -> dict[str, Any]:
        """Everything but the segment files, as JSON-ready data (what edges read from Redis)."""
        return {
            "presentation": self.presentation, "langs": list(self.langs), "target": self.target_duration_s,
            "ended": self.ended, "source_first_sn": self.source_first_sn, "master_error": self.master_error,
            "master": None if self.master is None else [self.master.text, self.master.base_url],
            "segments": [[s.sn, s.start_s, s.duration_s, s.cc, s.program_date_time] for s in self._segments],
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: Mapping[str, Any], bodies: Mapping[tuple[str, int], bytes]) -> HlsWindow:
        """A window rebuilt from `state()` and the files of its segments."""
        window = cls(state["langs"], state["presentation"], int(state["target"]))
        window.ended = bool(state["ended"])
        window.source_first_sn = state.get("source_first_sn")
        window.master_error = state.get("master_error", window.master_error)
        if state.get("master"):
            window.master = MasterSource(*state["master"])
        for sn, start_s, duration_s, cc, pdt in state["segments"]:
            span = SegmentSpan(sn, start_s, duration_s, cc, pdt)
            window._segments.append(span)
            for lang in window.langs:
                if (lang, sn) in bodies:
                    window._bodies[(lang, sn)] = bodies[(lang, sn)]
        return window
