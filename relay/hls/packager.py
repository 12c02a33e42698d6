"""Which cues go in which subtitle segment, and when a segment is closed for good.

Plain synchronous logic (no I/O, no asyncio). A segment is the span of stream time a source
segment covers (`SegmentSpan`: the same media sequence number, duration and discontinuity
sequence, so players line the renditions up) or, without a source playlist, a fixed slice of
stream time. Segments are immutable once published (CDNs cache them for good), so a segment is
rendered once, when it closes, in sequence order: as soon as every floor final of speech begun
before its end is out (the floor's `through`), or `max_wait_s` after the relay processed its end
if finals are that far behind.

A segment holds every cue (a final of its language's track) that overlaps its span, as known when
it closes, plus the cues no earlier segment carried that ended before it began: a final that
came late (a long utterance, an interpreter's words decided after the segment had closed) still
reaches players, at its own time, in the next segment. A cue is never published before it is
final: partials are not in HLS.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from relay.export import Cue, CueLayout
from relay.hls.pts import PtsMap
from relay.hls.vtt import segment_body
from relay.tracks.model import TrackCaption
from relay.transcript_tracks import labelled_text

MAX_WAIT_S = 20.0  # longer than any utterance (15 s) and its final's decode: then a segment closes anyway
_MAX_CUES = 4_000  # per language; older cues than the open segments are forgotten first


@dataclass(frozen=True, slots=True)
class SegmentSpan:
    """One segment before it closes: sequence number, span of stream time, discontinuity sequence."""

    sn: int
    start_s: float
    duration_s: float
    cc: int = 0
    program_date_time: str | None = None  # the source segment's EXT-X-PROGRAM-DATE-TIME, as written

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True, slots=True)
class ClosedSegment:
    """A published segment: its span and its WebVTT file per language (bytes, never changed again)."""

    span: SegmentSpan
    bodies: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def sn(self) -> int:
        return self.span.sn


class _LanguageCues:
    """One language's cues, laid out as `relay export` lays them out, and which are already placed."""

    def __init__(self) -> None:
        self.layout = CueLayout()
        self.cues: deque[Cue] = deque()
        self.placed: set[int] = set()  # seqs carried by a closed segment

    def add(self, seq: int, track: TrackCaption) -> None:
        if not track.text.split():
            return  # a retraction makes no cue, as in the export
        self.cues.append(self.layout.place(seq, labelled_text(track), track.start, track.end, track.speaker))
        if len(self.cues) > _MAX_CUES:
            self.placed.discard(self.cues.popleft().seq)

    def take(self, span: SegmentSpan) -> list[Cue]:
        """The cues of `span`: those overlapping it, and the unplaced ones that ended before it."""
        start_ms, end_ms = span.start_s * 1000, span.end_s * 1000
        chosen = [
            cue for cue in self.cues
            if (cue.start_ms < end_ms and cue.end_ms > start_ms)
            or (cue.end_ms <= start_ms and cue.seq not in self.placed)
        ]
        self.placed.update(cue.seq for cue in chosen)
        return sorted(chosen, key=lambda cue: (cue.start_ms, cue.seq))

    def forget_before(self, start_s: float) -> None:
        """Drop placed cues that ended before `start_s`: no segment still to close can need them."""
        while self.cues and self.cues[0].end_ms <= start_s * 1000 and self.cues[0].seq in self.placed:
            self.placed.discard(self.cues.popleft().seq)


class SubtitlePackager:
    """Closes the segments of one presentation in sequence order, rendering every language."""

    def __init__(self, langs: Sequence[str], pts: PtsMap, max_wait_s: float = MAX_WAIT_S,
                 last_closed_sn: int | None = None) -> None:
        self.langs = tuple(langs)
        self._pts = pts
        self._max_wait_s = max_wait_s
        self._languages = {lang: _LanguageCues() for lang in self.langs}
        self._spans: dict[int, SegmentSpan] = {}
        self.last_closed_sn = last_closed_sn  # nothing at or before it is closed again (it is published)

    def add_track(self, seq: int, track: TrackCaption) -> None:
        """A track caption published as `seq` (languages this packager does not render are ignored)."""
        cues = self._languages.get(track.lang)
        if cues is not None:
            cues.add(seq, track)

    def add_spans(self, spans: Iterable[SegmentSpan]) -> None:
        """Segments of the source, in any order; those already closed are ignored."""
        for span in spans:
            if self.last_closed_sn is None or span.sn > self.last_closed_sn:
                self._spans[span.sn] = span

    @property
    def open_spans(self) -> list[SegmentSpan]:
        return [self._spans[sn] for sn in sorted(self._spans)]

    def close_due(self, through_s: float, processed_s: float, *, finishing: bool = False) -> list[ClosedSegment]:
        """Close, in order, every segment whose finals are all out (`through_s` past its end) or
        that waited `max_wait_s` after its end was processed.

        `finishing` (the source ended or the relay stops): also every segment begun before
        `processed_s`; the rest will never have audio, and are left unpublished.
        """
        closed: list[ClosedSegment] = []
        for sn in sorted(self._spans):
            span = self._spans[sn]
            due = (through_s >= span.end_s or processed_s >= span.end_s + self._max_wait_s
                   or (finishing and span.start_s < processed_s))
            if not due:
                break
            del self._spans[sn]
            closed.append(self._close(span))
            self.last_closed_sn = sn
        if closed:
            for cues in self._languages.values():
                cues.forget_before(closed[-1].span.end_s)
        return closed

    def _close(self, span: SegmentSpan) -> ClosedSegment:
        bodies = {lang: segment_body(span.start_s, cues.take(span), self._pts) for lang, cues in self._languages.items()}
        return ClosedSegment(span, bodies)


class FixedSegmentation:
    """Segments of `segment_s` stream seconds numbered from stream time 0: for sources without a playlist."""

    def __init__(self, segment_s: float) -> None:
        if segment_s <= 0:
            raise ValueError("segment_s must be positive")
        self.segment_s = segment_s
        self._next_sn = 0

    def spans_through(self, processed_s: float) -> list[SegmentSpan]:
        """The segments begun by `processed_s` not handed out before."""
        last = math.floor(max(0.0, processed_s) / self.segment_s)
        spans = [SegmentSpan(sn, sn * self.segment_s, self.segment_s) for sn in range(self._next_sn, last + 1)]
        self._next_sn = max(self._next_sn, last + 1)
        return spans

    def resume_after(self, sn: int | None) -> None:
        """Carry on after the segments a previous run of the relay published."""
        if sn is not None:
            self._next_sn = max(self._next_sn, sn + 1)
