"""The transcription stage: the model's workers shared by every channel of the event.

Each channel has a `Transcriber` (its lane): its finals in order in a bounded queue, and
only its newest partial snapshot. The `DecodeScheduler` picks what the model's workers decode
next: finals of every channel before any partial (the floor's first, then the oldest waiting),
and partials only when no final waits; a booth's partial is dropped as soon as a final is
waiting (the floor's is merely deferred). Finals are never dropped, and because only the
newest partial of a channel is kept, the delay cannot drift when decoding falls behind.

A settled snapshot (speech paused: most likely the final's very audio, decoded at final
quality ahead of it) is scheduled right after the finals and is never thinned.

Up to `engine.workers` decodes run at once, of which at most `workers - 1` partials (so a
final never waits for partials to finish), of different lanes, except that a lane's final or
settled snapshot may start while that lane's partial is still being decoded (the partial is
then never shown after the final). A lane never has two finals in flight (its captions stay in
order and each final is decoded with the text before it as context), and nothing else of it
starts while its final is decoded. A final whose audio is that of the lane's settled snapshot
waits for that decode instead of decoding again, without holding a worker.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from relay.messages import Caption, Utterance
from relay.timings import TIMINGS
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
    """Owns the model's workers for all channels: decides which snapshots are decoded next."""

    def __init__(self, engine: WhisperEngine) -> None:
        self.engine = engine
        self.workers = max(1, getattr(engine, "workers", 1))
        self._lanes: list[Transcriber] = []
        self._wake = asyncio.Event()
        self._order = itertools.count()
        self._closed = False
        self._busy = 0  # workers decoding now
        self._previews = 0  # of which on partials
        self._jobs: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self.partials_dropped = 0  # booth partials thinned out while finals waited

    @property
    def busy(self) -> int:
        """Workers decoding now."""
        return self._busy

    @property
    def previews(self) -> int:
        """Of which on partials."""
        return self._previews

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
        try:
            while True:
                self._wake.clear()
                if self._failure is not None:
                    for lane in self._lanes:
                        lane.fail(self._failure)
                    raise self._failure
                while (job := self._next()) is not None:
                    self._start(*job)
                if not self._jobs:
                    self._lanes = [lane for lane in self._lanes if not lane.drained]
                    if self._closed and not self._lanes or until is not None and until():
                        return
                await self._wake.wait()
        finally:
            for job in self._jobs:
                job.cancel()

    def _start(self, lane: Transcriber, utt: Utterance, uses_worker: bool) -> None:
        slot = _Slot(self, uses_worker, _is_preview(utt))
        lane.mark_in_flight(utt, True)
        if utt.settled and not utt.final:
            lane.begin_settled_decode(utt, slot)  # at once: a final arriving next can wait for it
        job = asyncio.create_task(self._decode(lane, utt, slot))
        self._jobs.add(job)

    def _occupy(self, slot: _Slot) -> None:
        self._busy += slot.uses_worker
        self._previews += slot.preview

    def _release(self, slot: _Slot) -> None:
        self._busy -= slot.uses_worker
        self._previews -= slot.preview
        self._wake.set()

    async def _decode(self, lane: Transcriber, utt: Utterance, slot: _Slot) -> None:
        try:
            if utt.final:
                await lane.commit(utt, slot)
            else:
                await lane.preview(utt, slot)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # ends run(): every stage stops if one fails
            if self._failure is None:
                self._failure = error
        finally:
            slot.release()
            lane.mark_in_flight(utt, False)
            self._jobs.discard(asyncio.current_task())  # type: ignore[arg-type]
            lane.check_drained()
            self._wake.set()

    def _next(self) -> tuple[Transcriber, Utterance, bool] | None:
        """Finals (the floor's first, then the oldest), settled snapshots, then partials."""
        # Final work that can start now (a lane's second final waits for its first: meanwhile
        # the other workers may decode partials).
        finals_wait = any(lane.finals and not lane.final_in_flight for lane in self._lanes)
        if finals_wait:
            for lane in self._lanes:
                if not lane.is_floor and lane.latest is not None and not lane.latest[1].settled:
                    lane.latest = None
                    self.partials_dropped += 1
                    lane.check_drained()
        free = self._busy < self.workers
        ready = [lane for lane in self._lanes if lane.finals and not lane.final_in_flight
                 and (free or lane.awaits_settled_decode())]
        if ready:
            lane = min(ready, key=lambda ln: (not ln.is_floor, ln.finals[0][0]))
            uses_worker = not lane.awaits_settled_decode()
            return lane, lane.pop_final(), uses_worker
        # A settled snapshot is most likely the final's very audio: decoded like a final.
        settled = [lane for lane in self._lanes if lane.latest is not None and lane.latest[1].settled]
        ready = [lane for lane in settled if not lane.final_in_flight and lane.may_start_settled()]
        if ready and free:
            return self._take_latest(ready)
        if finals_wait or ready or not free or self._previews >= max(1, self.workers - 1):
            return None  # no partial while final work waits; with 2+ workers one is kept for finals
        ready = [lane for lane in self._lanes if lane.latest is not None and not lane.in_flight]
        return self._take_latest(ready) if ready else None

    @staticmethod
    def _take_latest(lanes: list[Transcriber]) -> tuple[Transcriber, Utterance, bool]:
        lane = min(lanes, key=lambda ln: (not ln.is_floor, ln.latest[0]))  # type: ignore[index]
        _, utt = lane.latest  # type: ignore[misc]
        lane.latest = None
        return lane, utt, True


