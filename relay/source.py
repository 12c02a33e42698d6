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
    max_backoff_s: float = 2.0  # retrying a dead server is cheap; a long wait delays captions

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


def decode_audio(
    container: av.container.InputContainer, skip_until_s: float | None = None
) -> Iterator[tuple[np.ndarray, float | None]]:
    """Yield (16 kHz mono float32 samples, source timestamp of the packet) for the first
    audio stream, skipping corrupt packets and packets at or before `skip_until_s`."""
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
    for packet in container.demux(stream):
        pts_s = float(packet.pts * packet.time_base) if packet.pts is not None else None
        if skip_until_s is not None and pts_s is not None and pts_s <= skip_until_s:
            continue
        try:
            frames = packet.decode()
        except av.InvalidDataError as exc:
            _LOGGER.warning("Skipping a corrupt audio packet: %s", _reason(exc))
            continue
        for frame in frames:
            for out in resampler.resample(frame):
                yield out.to_ndarray().reshape(-1), pts_s
    for out in resampler.resample(None):
        yield out.to_ndarray().reshape(-1), None


class _StreamClock:
    """Where the stream is: samples handed over, and the source timestamp reached.

    After a reconnect, a live source (HLS) replays a few segments already heard: packets up
    to the last timestamp are skipped. The clock then jumps by the gap in source timestamps,
    or by the time spent away when the new connection's timestamps start over (RTMP).
    """

    _MAX_TIMESTAMP_GAP_S = 6 * 3600.0

    def __init__(self) -> None:
        self.samples = 0
        self.last_pts_s: float | None = None
        self.dropped_at: float | None = None

    def advance_after_gap(self, pts_s: float | None) -> None:
        """Called with the first new packet after a reconnect."""
        if self.dropped_at is None:
            return
        away_s = time.monotonic() - self.dropped_at
        if pts_s is not None and self.last_pts_s is not None:
            gap_s = pts_s - self.last_pts_s
            if 0 <= gap_s < self._MAX_TIMESTAMP_GAP_S:
                away_s = gap_s
        self.samples += int(max(away_s, 0.0) * SAMPLE_RATE_HZ)
        self.dropped_at = None


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
        clock = _StreamClock()
        try:
            put(SourceEvent(SourceState.CONNECTED, self.settings.url))
            while not self._stop.is_set():
                fresh = self._pump(container, put, clock)
                container.close()
                if self._stop.is_set() or not self.settings.should_reconnect:
                    break
                if clock.dropped_at is not None and not fresh:
                    break  # a reopened source with nothing new has ended (e.g. HLS ENDLIST)
                clock.dropped_at = time.monotonic()
                container = self._reconnect(put)
                if container is None:
                    break
            put(SourceEvent(SourceState.ENDED, self.settings.url))
        except Exception as exc:  # surfaces in the pipeline, which reports it
            put(exc)
        finally:
            put(None)

    def _pump(self, container, put, clock: _StreamClock) -> bool:
        """Hand over what the container yields; True if any audio was new."""
        fresh = False
        try:
            for samples, pts_s in decode_audio(container, skip_until_s=clock.last_pts_s):
                if not fresh:
                    clock.advance_after_gap(pts_s)
                    fresh = True
                if pts_s is not None:
                    clock.last_pts_s = max(pts_s, clock.last_pts_s or pts_s)
                if not self._hand_over(samples, clock, put):
                    break
        except (av.FFmpegError, OSError) as exc:
            _LOGGER.warning("Source %s dropped: %s", self.settings.url, _reason(exc))
        else:
            if self.settings.should_reconnect and not self._stop.is_set():
                _LOGGER.warning("Source %s ended; checking whether it comes back", self.settings.url)
        return fresh

    def _hand_over(self, samples: np.ndarray, clock: _StreamClock, put) -> bool:
        """Pass samples on in small chunks (paced if asked); False once stopping."""
        for start in range(0, len(samples), CHUNK_SAMPLES):
            piece = samples[start : start + CHUNK_SAMPLES]
            chunk = AudioChunk(piece, clock.samples / SAMPLE_RATE_HZ)
            clock.samples += len(piece)
            if self.settings.realtime:
                self._pace(chunk.end_s)
            if self._stop.is_set():
                return False
            put(chunk)
        return True

    def _pace(self, stream_end_s: float) -> None:
        delay = self.opened_at + stream_end_s - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)

    def _reconnect(self, put) -> av.container.InputContainer | None:
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
            return container
        return None
