"""Audio in: anything FFmpeg opens (HLS, RTMP, SRT, RTSP, HTTP, files, stdin) as 16 kHz mono."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Union

import av
import numpy as np

from relay.messages import SAMPLE_RATE_HZ, AudioChunk, SourceEvent, SourceState

_LOGGER = logging.getLogger(__name__)

CHUNK_SAMPLES = 1024  # 64 ms: fine-grained enough for a live VAD
_QUEUE_CHUNKS = 256
_LOCAL_SCHEMES = ("file:", "pipe:")

SourceItem = Union[AudioChunk, SourceEvent]


class SourceError(Exception):
    """The source cannot be opened or carries no audio."""


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """Where the audio comes from and how hard to hold on to it."""

    url: str
    realtime: bool = False  # pace a file at real time, as if it were live
    open_timeout_s: float = 10.0
    stall_timeout_s: float = 10.0  # no data for this long: the stream is considered dropped
    reconnect: bool | None = None  # None: reconnect network sources, not files
    max_backoff_s: float = 10.0

    @property
    def is_network(self) -> bool:
        return "://" in self.url and not self.url.startswith(_LOCAL_SCHEMES)

    @property
    def should_reconnect(self) -> bool:
        return self.is_network if self.reconnect is None else self.reconnect


def open_container(settings: SourceSettings) -> av.container.InputContainer:
    """Open the source and check it has audio, or raise SourceError with a one-line reason."""
    target = sys.stdin.buffer if settings.url == "-" else settings.url
    try:
        container = av.open(
            target, mode="r", timeout=(settings.open_timeout_s, settings.stall_timeout_s)
        )
    except (av.FFmpegError, OSError) as exc:
        raise SourceError(_reason(exc)) from exc
    if not container.streams.audio:
        container.close()
        raise SourceError("no audio stream in it")
    return container


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def decode_audio(container: av.container.InputContainer) -> Iterator[np.ndarray]:
    """Yield the first audio stream as 16 kHz mono float32 arrays, skipping corrupt packets."""
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.InvalidDataError as exc:
            _LOGGER.warning("Skipping a corrupt audio packet: %s", _reason(exc))
            continue
        for frame in frames:
            for out in resampler.resample(frame):
                yield out.to_ndarray().reshape(-1)
    for out in resampler.resample(None):
        yield out.to_ndarray().reshape(-1)


class AudioSource:
    """Reads the source on a thread of its own and hands chunks to the event loop.

    The first open must succeed (a wrong URL fails fast). After that, a network source
    that drops or stalls is reopened with exponential backoff; stream time jumps ahead by
    the time it was away, so captions stay on the event's clock.
    """

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self.opened_at = time.monotonic()

    async def stream(self, first: av.container.InputContainer) -> AsyncIterator[SourceItem]:
        """Yield chunks and state changes until the source ends (or reconnecting gives up)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[SourceItem | BaseException | None] = asyncio.Queue(_QUEUE_CHUNKS)
        self.opened_at = time.monotonic()

        def put(item: SourceItem | BaseException | None) -> None:
            future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            while not self._stop.is_set():
                try:
                    future.result(timeout=0.5)
                    return
                except TimeoutError:
                    continue
            future.cancel()

        thread = threading.Thread(target=self._run, args=(first, put), name="source", daemon=True)
        thread.start()
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stop.set()

    def stop(self) -> None:
        """Ask the reader thread to finish; it notices within one packet or a timeout."""
        self._stop.set()

    def _run(self, container: av.container.InputContainer, put) -> None:
        emitted = 0  # samples handed over, i.e. the stream clock
        try:
            put(SourceEvent(SourceState.CONNECTED, self.settings.url))
            while not self._stop.is_set():
                emitted = self._pump(container, put, emitted)
                container.close()
                if self._stop.is_set() or not self.settings.should_reconnect:
                    break
                reopened = self._reconnect(put)
                if reopened is None:
                    break
                container, away_s = reopened
                emitted += int(away_s * SAMPLE_RATE_HZ)
            put(SourceEvent(SourceState.ENDED, self.settings.url))
        except Exception as exc:  # surfaces in the pipeline, which reports it
            put(exc)
        finally:
            put(None)

    def _pump(self, container, put, emitted: int) -> int:
        """Hand over everything the container yields; return the new stream clock."""
        try:
            for samples in decode_audio(container):
                for start in range(0, len(samples), CHUNK_SAMPLES):
                    piece = samples[start : start + CHUNK_SAMPLES]
                    chunk = AudioChunk(piece, emitted / SAMPLE_RATE_HZ)
                    emitted += len(piece)
                    if self.settings.realtime:
                        self._pace(chunk.end_s)
                    if self._stop.is_set():
                        return emitted
                    put(chunk)
        except (av.FFmpegError, OSError) as exc:
            _LOGGER.warning("Source %s dropped: %s", self.settings.url, _reason(exc))
        return emitted

    def _pace(self, stream_end_s: float) -> None:
        delay = self.opened_at + stream_end_s - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)

    def _reconnect(self, put) -> tuple[av.container.InputContainer, float] | None:
        dropped_at = time.monotonic()
        put(SourceEvent(SourceState.RECONNECTING, self.settings.url))
        backoff = 0.5
        while not self._stop.wait(backoff):
            try:
                container = open_container(self.settings)
            except SourceError as exc:
                _LOGGER.info("Reconnecting to %s failed: %s", self.settings.url, exc)
                backoff = min(backoff * 2, self.settings.max_backoff_s)
                continue
            _LOGGER.info("Reconnected to %s", self.settings.url)
            put(SourceEvent(SourceState.CONNECTED, self.settings.url))
            return container, time.monotonic() - dropped_at
        return None
