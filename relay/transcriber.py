"""The transcription stage: one model worker shared by every channel of the event.

Each channel has a `Transcriber` (its lane): its finals in order in a bounded queue, and
only its newest partial snapshot. The `DecodeScheduler` picks what the model decodes next:
finals of every channel before any partial (the floor's first, then the oldest waiting), and
partials only when no final waits; a booth's partial is dropped as soon as a final is
waiting (the floor's is merely deferred). Finals are never dropped, and because only the
newest partial of a channel is kept, the delay cannot drift when decoding falls behind.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from relay.messages import Caption, Utterance
from relay.tracks.model import FLOOR
from relay.whisper_engine import Context, Decoded, WhisperEngine

_LOGGER = logging.getLogger(__name__)

MAX_PENDING_FINALS = 64
_FINISHED_IDS_KEPT = 32

CaptionSink = Callable[[Caption], Awaitable[None]]


class PipelineObserver(Protocol):
    """Hooks for metrics; called on the event loop, must not block."""

    def decoded(self, decoded: Decoded, final: bool) -> None: ...

    def translated(self, seconds: float) -> None: ...


class DecodeScheduler:
    """Owns the model's worker for all channels: decides which snapshot is decoded next."""

    def __init__(self, engine: WhisperEngine) -> None:
        self.engine = engine
        self._lanes: list[Transcriber] = []
        self._wake = asyncio.Event()
        self._order = itertools.count()
        self._closed = False
        self.partials_dropped = 0  # booth partials thinned out while finals waited

    def attach(self, lane: Transcriber) -> None:
        """Serve `lane` from now on (a channel's transcriber, e.g. after a source switch)."""
        self._lanes.append(lane)

    def ticket(self) -> int:
        """Arrival order of a snapshot, across channels."""
        return next(self._order)

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """No more lanes: run() returns once every lane is drained."""
        self._closed = True
        self._wake.set()

    async def run(self, until: Callable[[], bool] | None = None) -> None:
        """Decode until closed (or `until()` holds) with nothing left to decode."""
        while True:
            job = self._next()
            if job is None:
                self._lanes = [lane for lane in self._lanes if not lane.drained]
                if self._closed and not self._lanes or until is not None and until():
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            lane, utt = job
            if utt.final:
                await lane.commit(utt)
            else:
                await lane.preview(utt)
            lane.check_drained()

    def _next(self) -> tuple[Transcriber, Utterance] | None:
        """Floor finals, then other finals oldest first, then partials (floor first)."""
        with_finals = [lane for lane in self._lanes if lane.finals]
        if with_finals:
            for lane in self._lanes:
                if not lane.is_floor and lane.latest is not None:
                    lane.latest = None
                    self.partials_dropped += 1
                    lane.check_drained()
            lane = min(with_finals, key=lambda ln: (not ln.is_floor, ln.finals[0][0]))
            return lane, lane.pop_final()
        partials = [(lane, lane.latest) for lane in self._lanes if lane.latest is not None]
        if not partials:
            return None
        lane, (_, latest) = min(partials, key=lambda job: (not job[0].is_floor, job[1][0]))
        lane.latest = None
        return lane, latest


