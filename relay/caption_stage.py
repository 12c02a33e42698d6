"""Between transcriber and viewers: finals cut into readable captions and interpreted.

Partials pass straight through in the spoken language. Each final is split into captions
of at most two 42-character lines (at sentence ends where possible), and each caption is
translated into every caption language on the translator's own threads, so transcription
never waits for translation. Captions leave in order; the first piece of a final keeps the
utterance id (it replaces that utterance's partial), later pieces take `id.2`, `id.3`...
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable

from relay.linebreak import split_captions
from relay.messages import Caption
from relay.timings import TIMINGS
from relay.transcriber import CaptionSink, PipelineObserver
from relay.translation import CaptionTranslator

_LOGGER = logging.getLogger(__name__)

_QUEUE_CAPTIONS = 256


def split_final(caption: Caption) -> list[Caption]:
    """Cut a final into display-sized captions, sharing its span in proportion to their text."""
    pieces = split_captions(caption.text) if caption.text else [caption.text]
    if len(pieces) <= 1:
        return [caption]
    total = sum(len(p) for p in pieces)
    span = caption.end - caption.start
    out, start = [], caption.start
    for number, piece in enumerate(pieces, start=1):
        end = caption.end if number == len(pieces) else start + span * len(piece) / total
        piece_id = caption.id if number == 1 else f"{caption.id}.{number}"
        out.append(dataclasses.replace(caption, id=piece_id, text=piece, start=round(start, 3), end=round(end, 3)))
        start = end
    return out


class CaptionStage:
    """An ordered queue of captions; finals are split and translated before they go on."""

    def __init__(
        self,
        translator: CaptionTranslator | None,
        sink: CaptionSink,
        clock: Callable[[], float],
        observer: PipelineObserver | None = None,
    ) -> None:
        self._translator = translator
        self._observer = observer
        self._sink = sink
        self._clock = clock  # seconds since the source started delivering
        self._queue: asyncio.Queue[Caption | None] = asyncio.Queue(_QUEUE_CAPTIONS)
        self._closing = False

    async def offer(self, caption: Caption) -> None:
        """Queue a caption from the transcriber."""
        await self._queue.put(caption)

    def close(self) -> None:
        """No more captions: run() returns after publishing the queued ones."""
        self._closing = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)  # wakes run() if it is waiting on an empty queue

    async def run(self) -> None:
        while not (self._closing and self._queue.empty()):
            caption = await self._queue.get()
            if caption is None:
                continue
            if not caption.is_final or not caption.text:
                await self._sink(caption)
                continue
            TIMINGS.mark(caption.channel, caption.id, "to_captions")
            for piece in split_final(caption):
                await self._sink(await self._interpret(piece))

    async def _interpret(self, caption: Caption) -> Caption:
        if self._translator is None:
            return caption
        started = time.monotonic()
        result = await self._translator.translate_async(caption.text, caption.lang)
        seconds = time.monotonic() - started
        TIMINGS.mark(caption.channel, caption.id, "translated")
        _LOGGER.debug("Translated %s in %.1f ms", caption.id, 1000 * seconds)
        if self._observer is not None:
            self._observer.translated(seconds)
        return dataclasses.replace(
            caption,
            translations=dict(result.translations),
            mt=dict(result.mt),
            wall=round(self._clock(), 3),
            mt_ms=round(1000 * seconds, 1),
        )
