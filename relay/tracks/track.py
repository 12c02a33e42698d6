"""One language track: serves every floor passage once, from the floor, its booth or MT."""

from __future__ import annotations

import logging
from collections import OrderedDict, deque

from relay.messages import Caption
from relay.tracks.model import TrackCaption, TrackSettings
from relay.tracks.rules import (
    ONSET, Passage, Run, Timeline, claims, is_relay, next_onset, relay_like,
)

_LOGGER = logging.getLogger(__name__)

FLOOR_SOURCE = "floor"
BOOTH_SOURCE = "interpretation"
MT_SOURCE = "mt"


class Track:
    """Decides, passage by passage in floor order, what viewers of `lang` read."""

    def __init__(
        self, lang: str, booth: str | None, timelines: dict[str, Timeline],
        passages: deque[Passage], settings: TrackSettings,
    ) -> None:
        self.lang = lang
        self.booth = booth
        self._timelines = timelines
        self._passages = passages
        self._s = settings
        self._pending: deque[Passage] = deque()
        self._served: OrderedDict[str, str] = OrderedDict()
        self._booth_finals: dict[str, list[Caption]] = {}
        self._shown: OrderedDict[str, None] = OrderedDict()
        self._held: list[tuple[Caption, float]] = []
        self._text_through = float("-inf")  # end of the latest booth final received

    def add_passage(self, passage: Passage) -> None:
        """Queue a new floor final for a decision."""
        self._pending.append(passage)

    def add_booth_final(self, caption: Caption, now: float) -> list[TrackCaption]:
        """Hold a booth final until the floor passages it may interpret are all known."""
        self._text_through = max(self._text_through, caption.end)
        self._held.append((caption, now))
        return self._release(now)

    def advance(self, now: float) -> list[TrackCaption]:
        """Release held booth finals, then serve every passage that can be decided now."""
        out = self._release(now)
        while self._pending:
            passage = self._pending[0]
            source = self._decide(passage, now)
            if source is None:
                break
            self._pending.popleft()
            self._remember(passage.id, source)
            out.extend(self._serve(passage, source))
        return out

    def _release(self, now: float) -> list[TrackCaption]:
        floor = self._timelines["floor"]
        out: list[TrackCaption] = []
        still: list[tuple[Caption, float]] = []
        for caption, arrived in self._held:
            ready = floor.settled_before(caption.start + self._s.relay_tolerance_s)
            if ready or now >= arrived + self._s.hold_max_s:
                out.extend(self._attribute(caption))
            else:
                still.append((caption, arrived))
        self._held = still
        return out

    def _attribute(self, caption: Caption) -> list[TrackCaption]:
        """Give a booth final to the passages it interprets, or drop it (never doubled)."""
        known = list(self._passages)
        if is_relay(caption.start, caption.end, self.lang, known, self._s):
            _LOGGER.debug("track %s: booth final %s relays the floor, dropped", self.lang, caption.id)
            return []
        floor = self._timelines["floor"]
        candidates = self._candidates(caption, known)
        kinds = {
            p.id: claims(caption.start, caption.end, p, next_onset(p, known, floor), self._s, False)
            for p in candidates
        }
        # begun over the floor's own-language speech: relay or aside; chaining over it: ignored
        own = any(kinds[p.id] == ONSET and p.lang == self.lang for p in candidates)
        claimed = [p for p in candidates if kinds[p.id] and p.lang != self.lang]
        served = [self._served.get(p.id) for p in claimed]
        if not claimed or own or MT_SOURCE in served:
            _LOGGER.debug("track %s: booth final %s not used (passages %s)",
                          self.lang, caption.id, [p.id for p in claimed])
            return []
        for p in claimed:
            self._booth_finals.setdefault(p.id, []).append(caption)
        if any(s == BOOTH_SOURCE for s in served):
            return self._show([caption], claimed)
        return []

    def _candidates(self, caption: Caption, known: list[Passage]) -> list[Passage]:
        """The passages a booth final could claim: the latest begun before it, and overlapped."""
        lead = self._s.lead_s
        begun = [p for p in known if p.start + lead <= caption.start]
        latest = max(begun, key=lambda p: p.start, default=None)
        return [p for p in known if p is latest or p.end + lead > caption.start]

    def _decide(self, passage: Passage, now: float) -> str | None:
        """The source for `passage`, or None to keep waiting."""
        if passage.lang == self.lang:
            return FLOOR_SOURCE
        if passage.id in self._booth_finals:
            return BOOTH_SOURCE
        booth = self._timelines.get(self.booth) if self.booth else None
        if booth is None or not booth.up:
            return MT_SOURCE
        runs = self._covering_runs(passage, booth)
        if not runs:
            silent = booth.through >= passage.end + self._s.lag_s
            return MT_SOURCE if silent or now >= passage.published + self._s.mt_bound_s else None
        if now >= passage.published + self._s.booth_wait_max_s:
            return MT_SOURCE
        if self._held:
            return None
        # that speech's text is in (processed, or its final came) but went elsewhere
        text_in = max(booth.through, self._text_through + self._s.relay_tolerance_s)
        done = all(r.end is not None and r.end <= text_in for r in runs)
        return MT_SOURCE if done else None

    def _covering_runs(self, passage: Passage, booth: Timeline) -> list[Run]:
        """The booth's speech (not relayed floor) that interprets `passage`, so far."""
        known = list(self._passages)
        floor = self._timelines["floor"]
        nxt = next_onset(passage, known, floor)
        low, high = passage.start + self._s.lead_s, passage.end + self._s.lag_s
        near = [r for r in booth.runs if r.start <= high and booth.run_end(r) >= low]
        return [
            r for r in near
            if not relay_like(r, known, floor, self._s)
            and claims(r.start, booth.run_end(r), passage, nxt, self._s, True)
        ]

    def _serve(self, passage: Passage, source: str) -> list[TrackCaption]:
        """The captions that serve `passage` from `source`."""
        c = passage.caption
        if source == BOOTH_SOURCE:
            return self._show(self._booth_finals[passage.id], [passage])
        text = c.text
        if source == MT_SOURCE:
            text = c.translations.get(self.lang, "")
            if not text:  # no translation to give: the original words, rather than nothing
                _LOGGER.warning("track %s: no translation of %s, showing the floor", self.lang, c.id)
                source, text = FLOOR_SOURCE, c.text
        engine = c.mt.get(self.lang, "") if source == MT_SOURCE else ""
        return [TrackCaption(self.lang, source, c.channel, f"{self.lang}:{c.id}", text,
                             c.start, c.end, (c.id,), c.lang, engine)]

    def _show(self, finals: list[Caption], passages: list[Passage]) -> list[TrackCaption]:
        """Booth finals as interpretation captions, each shown once."""
        out = []
        for b in finals:
            if b.id in self._shown:
                continue
            self._shown[b.id] = None
            covers = [p for p in self._passages if b in self._booth_finals.get(p.id, ())]
            covers = covers or passages
            out.append(TrackCaption(
                self.lang, BOOTH_SOURCE, b.channel, f"{self.lang}:{b.channel}:{b.id}", b.text,
                b.start, b.end, tuple(p.id for p in covers), covers[0].lang))
        return out

    def _remember(self, passage_id: str, source: str) -> None:
        """Record a decision; forget what concerns passages older than the history."""
        self._served[passage_id] = source
        limit = self._s.history * 2
        while len(self._served) > limit:
            self._served.popitem(last=False)
        while len(self._shown) > limit:
            self._shown.popitem(last=False)
        if len(self._booth_finals) > limit:
            kept = {p.id for p in self._passages}
            self._booth_finals = {k: v for k, v in self._booth_finals.items() if k in kept}