class _Slot:
    """One decode's claim on a worker: taken when scheduled, given back once the model is done
    with it (before its caption is published), at most once."""

    __slots__ = ("_scheduler", "uses_worker", "preview", "_held")

    def __init__(self, scheduler: DecodeScheduler, uses_worker: bool, preview: bool) -> None:
        self._scheduler = scheduler
        self.uses_worker = uses_worker
        self.preview = preview
        self._held = True
        scheduler._occupy(self)

    def release(self) -> None:
        if self._held:
            self._held = False
            self._scheduler._release(self)


def _is_preview(utt: Utterance) -> bool:
    """A partial shown while speech goes on (not a final, not a settled snapshot)."""
    return not utt.final and not utt.settled


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
        self._settling: tuple[tuple[str, int], asyncio.Future[Decoded]] | None = None
        self.final_in_flight = False
        self._final_id_in_flight: str | None = None
        self._settled_flying = 0  # settled decodes running: a newer one may start beside an outdated one
        self.partial_in_flight = False
        self._finished: deque[str] = deque(maxlen=_FINISHED_IDS_KEPT)
        self._partial_sent: set[str] = set()
        self._context = Context(lang=languages[0] if languages and len(languages) == 1 else None, only=languages)
        self._closed = False
        self._failure: BaseException | None = None
        # A lane's final and its partial may be decoded side by side; their captions go out one
        # at a time, in turn (a partial waiting here behind its final is then not sent).
        self._publishing = asyncio.Lock()
        self._scheduler.attach(self)

    @property
    def drained(self) -> bool:
        """Closed, and every final it was given is published."""
        return self._drained.is_set()

    async def offer(self, utterance: Utterance) -> None:
        """Queue a snapshot; waits only if finals have piled up (backpressure)."""
        if utterance.final:
            TIMINGS.mark(self.channel, utterance.id, "final_offered", speech_end_s=utterance.speech_end_s,
                         audio_s=round(utterance.end_s - utterance.start_s, 3),
                         workers_busy=self._scheduler.busy, partials_running=self._scheduler.previews)
            await self._room.wait()
            self.finals.append((self._scheduler.ticket(), utterance))
            if len(self.finals) >= self._max_pending:
                self._room.clear()
        else:
            if utterance.settled:
                TIMINGS.mark(self.channel, utterance.id, "settled_offered", latest=True)
            self.latest = (self._scheduler.ticket(), utterance)
        self._scheduler.wake()

    def close(self) -> None:
        """No more snapshots: run() returns once the queued finals are published."""
        self._closed = True
        self.check_drained()
        self._scheduler.wake()

    async def run(self) -> None:
        """Until closed and drained (decoding on a worker of its own unless shared); raises
        what made the shared scheduler fail."""
        if self._own:
            await self._scheduler.run(until=lambda: self.drained)
        else:
            await self._drained.wait()
        if self._failure is not None:
            raise self._failure

    def fail(self, error: BaseException) -> None:
        """The scheduler failed: run() raises `error` instead of waiting forever."""
        self._failure = error
        self._drained.set()

    def pop_final(self) -> Utterance:
        """The next final, for the scheduler."""
        utt = self.finals.popleft()[1]
        if len(self.finals) < self._max_pending:
            self._room.set()
        if self.latest is not None and self.latest[1].id == utt.id:
            self.latest = None  # a snapshot of this utterance: its final is here
        return utt

    @property
    def settled_in_flight(self) -> bool:
        return self._settled_flying > 0

    def may_start_settled(self) -> bool:
        """No settled decode runs, or only one of audio the speaker has since spoken past: the newer
        snapshot starts on a free worker rather than waiting for a result nobody will use."""
        if self._settled_flying == 0:
            return True
        settling, latest = self._settling, self.latest
        return self._settled_flying == 1 and settling is not None and latest is not None and settling[0] != latest[1].key

    @property
    def in_flight(self) -> bool:
        return self.final_in_flight or self.settled_in_flight or self.partial_in_flight

    def mark_in_flight(self, utt: Utterance, flying: bool) -> None:
        if utt.final:
            self.final_in_flight = flying
            self._final_id_in_flight = utt.id if flying else None
        elif utt.settled:
            self._settled_flying += 1 if flying else -1
        else:
            self.partial_in_flight = flying

    def awaits_settled_decode(self) -> bool:
        """Whether the next final is the audio of the settled snapshot being decoded now."""
        return self._settling is not None and bool(self.finals) and self._settling[0] == self.finals[0][1].key

    def check_drained(self) -> None:
        if self._closed and not self.finals and self.latest is None and not self.in_flight:
            self._drained.set()
            self._scheduler.wake()

    async def commit(self, utt: Utterance, slot: _Slot | None = None) -> None:
        """Decode (or reuse the settled decode of) a final and publish it."""
        decoded = await self._settled_decode(utt)
        if decoded is not None:
            _LOGGER.debug("Final %s reuses its settled decode", utt.id)
        else:
            decoded = await self._decode(utt, final=True, slot=slot)
        TIMINGS.mark(self.channel, utt.id, "decoded")
        self._settled = None
        self._finished.append(utt.id)
        had_partial = utt.id in self._partial_sent
        self._partial_sent.discard(utt.id)
        if decoded.text:
            self._context = Context(decoded.lang, decoded.text, self._languages)
        if decoded.text or had_partial:  # an empty final retracts a partial shown for noise
            async with self._publishing:
                await self._sink(self._caption("final", utt, decoded))
        elif self._on_empty is not None:
            self._on_empty(utt)
        self.check_drained()

    async def _settled_decode(self, utt: Utterance) -> Decoded | None:
        """The settled snapshot's decode when it holds the final's audio (waited for if running)."""
        settling = self._settling
        if settling is not None and settling[0] == utt.key:
            decoding = settling[1]
            await asyncio.wait([decoding])
            if not decoding.cancelled() and decoding.exception() is None:
                return decoding.result()
        cached = self._settled
        return cached[1] if cached is not None and cached[0] == utt.key else None

    def begin_settled_decode(self, utt: Utterance, slot: _Slot | None = None) -> None:
        """Start decoding a settled snapshot now (at final quality), unless its final went first."""
        if not self._superseded(utt):
            self._settling = (utt.key, asyncio.ensure_future(self._decode(utt, final=True, slot=slot)))

    def _superseded(self, utt: Utterance) -> bool:
        """Whether the final of this snapshot's utterance is done, being decoded or waiting."""
        return utt.id in self._finished or utt.id == self._final_id_in_flight \
            or any(f.id == utt.id for _, f in self.finals)

    async def preview(self, utt: Utterance, slot: _Slot | None = None) -> None:
        """Decode a partial snapshot and publish it unless its final went first."""
        settling = self._settling
        if utt.settled and settling is not None and settling[0] == utt.key:
            try:
                decoded = await asyncio.shield(settling[1])
            finally:
                if self._settling is settling:
                    self._settling = None
            self._settled = (utt.key, decoded)
        elif self._superseded(utt):
            return
        else:
            decoded = await self._decode(utt, final=utt.settled, slot=slot)
            if utt.settled:
                self._settled = (utt.key, decoded)
        if not decoded.text:
            return
        async with self._publishing:
            if utt.id not in self._finished:
                self._partial_sent.add(utt.id)
                await self._sink(self._caption("partial", utt, decoded))

    async def _decode(self, utt: Utterance, *, final: bool, slot: _Slot | None = None) -> Decoded:
        kind = "final" if utt.final else "settled" if utt.settled else "partial"
        TIMINGS.mark(self.channel, utt.id, f"{kind}_decode_start", latest=kind == "settled")
        try:
            decoded = await self._engine.decode(utt.samples, final=final, context=self._context)
        finally:
            if slot is not None:
                slot.release()  # the worker is free while the caption is published
        TIMINGS.mark(self.channel, utt.id, f"{kind}_decode_end", latest=kind == "settled",
                     **{f"{kind}_decode_s": round(decoded.seconds, 3)})
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
