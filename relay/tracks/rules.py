"""Stream-time rules: which floor passage a stretch of booth speech interprets."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from relay.messages import Caption
from relay.tracks.model import TrackSettings


@dataclass(slots=True)
class Run:
    """One stretch of speech heard by a channel's VAD; `end` is None while it lasts."""

    start: float
    end: float | None = None


@dataclass(frozen=True, slots=True)
class Passage:
    """A floor final and when (wall clock) it was published to the composer."""

    caption: Caption
    published: float

    @property
    def id(self) -> str:
        return self.caption.id

    @property
    def start(self) -> float:
        return self.caption.start

    @property
    def end(self) -> float:
        return self.caption.end

    @property
    def lang(self) -> str:
        return self.caption.lang


class Timeline:
    """What one channel is known to have done: speech runs, processed position, up/down."""

    def __init__(self, history: int) -> None:
        self.runs: deque[Run] = deque(maxlen=history)
        self.through = -math.inf
        self.up = True

    def speech(self, at: float, speaking: bool) -> None:
        """Open a run on speech start, close the open one on speech end."""
        open_run = self.runs[-1] if self.runs and self.runs[-1].end is None else None
        if speaking and open_run is None:
            self.runs.append(Run(at))
        elif not speaking and open_run is not None:
            open_run.end = max(at, open_run.start)

    def progress(self, through: float) -> None:
        """Advance the processed position (never backwards)."""
        self.through = max(self.through, through)

    def set_up(self, up: bool) -> None:
        """Record the source state; a source going down ends any speech in progress."""
        self.up = up
        if not up and self.runs and self.runs[-1].end is None:
            self.runs[-1].end = max(self.through, self.runs[-1].start)

    def run_end(self, run: Run) -> float:
        """The end of `run`, or how far it is known to last while it is still open."""
        return run.end if run.end is not None else max(self.through, run.start)

    def settled_before(self, t: float) -> bool:
        """Whether every final of speech that started before `t` has been fed."""
        if self.through < t:
            return False
        return all(r.end is not None and r.end <= self.through for r in self.runs if r.start < t)


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    """Length of the intersection of [a0, a1] and [b0, b1]."""
    return max(0.0, min(a1, b1) - max(a0, b0))


def next_onset(passage: Passage, passages: list[Passage], floor: Timeline) -> float:
    """Stream time at which the floor started speaking after `passage` (inf if not yet)."""
    starts = [p.start for p in passages if p.start > passage.start]
    starts += [r.start for r in floor.runs if r.start >= passage.end]
    return min(starts, default=math.inf)


ONSET = "onset"
CHAIN = "chain"


def claims(
    start: float, end: float, passage: Passage, nxt: float, s: TrackSettings, window_only: bool
) -> str | None:
    """Whether booth speech over [start, end] interprets `passage`.

    Interpreters follow the floor in order: speech that starts after the passage started
    (plus the lead) and before the next floor onset (plus the lead) is this passage's. Speech
    begun earlier claims it only if it covers `chain_fraction` of it (an interpreter chaining
    two passages without a pause), so the tail of the previous passage does not count.
    `window_only`: the start must also fall within `lag_s` of the passage's end (used for
    deciding coverage; a final starting later is still attributed so it is never doubled).
    Returns ONSET, CHAIN or None.
    """
    low = passage.start + s.lead_s
    if low <= start < nxt + s.lead_s:
        return ONSET if not window_only or start <= passage.end + s.lag_s else None
    shifted = overlap(start, end, low, passage.end + s.lead_s)
    if shifted > 0 and shifted >= s.chain_fraction * (passage.end - passage.start):
        return CHAIN
    return None


def is_relay(start: float, end: float, lang: str, passages: list[Passage], s: TrackSettings) -> bool:
    """Whether a booth final in `lang` is floor speech in `lang` relayed.

    It starts within floor speech in `lang` (relayed audio starts with the floor, an
    interpretation starts before the next floor passage) and mostly lies over such speech.
    """
    own = [p for p in passages if p.lang == lang]
    if not any(p.start - s.relay_tolerance_s <= start <= p.end for p in own):
        return False
    over = sum(overlap(start, end, p.start, p.end) for p in own)
    return over >= s.relay_fraction * max(end - start, 1e-6)


def relay_like(run: Run, passages: list[Passage], floor: Timeline, s: TrackSettings) -> bool:
    """Whether booth speech began together with the floor (relayed audio, not interpretation)."""
    onsets = [p.start for p in passages] + [r.start for r in floor.runs]
    return any(abs(run.start - t) <= s.relay_tolerance_s for t in onsets)
