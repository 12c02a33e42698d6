"""A whole relay: the event (floor, booths, tracks), the durable transcript, the hub and its state."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Protocol

from relay.event import FLOOR, BoothInput, Event
from relay.hls.pts import PtsMap
from relay.hub import CaptionHub
from relay.messages import Caption, SourceEvent, SourceState
from relay.metrics import ChannelMetrics, Metrics
from relay.pipeline import ChannelInput, Continuation, Pipeline, PipelineSettings
from relay.redact import redact_url
from relay.source import SourceError, open_container
from relay.speakers import AgendaEntry, SpeakerLog
from relay.store import SqliteBacklog, TranscriptStore, transcript_path
from relay.transcript_schema import speaker_in
from relay.tracks import ORIGINAL, TrackCaption
from relay.translation import CAPTION_LANGUAGES, CaptionTranslator
from relay.whisper_engine import Decoded, WhisperEngine

_LOGGER = logging.getLogger(__name__)


class HlsHooks(Protocol):
    """What the relay tells its HLS renditions (relay.hls.service.HlsService)."""

    def track(self, seq: int, track: TrackCaption) -> None: ...

    def new_source(self, url: str, previous_through_s: float) -> None: ...

    def source_ended(self) -> None: ...


def track_languages(booths: list[BoothInput], translate: bool = True) -> tuple[str, ...]:
    """The event's tracks besides `original`: the caption languages (if translating) and every booth's."""
    return tuple(dict.fromkeys([*(CAPTION_LANGUAGES if translate else ()), *(b.lang for b in booths)]))


class RelayService:
    """Runs the event (the floor switching sources on request), and answers for its state.

    With a data directory every final is committed to SQLite before viewers get it, and a
    restarted relay carries on the same event: numbering (`seq`), session and the event clock
    continue, so viewers resume with `since`.
    """

    def __init__(
        self, settings: PipelineSettings, data_dir: Path | None = None,
        booths: list[BoothInput] | None = None, floor_input: ChannelInput | None = None,
        translate: bool = True, agenda: list[AgendaEntry] | None = None,
    ) -> None:
        self.settings = settings
        booths = booths or []
        langs = track_languages(booths, translate)
        self.stopped = asyncio.Event()
        self.metrics = Metrics()
        self.started_at = time.time()
        self._store = TranscriptStore(transcript_path(data_dir)) if data_dir else None
        self._backlog = SqliteBacklog(self._store) if self._store is not None else None
        durable = self._backlog is not None  # (an empty backlog is falsy: it has a length)
        self.hub = CaptionHub(
            store=self._backlog,
            last_seq=self._backlog.last_seq if durable else 0,
            session=self._backlog.session if durable else None,
            channels=[(FLOOR, None), *((b.settings.channel, b.lang) for b in booths)],
            tracks=(*langs, ORIGINAL),
            label=settings.channel,  # what viewers see of the source: never its address
        )
        self.event_started_at = self._store.meta.started_at if self._store is not None else self.started_at
        resumed_at = self.hub.seq
        self._continuation = Continuation(
            start_s=max(0.0, self.started_at - self.event_started_at) if resumed_at else 0.0,
            id_prefix=f"s{resumed_at}-u" if resumed_at else "u",
        )
        self.speakers = SpeakerLog(agenda)
        self._floor_speakers: dict[str, str] = {}  # recent floor final id -> its speaker, for the tracks
        if durable and (latest := self._backlog.latest(1)):  # a continued event: the floor is still theirs
            self.speakers.resume(speaker_in(latest[-1].text.decode()), self._continuation.start_s)
        paced = settings.source.paced
        self.pts_map = PtsMap()  # the floor's presentation times, for HLS cues on the video's timeline
        self.hls: HlsHooks | None = None  # set by the runner when the HLS renditions are served
        self.event = Event(self, langs, booths, paced=paced, on_source_event=self._on_source_event,
                           observer=self, resume=self._continuation, pts_map=self.pts_map)
        self._floor_input = floor_input
        self._pipeline: Pipeline | None = None
        self._next_source: tuple[str, Any] | None = None  # (url, opened container) to switch to
        self._wake = asyncio.Event()  # a new source or a stop, for run() waiting after an end
        self._stopping = False
        self._source = {"url": settings.source.url, "state": SourceState.CONNECTING.value, "since": time.time()}
        self._sources = {FLOOR: self._source} | {
            b.settings.channel: {"url": b.settings.source.url, "state": SourceState.CONNECTING.value, "since": time.time()}
            for b in booths
        }
        self._channel_metrics = {name: ChannelMetrics(self.metrics, name) for name in self._sources}
        self._last_final: Caption | None = None
        self._last_delay_s: float | None = None
        self._register_gauges()

    @property
    def store(self) -> TranscriptStore | None:
        """The transcript database (None without a data directory)."""
        return self._store

    @property
    def floor_stream_s(self) -> float:
        """Stream time the floor has processed through (its current source's, on the event clock)."""
        pipeline = self._pipeline
        return pipeline.stream_s if pipeline is not None else self._continuation.start_s

    @property
    def floor_through_s(self) -> float:
        """Stream time before which every final of the floor is out (its speech heard, decoded, published)."""
        return self.event.watches[FLOOR].through

    @property
    def backlog(self) -> SqliteBacklog | None:
        """The durable finals (what a Redis publisher republishes from after an outage)."""
        return self._backlog

    async def open(self) -> None:
        """Open the first source (raises SourceError), before models and server start."""
        self._pipeline = self._new_pipeline(self.settings)
        await self._pipeline.open()

    async def run(self, engine: WhisperEngine, translator: CaptionTranslator | None) -> None:
        """Caption until a stop is requested, switching sources in between.

        When a source ends, the session goes on: viewers see the source "ended" and the relay
        waits for a stop or for the next source (POST /api/source), which carries on the same
        event clock and numbering.
        """
        assert self._pipeline is not None, "open() first"
        await self.event.run(engine, translator, lambda: self._run_floor(engine, translator))

    async def _run_floor(self, engine: WhisperEngine, translator: CaptionTranslator | None) -> None:
        """The floor's pipelines, one per source, until a stop."""
        assert self._pipeline is not None
        try:
            while True:
                await self._pipeline.run(engine, translator)
                if self._stopping:
                    break
                if self._next_source is None:
                    _LOGGER.info("Source ended; waiting for the next source or a stop")
                    ended_at = time.monotonic()
                    await self._wake.wait()
                    if self._stopping:
                        break
                    idle_s = time.monotonic() - ended_at
                else:
                    idle_s = 0.0
                self._start_next_source(idle_s)
        finally:
            self._drop_next_source()

    def _start_next_source(self, idle_s: float) -> None:
        """Make the pending source current, continuing where the previous pipeline left off."""
        assert self._next_source is not None and self._pipeline is not None
        url, container = self._next_source
        self._next_source = None
        self._wake.clear()
        previous = self._pipeline
        settings = dataclasses.replace(self.settings, source=dataclasses.replace(self.settings.source, url=url))
        self._continuation = dataclasses.replace(
            self._continuation, start_s=previous.stream_s + idle_s, first_number=previous.next_number
        )
        self._pipeline = self._new_pipeline(settings)
        self._pipeline.adopt(container)
        self._source.update(url=url)
        if self.hls is not None:
            self.hls.new_source(url, previous.stream_s)

    def _drop_next_source(self) -> None:
        """Close a source that was opened for a switch but will not be used."""
        pending, self._next_source = self._next_source, None
        if pending is not None:
            pending[1].close()

    def request_stop(self) -> None:
        """Graceful stop: pending speech is committed, then run() returns."""
        self._stopping = True
        self.stopped.set()
        self._wake.set()
        self._drop_next_source()
        self.event.stop()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def switch_source(self, url: str) -> None:
        """Open `url` (raises SourceError, leaving the current source on) and switch to it.

        Also starts captioning again after a source has ended. A switch requested while
        another is pending replaces it (the older source is closed).
        """
        new = dataclasses.replace(self.settings.source, url=url)
        container = await asyncio.get_running_loop().run_in_executor(None, open_container, new)
        if self._stopping:
            container.close()
            raise SourceError("the relay is stopping")
        _LOGGER.info("Switching source to %s", redact_url(url))
        self._drop_next_source()
        self._next_source = (url, container)
        self._wake.set()
        if self._pipeline is not None:
            self._pipeline.stop()

    def end(self, reason: str) -> None:
        """Tell viewers the session is over (only when the operator stops it)."""
        self.hub.end_session(reason)

    def close(self) -> None:
        if self._backlog is not None:
            self._backlog.close()  # before the store it reads from
        if self._store is not None:
            self._store.close()

    def status(self) -> dict[str, Any]:
        """What `relay status` and /api/status report."""
        last = self._last_final
        channels = {
            name: {
                "source": {**source, "url": redact_url(str(source["url"]))},
                "caption_delay_s": self._channel_metrics[name].last_delay_s,
                "speech_s": round(self._channel_metrics[name].speech_s, 1),
                "finals": self._channel_metrics[name].finals,
            }
            for name, source in self._sources.items()
        }
        return {
            "channels": channels,
            "running": not self._stopping,
            "uptime_s": round(time.time() - self.started_at, 1),
            "event_started_at": self.event_started_at,
            "session": self.hub.session,
            "source": {**self._source, "url": redact_url(str(self._source["url"]))},
            "store": self._store_status(),
            "viewers": self.hub.viewer_count,
            "captions_published": self.hub.seq,
            "caption_delay_s": round(self._last_delay_s, 2) if self._last_delay_s is not None else None,
            "language": last.lang if last else None,
            "realtime_lag_s": round(self._lag_s(), 2),
            "speaker": self.speakers.current,
        }

    def _store_status(self) -> dict[str, Any]:
        """Is the transcript being written: `ok`, finals `pending` in memory, the database's `error`."""
        backlog = self._backlog
        if backlog is None:
            return {"durable": False, "ok": True, "pending": 0, "error": None}
        return {"durable": True, "ok": backlog.store_ok, "pending": backlog.store_pending, "error": backlog.store_error}

    def _new_pipeline(self, settings: PipelineSettings) -> Pipeline:
        floor_input, self._floor_input = self._floor_input, None  # the first source only
        return self.event.floor_pipeline(settings, self._continuation, floor_input)

    def set_speaker(self, name: str | None) -> dict[str, Any]:
        """`name` has the floor from what is being captioned now on (None: the agenda's next).

        Returns the name and the stream time it applies from: finals whose speech began then or later carry it.
        """
        pipeline = self._pipeline
        # To the millisecond the answer names: a final whose speech began at that very time is the new speaker's.
        now_s = round(pipeline.stream_s if pipeline is not None else self._continuation.start_s, 3)
        speaker = self.speakers.next(now_s) if name is None else self.speakers.set(name, now_s)
        _LOGGER.info("Speaker from stream time %.1f s: %s", now_s, speaker or "(none)")
        return {"speaker": speaker, "from_s": round(self.speakers.since, 3)}

    async def caption(self, caption: Caption) -> None:
        """A caption of any channel: to viewers (finals to the transcript first, with their speaker)."""
        if caption.is_final:
            speaker = self.speakers.at(caption.start)
            if speaker:
                caption = dataclasses.replace(caption, speaker=speaker)
            if caption.channel == FLOOR:  # remembered even when nobody was named: the tracks follow it
                self._floor_speakers[caption.id] = speaker
                if len(self._floor_speakers) > 500:
                    del self._floor_speakers[next(iter(self._floor_speakers))]
        self.hub.publish(caption)
        if caption.is_final and caption.text:
            delay = self._delay_of(caption)
            self._channel_metrics[caption.channel].final(caption, delay)
            if caption.channel == FLOOR:
                self._last_final = caption
                self._last_delay_s = delay
                self.metrics.captions_published.inc()
                self.metrics.caption_delay.observe(delay)

    async def track(self, track: TrackCaption) -> None:
        """A caption of a language track: numbered and kept like a final."""
        # An interpreter speaks a few seconds behind the floor: the speaker is the floor passage's.
        covered = next((self._floor_speakers[i] for i in track.covers if i in self._floor_speakers), None)
        if speaker := covered if covered is not None else self.speakers.at(track.start):
            track = dataclasses.replace(track, speaker=speaker)
        seq = self.hub.publish_track(track)
        if self.hls is not None:
            self.hls.track(seq, track)

    async def _on_source_event(self, channel: str, event: SourceEvent) -> None:
        # event.detail is for the operator and may name the source: neither logged raw nor sent to viewers.
        source = self._sources[channel]
        _LOGGER.info("Source of %s %s: %s", channel, event.state.value, redact_url(str(source["url"])))
        if event.state is SourceState.RECONNECTING:
            self.metrics.source_reconnects.inc()
        source.update(state=event.state.value, since=time.time())
        if channel == FLOOR and event.state is SourceState.ENDED and self.hls is not None:
            self.hls.source_ended()
        self._channel_metrics[channel].state(event.state)
        self.hub.source_state(event.state, channel)

    def _delay_of(self, caption: Caption) -> float:
        """Seconds from the end of the speech to the caption's publication, on this connection."""
        pipeline = self.event.pipelines.get(caption.channel)
        if pipeline is None:
            return 0.0
        aired = caption.end - pipeline.continuation.start_s
        return time.monotonic() - pipeline.source_opened_at - aired

    def _lag_s(self) -> float:
        pipeline = self._pipeline
        if pipeline is None or self._source["state"] == SourceState.ENDED.value:
            return 0.0  # nothing to keep up with while waiting for the next source
        processed = pipeline.stream_s - pipeline.continuation.start_s
        return max(0.0, time.monotonic() - pipeline.source_opened_at - processed)

    def decoded(self, decoded: Decoded, final: bool) -> None:
        self.metrics.decode.observe(decoded.seconds)

    def translated(self, seconds: float) -> None:
        self.metrics.translation.observe(seconds)

    def _register_gauges(self) -> None:
        m = self.metrics
        m.gauge("relay_viewers", "Viewers connected.", lambda: self.hub.viewer_count)
        m.counter("relay_viewers_dropped", "Viewers dropped as too slow.", lambda: self.hub.dropped)
        m.gauge("relay_realtime_lag_seconds", "Wall time minus stream time processed.", self._lag_s)
        m.gauge("relay_uptime_seconds", "Seconds since this process started.", lambda: time.time() - self.started_at)
        m.gauge("relay_store_ok", "1 while the transcript database takes every final, 0 while it fails.",
                lambda: float(self._store_status()["ok"]))  # fmt: skip
        m.gauge("relay_store_pending_finals", "Finals published but waiting in memory for the database.",
                lambda: self._store_status()["pending"])  # fmt: skip
        m.counter("relay_store_failures", "Times the transcript database started failing.",
                  lambda: self._backlog.store_failures if self._backlog is not None else 0)  # fmt: skip

