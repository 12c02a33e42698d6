"""The live pipeline, top to bottom: source → VAD/segmenter → transcriber → caption sink."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from relay.caption_stage import CaptionStage
from relay.hls.pts import PtsMap
from relay.messages import AudioChunk, SourceEvent, SourceState, Utterance
from relay.segmenter import Segmenter, SegmenterSettings
from relay.source import AudioSource, SourceItem, SourceSettings, open_container
from relay.transcriber import MAX_PENDING_FINALS, CaptionSink, DecodeScheduler, PipelineObserver, Transcriber
from relay.translation import CaptionTranslator
from relay.vad import StreamingVad
from relay.whisper_engine import WhisperEngine

_LOGGER = logging.getLogger(__name__)

# A source read as fast as it decodes (a file or stdin without --realtime) keeps only this
# many finals waiting behind the one being decoded: reading further gains nothing, and a
# stop would have to decode all of it before exiting. A live source keeps a deep backlog.
_UNPACED_PENDING_FINALS = 1

SourceListener = Callable[[SourceEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    """Everything one channel's pipeline needs, one dataclass per stage."""

    source: SourceSettings
    segmenter: SegmenterSettings = field(default_factory=SegmenterSettings)
    channel: str = "floor"
    languages: tuple[str, ...] | None = None  # decode only in these (one: a booth's); None: any


class ChannelInput(Protocol):
    """A channel's audio opened elsewhere (e.g. one track of a multi-track source)."""

    @property
    def opened_at(self) -> float: ...

    def stream(self) -> AsyncIterator[SourceItem]: ...

    def stop(self) -> None: ...


class CutWatcher(Protocol):
    """Told what the segmenter cut and how far the channel got, for the track composer."""

    def cut(self, utterances: list[Utterance], through_s: float, open_speech_s: float | None) -> None: ...

    def empty(self, utterance: Utterance) -> None: ...


async def _ignore_source_event(event: SourceEvent) -> None:
    return None


class SpeechCutter:
    """VAD plus segmenter on a worker thread of their own, restarted at stream gaps."""

    def __init__(
        self, settings: SegmenterSettings, id_prefix: str, start_s: float = 0.0, first_number: int = 1
    ) -> None:
        self._settings = settings
        self._id_prefix = id_prefix
        self._vad = StreamingVad()
        self._segmenter = Segmenter(settings, id_prefix, start_s, first_number)
        self._expected_start_s = start_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vad")

    async def cut(self, chunk: AudioChunk) -> list[Utterance]:
        """Utterance snapshots completed by this chunk."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._cut_blocking, chunk)

    async def flush(self) -> list[Utterance]:
        """Commit what is being said, e.g. at the end of the stream or when it drops."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._segmenter.flush)

    @property
    def open_speech_s(self) -> float | None:
        """Where the utterance being spoken began (read between cuts)."""
        return self._segmenter.open_speech_s

    @property
    def next_number(self) -> int:
        """The number the next utterance would take: where a successor pipeline goes on."""
        return self._segmenter.next_number

    def close(self) -> None:
        self._executor.shutdown(wait=False)

    def _cut_blocking(self, chunk: AudioChunk) -> list[Utterance]:
        out: list[Utterance] = []
        if abs(chunk.start_s - self._expected_start_s) > 1e-3:  # the source skipped ahead
            out.extend(self._segmenter.flush())
            self._vad.reset()
            self._segmenter = Segmenter(
                self._settings, self._id_prefix, chunk.start_s, self._segmenter.next_number
            )
        self._expected_start_s = chunk.end_s
        out.extend(self._segmenter.push(chunk.samples, self._vad.process(chunk.samples)))
        return out


@dataclass(frozen=True, slots=True)
class Continuation:
    """Where a pipeline starts on the event's clock and in its utterance numbering."""

    start_s: float = 0.0  # stream time of this source's first sample
    id_prefix: str = "u"
    first_number: int = 1


