"""An interpreted event: its channels, one shared decode scheduler and the track composer.

Each channel (the floor, each booth) is a Pipeline: its input, a SpeechCutter and its
caption stage, decoding through the event's one DecodeScheduler. What the channels cut and
publish feeds the TrackComposer (speech start/stop, finals, how far each channel got, source
up/down), which is ticked every 250 ms; channel captions and track captions go to the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from relay.hls.pts import PtsMap
from relay.messages import Caption, SourceEvent, SourceState, Utterance
from relay.pipeline import ChannelInput, Continuation, Pipeline, PipelineSettings
from relay.timings import TIMINGS
from relay.tracks import (
    FLOOR, ChannelState, Progress, Speech, TrackCaption, TrackComposer, TrackEvent, TrackSettings,
)
from relay.transcriber import DecodeScheduler, PipelineObserver
from relay.translation import CaptionTranslator
from relay.whisper_engine import WhisperEngine

_LOGGER = logging.getLogger(__name__)

TICK_S = 0.25
_FAR_S = 1e6  # "processed through the end of time": a channel that ended says nothing more
_UNPACED = TrackSettings(mt_bound_s=math.inf, booth_wait_max_s=math.inf, hold_max_s=math.inf)


class EventSink(Protocol):
    """Where the event publishes: the hub (serve) or the terminal (transcribe)."""

    async def caption(self, caption: Caption) -> None: ...

    async def track(self, track: TrackCaption) -> None: ...


SourceListener = Callable[[str, SourceEvent], Awaitable[None]]


async def _ignore(channel: str, event: SourceEvent) -> None:
    return None


@dataclass(frozen=True, slots=True)
class BoothInput:
    """A booth channel: its language, its pipeline settings and, if opened elsewhere, its input."""

    lang: str
    settings: PipelineSettings
    channel_input: ChannelInput | None = None


class ChannelWatch:
    """What the composer needs of one channel: speech runs, finals out, how far it got."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.through = 0.0  # Progress sent so far
        self.up = True
        self.ended = False
        self._open: dict[str, float] = {}  # utterance id -> speech end seen so far
        self._waiting: dict[str, tuple[float, float]] = {}  # finals cut, not yet out: (start, end)
        self._cut_through = 0.0
        self._open_speech_s: float | None = None

    def cut(self, utterances: list[Utterance], through_s: float, open_speech_s: float | None) -> list[TrackEvent]:
        events: list[TrackEvent] = []
        for utt in utterances:
            if utt.id not in self._open:
                events += self._close_open()  # one utterance at a time: a new one ends any other
                events.append(Speech(self.name, utt.speech_start_s, True))
            self._open[utt.id] = utt.speech_end_s
            if utt.final:
                del self._open[utt.id]
                events.append(Speech(self.name, utt.speech_end_s, False))
                self._waiting[utt.id] = (utt.speech_start_s, round(utt.speech_end_s, 3))
        if open_speech_s is None:  # e.g. a run too short to become an utterance: it stopped
            events += self._close_open()
        self._cut_through, self._open_speech_s = through_s, open_speech_s
        return events + self._progress()

    def _close_open(self) -> list[TrackEvent]:
        events: list[TrackEvent] = [Speech(self.name, end, False) for end in self._open.values()]
        self._open.clear()
        return events

    def published(self, caption: Caption) -> list[TrackEvent]:
        """A caption left the channel's caption stage."""
        base = caption.id.split(".")[0]
        span = self._waiting.get(base)
        if caption.is_final and span is not None and caption.end >= span[1]:
            del self._waiting[base]
        return self._progress()

    def empty(self, utterance: Utterance) -> list[TrackEvent]:
        """A final that publishes nothing (noise)."""
        self._waiting.pop(utterance.id, None)
        return self._progress()

    def _progress(self) -> list[TrackEvent]:
        through = self._cut_through
        if self._open_speech_s is not None:
            through = min(through, self._open_speech_s)
        if self._waiting:
            through = min(through, min(start for start, _ in self._waiting.values()))
        if through <= self.through:
            return []
        self.through = through
        return [Progress(self.name, through)]


