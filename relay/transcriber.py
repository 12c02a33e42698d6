"""The transcription stage: schedules decodes so finals are never late and never lost."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from relay.messages import Caption, Utterance
from relay.whisper_engine import Context, Decoded, WhisperEngine

_LOGGER = logging.getLogger(__name__)

MAX_PENDING_FINALS = 64
_FINISHED_IDS_KEPT = 32

CaptionSink = Callable[[Caption], Awaitable[None]]


class PipelineObserver(Protocol):
    """Hooks for metrics; called on the event loop, must not block."""

    def decoded(self, decoded: Decoded, final: bool) -> None: ...

    def translated(self, seconds: float) -> None: ...


class Transcriber:
    """Turns utterance snapshots into captions with one model worker.

    Finals wait in order in a bounded queue and always go first. Partials are
    best-effort: only the newest snapshot is kept, so when decoding falls behind,
    stale partials are skipped instead of piling up, and the delay cannot drift.
    A settled snapshot is decoded at final quality and its result is reused when the
    final turns out to hold the same audio.
    """

    def __init__(
        self,
        engine: WhisperEngine,
        sink: CaptionSink,
        clock: Callable[[], float],
        observer: PipelineObserver | None = None,
        max_pending_finals: int = MAX_PENDING_FINALS,
    ) -> None:
        self._engine = engine
        self._max_pending = max_pending_finals
        self._observer = observer
        self._sink = sink
        self._clock = clock  # seconds since the source started delivering
        self._finals: deque[Utterance] = deque()
        self._latest: Utterance | None = None
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._settled: tuple[tuple[str, int], Decoded] | None = None
        self._finished: deque[str] = deque(maxlen=_FINISHED_IDS_KEPT)
        self._partial_sent: set[str] = set()
        self._context = Context(lang=None)
        self._closed = False

    async def offer(self, utterance: Utterance) -> None:
        """Queue a snapshot; waits only if finals have piled up (backpressure)."""
        if utterance.final:
            await self._room.wait()
            self._finals.append(utterance)
            if len(self._finals) >= self._max_pending:
                self._room.clear()
        else:
            self._latest = utterance
        self._wake.set()

    def close(self) -> None:
        """No more snapshots: run() returns once the queued finals are published."""
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        """Decode until closed and drained."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._finals or self._latest is not None:
                if self._finals:
                    await self._commit(self._finals.popleft())
                    if len(self._finals) < self._max_pending:
                        self._room.set()
                else:
                    latest, self._latest = self._latest, None
                    await self._preview(latest)
            if self._closed:
                return

    async def _commit(self, utt: Utterance) -> None:
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
            self._context = Context(decoded.lang, decoded.text)
        if decoded.text or had_partial:  # an empty final retracts a partial shown for noise
            await self._sink(self._caption("final", utt, decoded))

    async def _preview(self, utt: Utterance) -> None:
        if utt.id in self._finished or any(f.id == utt.id for f in self._finals):
            return
        decoded = await self._decode(utt, final=utt.settled)
        if utt.settled:
            self._settled = (utt.key, decoded)
        if decoded.text and utt.id not in self._finished:
            self._partial_sent.add(utt.id)
            await self._sink(self._caption("partial", utt, decoded))

    async def _decode(self, utt: Utterance, *, final: bool) -> Decoded:
        decoded = await self._engine.decode(
            utt.samples, final=final, context=self._context
        )
        if self._observer is not None:
            self._observer.decoded(decoded, final)
        _LOGGER.debug(
            "%s %s %.1f s audio in %.2f s: [%s] %s",
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
        )