class Transcriber:
    """One channel's lane: turns its utterance snapshots into captions.

    A settled snapshot is decoded at final quality and its result is reused when the final
    turns out to hold the same audio. `languages`: the languages this channel may be decoded
    in (one: decode in it, never detect; None: detect freely). Without a shared `scheduler`
    the transcriber has a model worker of its own, run by run().
    """

    def __init__(
        self,
        engine: WhisperEngine,
        sink: CaptionSink,
        clock: Callable[[], float],
        observer: PipelineObserver | None = None,
        max_pending_finals: int = MAX_PENDING_FINALS,
        *,
        scheduler: DecodeScheduler | None = None,
        channel: str = FLOOR,
        languages: tuple[str, ...] | None = None,
        on_empty: Callable[[Utterance], None] | None = None,
    ) -> None:
        self._own = scheduler is None
        self._scheduler = scheduler or DecodeScheduler(engine)
        self._engine = self._scheduler.engine
        self._max_pending = max_pending_finals
        self._observer = observer
        self._sink = sink
        self._clock = clock  # seconds since the source started delivering
        self.channel = channel
        self.is_floor = channel == FLOOR
        self._languages = languages
        self._on_empty = on_empty  # told of a final that publishes nothing
        self.finals: deque[tuple[int, Utterance]] = deque()
        self.latest: tuple[int, Utterance] | None = None
        self._room = asyncio.Event()
        self._room.set()
        self._drained = asyncio.Event()
        self._settled: tuple[tuple[str, int], Decoded] | None = None
        self._finished: deque[str] = deque(maxlen=_FINISHED_IDS_KEPT)
        self._partial_sent: set[str] = set()
        self._context = Context(lang=languages[0] if languages and len(languages) == 1 else None, only=languages)
        self._closed = False
        self._scheduler.attach(self)

    @property
    def drained(self) -> bool:
        """Closed, and every final it was given is published."""
        return self._drained.is_set()

    async def offer(self, utterance: Utterance) -> None:
        """Queue a snapshot; waits only if finals have piled up (backpressure)."""
        if utterance.final:
            await self._room.wait()
            self.finals.append((self._scheduler.ticket(), utterance))
            if len(self.finals) >= self._max_pending:
                self._room.clear()
        else:
            self.latest = (self._scheduler.ticket(), utterance)
        self._scheduler.wake()

    def close(self) -> None:
        """No more snapshots: run() returns once the queued finals are published."""
        self._closed = True
        self.check_drained()
        self._scheduler.wake()

    async def run(self) -> None:
        """Until closed and drained (decoding on a worker of its own unless shared)."""
        if self._own:
            await self._scheduler.run(until=lambda: self.drained)
        else:
            await self._drained.wait()

    def pop_final(self) -> Utterance:
        """The next final, for the scheduler."""
        utt = self.finals.popleft()[1]
        if len(self.finals) < self._max_pending:
            self._room.set()
        return utt

    def check_drained(self) -> None:
        if self._closed and not self.finals and self.latest is None:
            self._drained.set()
            self._scheduler.wake()

    async def commit(self, utt: Utterance) -> None:
        """Decode (or reuse the settled decode of) a final and publish it."""
        cached = self._settled
        if cached is not None and cached[0] == utt.key:
            decoded = cached[1]
            _LOGGER.debug("Final %s reuses its settled decode", utt.id)
        else:
            decoded = await self._decode(utt, final=True)
        self._settled = None
        self._finished.append(utt.id)
        had_partial = utt.id in self._partial_sent
        self._partial_sent.discard(utt.id)
        if decoded.text:
            self._context = Context(decoded.lang, decoded.text, self._languages)
        if decoded.text or had_partial:  # an empty final retracts a partial shown for noise
            await self._sink(self._caption("final", utt, decoded))
        elif self._on_empty is not None:
            self._on_empty(utt)
        self.check_drained()

    async def preview(self, utt: Utterance) -> None:
        """Decode a partial snapshot and publish it unless its final went first."""
        if utt.id in self._finished or any(f.id == utt.id for _, f in self.finals):
            return
        decoded = await self._decode(utt, final=utt.settled)
        if utt.settled:
            self._settled = (utt.key, decoded)
        if decoded.text and utt.id not in self._finished:
            self._partial_sent.add(utt.id)
            await self._sink(self._caption("partial", utt, decoded))

    async def _decode(self, utt: Utterance, *, final: bool) -> Decoded:
        decoded = await self._engine.decode(utt.samples, final=final, context=self._context)
        if self._observer is not None:
            self._observer.decoded(decoded, final)
        _LOGGER.debug(
            "%s %s %s %.1f s audio in %.2f s: [%s] %s", self.channel,
            "final" if final else "partial", utt.id, utt.end_s - utt.start_s,
            decoded.seconds, decoded.lang, decoded.text,
        )
        return decoded

    def _caption(self, kind: str, utt: Utterance, decoded: Decoded) -> Caption:
        return Caption(
            kind=kind,
            id=utt.id,
            lang=decoded.lang,
            text=decoded.text,
            start=round(utt.speech_start_s, 3),
            end=round(utt.speech_end_s, 3),
            wall=round(self._clock(), 3),
            channel=self.channel,
        )