class Pipeline:
    """Runs one channel until its source ends or stop() is called."""

    def __init__(
        self,
        settings: PipelineSettings,
        sink: CaptionSink,
        on_source_event: SourceListener = _ignore_source_event,
        continuation: Continuation | None = None,
        observer: PipelineObserver | None = None,
        *,
        channel_input: ChannelInput | None = None,
        scheduler: DecodeScheduler | None = None,
        watcher: CutWatcher | None = None,
        pts_map: PtsMap | None = None,
    ) -> None:
        self.settings = settings
        self._pts_map = pts_map  # told each chunk's presentation time (the floor's, for HLS cues)
        self._sink = sink
        self._on_source_event = on_source_event
        self._source = AudioSource(settings.source)
        self._input = channel_input  # None: the pipeline reads settings.source itself
        self.scheduler = scheduler  # None: a model worker of its own (set before run())
        self._watcher = watcher
        self._container = None
        self._ended: SourceEvent | None = None  # the source's end, reported after the last caption
        self.continuation = continuation or Continuation(id_prefix=_id_prefix(settings.channel))
        self._observer = observer
        self.next_number = self.continuation.first_number
        self.stream_s = self.continuation.start_s  # end of the audio processed so far

    @property
    def source_opened_at(self) -> float:
        """time.monotonic() when the current connection started delivering."""
        return self._input.opened_at if self._input is not None else self._source.opened_at

    def _since_opened(self) -> float:
        """Seconds since the connection (or, for an event's channel, the event's clock) started: `wall`."""
        return time.monotonic() - self.source_opened_at

    def adopt(self, container) -> None:
        """Use a container opened (and checked) elsewhere, e.g. by a source switch."""
        self._container = container

    async def open(self) -> None:
        """Open the source now, so a bad URL fails before anything else starts."""
        if self._input is not None:
            return
        loop = asyncio.get_running_loop()
        self._container = await loop.run_in_executor(None, open_container, self.settings.source)

    def stop(self) -> None:
        """Stop reading; what was said so far is still committed and published."""
        if self._input is not None:
            self._input.stop()
        self._source.stop()

    async def run(self, engine: WhisperEngine, translator: CaptionTranslator | None = None) -> None:
        """Transcribe (and interpret) until the source ends; every stage stops if one fails."""
        if self._container is None and self._input is None:
            await self.open()
        stage = CaptionStage(translator, self._sink, self._since_opened, self._observer)
        paced = self.settings.source.paced
        pending = MAX_PENDING_FINALS if paced else _UNPACED_PENDING_FINALS
        transcriber = Transcriber(
            engine, stage.offer, self._since_opened, self._observer, pending,
            scheduler=self.scheduler, channel=self.settings.channel,
            languages=self.settings.languages,
            on_empty=self._watcher.empty if self._watcher is not None else None,
        )
        start = self.continuation
        cutter = SpeechCutter(self.settings.segmenter, start.id_prefix, start.start_s, start.first_number)
        self._ended = None
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(stage.run())
                group.create_task(self._transcribe(transcriber, stage))
                group.create_task(self._feed(cutter, transcriber))
        finally:
            self.next_number = cutter.next_number
            cutter.close()
        if self._ended is not None:  # told once everything this source said is published
            await self._on_source_event(self._ended)

    @staticmethod
    async def _transcribe(transcriber: Transcriber, stage: CaptionStage) -> None:
        try:
            await transcriber.run()
        finally:
            stage.close()

    def _items(self) -> AsyncIterator[SourceItem]:
        return self._input.stream() if self._input is not None else self._source.stream(self._container)

    async def _feed(self, cutter: SpeechCutter, transcriber: Transcriber) -> None:
        try:
            async for item in self._items():
                if isinstance(item, AudioChunk):
                    item = AudioChunk(item.samples, item.start_s + self.continuation.start_s, item.pts_tick)
                    if self._pts_map is not None:
                        self._pts_map.observe(item.start_s, item.pts_tick)
                    await self._offer(await cutter.cut(item), cutter, transcriber, item.end_s)
                    continue
                if item.state is SourceState.ENDED:
                    self._ended = item
                    continue
                if item.state is SourceState.RECONNECTING:
                    await self._offer(await cutter.flush(), cutter, transcriber, self.stream_s)
                await self._on_source_event(item)
            await self._offer(await cutter.flush(), cutter, transcriber, self.stream_s)
        finally:
            transcriber.close()

    async def _offer(
        self, utterances: list[Utterance], cutter: SpeechCutter, transcriber: Transcriber, through_s: float
    ) -> None:
        self.stream_s = through_s
        if self._watcher is not None:  # told before the transcriber can publish any of them
            self._watcher.cut(utterances, through_s, cutter.open_speech_s)
        for utterance in utterances:
            await transcriber.offer(utterance)


def _id_prefix(channel: str) -> str:
    return "u" if channel == "floor" else f"{channel}-u"