class Event:
    """The floor and its booths captioned together, composed into one track per language."""

    def __init__(
        self,
        sink: EventSink,
        langs: tuple[str, ...],
        booths: Sequence[BoothInput] = (),
        *,
        paced: bool = True,
        on_source_event: SourceListener = _ignore,
        observer: PipelineObserver | None = None,
        resume: Continuation | None = None,
        pts_map: PtsMap | None = None,
    ) -> None:
        self._sink = sink
        self._pts_map = pts_map  # the floor's presentation times (HLS cues land on the video's timeline)
        self._resume = resume  # where a restarted relay's booths carry on (clock, numbering)
        self._booths = {b.settings.channel: b for b in booths}
        # Unpaced (a file read as fast as it decodes), wall time says nothing about the stream:
        # every decision waits for the channels' positions (a booth's silence, its text).
        settings = TrackSettings() if paced else _UNPACED
        self._paced = paced
        self.composer = TrackComposer(langs, {name: b.lang for name, b in self._booths.items()}, settings)
        self._on_source_event = on_source_event
        self._observer = observer
        self.watches = {name: ChannelWatch(name) for name in (FLOOR, *self._booths)}
        self.pipelines: dict[str, Pipeline] = {}
        self.scheduler: DecodeScheduler | None = None
        # Composer work is synchronous (events in order); its captions are published in order,
        # right after what caused them.
        self._outbox: deque[TrackCaption] = deque()
        self._stopping = False

    @property
    def channels(self) -> list[str]:
        return list(self.watches)

    def floor_pipeline(
        self, settings: PipelineSettings, continuation: Continuation | None = None,
        channel_input: ChannelInput | None = None,
    ) -> Pipeline:
        """A pipeline for the floor (again after a source switch), wired into the event."""
        pipeline = self._pipeline(settings, continuation, channel_input, self._pts_map)
        self.pipelines[FLOOR] = pipeline
        return pipeline

    async def run(
        self, engine: WhisperEngine, translator: CaptionTranslator | None,
        floor: Callable[[], Awaitable[None]],
    ) -> None:
        """Run the booths and the composer while `floor()` runs; then stop the booths and drain."""
        self.scheduler = DecodeScheduler(engine)
        for name, booth in self._booths.items():
            self.pipelines[name] = self._pipeline(booth.settings, self._booth_start(name), booth.channel_input)
        for pipeline in self.pipelines.values():
            pipeline.scheduler = self.scheduler
        booths = [asyncio.create_task(self._run_booth(name)) for name in self._booths]
        decoding = asyncio.create_task(self.scheduler.run())
        # Timeouts only matter while a booth may still speak, and only on a paced (live) clock.
        ticking = asyncio.create_task(self._tick_forever()) if self._booths and self._paced else None
        try:
            await floor()  # returns on a stop, or when the floor's source ended by itself:
        except BaseException:  # then the booths finish what they have
            self.stop()
            raise
        finally:
            await asyncio.gather(*booths, return_exceptions=True)
            self.scheduler.close()
            await decoding
            if ticking is not None:
                ticking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticking
            self._finish()
            await self._flush()

    async def run_floor(self, engine: WhisperEngine, translator: CaptionTranslator | None,
                        pipeline: Pipeline) -> None:
        """The event with one floor pipeline run until its source ends (transcribe)."""
        await self.run(engine, translator, lambda: pipeline.run(engine, translator))

    def stop(self) -> None:
        """Stop every channel; what was said so far is still published."""
        self._stopping = True
        for pipeline in self.pipelines.values():
            pipeline.stop()

    def _booth_start(self, name: str) -> Continuation | None:
        if self._resume is None or self._resume.id_prefix == "u":
            return None
        prefix = self._resume.id_prefix.removesuffix("u")  # "s42-": ids stay unique across restarts
        return Continuation(self._resume.start_s, f"{prefix}{name}-u")

    def _pipeline(self, settings: PipelineSettings, continuation: Continuation | None,
                  channel_input: ChannelInput | None, pts_map: PtsMap | None = None) -> Pipeline:
        name = settings.channel
        watch = self.watches[name]
        return Pipeline(
            settings, lambda caption: self._published(watch, caption),
            lambda event: self._source_event(watch, event), continuation, self._observer,
            channel_input=channel_input, scheduler=self.scheduler,
            # Without booths every track is decided on the floor's final alone: no per-chunk feed
            # (the watch still follows how far the channel's finals are out, for HLS).
            watcher=_Watcher(self, watch) if self._booths else _QuietWatcher(watch), pts_map=pts_map,
        )

    async def _run_booth(self, name: str) -> None:
        try:
            await self.pipelines[name].run(self.scheduler.engine, None)  # booths need no translation
        except Exception:  # a booth that fails leaves the floor and the other booths going
            _LOGGER.exception("Booth %s failed; its viewers get machine translation", name)
            self.feed([ChannelState(name, False)])

    async def _published(self, watch: ChannelWatch, caption: Caption) -> None:
        await self._sink.caption(caption)
        if caption.is_final and "." not in caption.id:
            TIMINGS.publish(caption.channel, caption.id, lang=caption.lang, words=len(caption.text.split()))
        events: list[TrackEvent] = [caption] if caption.is_final and caption.text else []
        self.feed(events + watch.published(caption))
        await self._flush()

    async def _source_event(self, watch: ChannelWatch, event: SourceEvent) -> None:
        await self._on_source_event(watch.name, event)
        up = event.state is SourceState.CONNECTED
        events: list[TrackEvent] = []
        if event.state is SourceState.ENDED and watch.name != FLOOR:
            # Everything the booth said is out: from here it is known silent. (The floor may
            # get a next source, so its clock goes on.)
            watch.ended = True
            watch.through = _FAR_S
            events.append(Progress(watch.name, _FAR_S))
        if up != watch.up and not watch.ended:
            watch.up = up
            events.append(ChannelState(watch.name, up))
        self.feed(events)
        await self._flush()

    def feed(self, events: list[TrackEvent]) -> None:
        """Give the composer events (synchronously, so they stay in order)."""
        for event in events:
            self._emit(self.composer.feed(event, self._now()))

    def _emit(self, tracks: list[TrackCaption]) -> None:
        self._outbox.extend(tracks)

    async def _flush(self) -> None:
        """Publish the track captions decided so far, in order."""
        while self._outbox:
            await self._sink.track(self._outbox.popleft())

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self._emit(self.composer.tick(self._now()))
            await self._flush()

    def _finish(self) -> None:
        """Every channel is done: what the composer still holds is decided now."""
        events: list[TrackEvent] = []
        for watch in self.watches.values():
            if not watch.ended:
                watch.ended = True
                events.append(Progress(watch.name, _FAR_S))
        self.feed(events)
        self._emit(self.composer.tick(self._now()))

    @staticmethod
    def _now() -> float:
        return time.monotonic()


class _QuietWatcher:
    """Pipeline hook that keeps a channel's watch current without feeding the composer."""

    def __init__(self, watch: ChannelWatch) -> None:
        self._watch = watch

    def cut(self, utterances: list[Utterance], through_s: float, open_speech_s: float | None) -> None:
        self._watch.cut(utterances, through_s, open_speech_s)

    def empty(self, utterance: Utterance) -> None:
        self._watch.empty(utterance)


class _Watcher:
    """Pipeline hook into the event's composer."""

    def __init__(self, event: Event, watch: ChannelWatch) -> None:
        self._event = event
        self._watch = watch

    def cut(self, utterances: list[Utterance], through_s: float, open_speech_s: float | None) -> None:
        self._event.feed(self._watch.cut(utterances, through_s, open_speech_s))

    def empty(self, utterance: Utterance) -> None:
        self._event.feed(self._watch.empty(utterance))
