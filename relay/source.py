"""Audio in: anything FFmpeg opens (HLS, RTMP, SRT, RTSP, HTTP, files, stdin) as 16 kHz mono."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Union

import av
import numpy as np

from relay.hls.pts import TICK_HZ, TICK_WRAP
from relay.messages import SAMPLE_RATE_HZ, AudioChunk, SourceEvent, SourceState
from relay.redact import redact_url
from relay.streamclock import StreamClock, packet_tick

_LOGGER = logging.getLogger(__name__)

CHUNK_SAMPLES = 512  # 32 ms: one VAD window
_QUEUE_CHUNKS = 256
# Reopenings in a row that bring nothing new before the source counts as ended: one could
# be a fluke (the server went down again while replaying), two is an ended playlist.
_STALE_REOPENS = 2
_LOCAL_SCHEMES = ("file:", "pipe:")
STDIN_URL = "pipe:0"

SourceItem = Union[AudioChunk, SourceEvent]
_WAKE = object()  # put by stop(): wakes a consumer waiting for the next item
_QueueItem = Union[SourceItem, BaseException, None, object]


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
    def paced(self) -> bool:
        """Audio arrives at the speed it was spoken (a live source, stdin, or a file read --realtime).

        stdin is taken as live (a capture card, `ffmpeg -re ... | relay`): finals are then
        published as they come rather than one at a time behind the reader.
        """
        return self.is_network or self.realtime or self.url == "-"

    @property
    def should_reconnect(self) -> bool:
        return self.is_network if self.reconnect is None else self.reconnect


def open_container(settings: SourceSettings) -> av.container.InputContainer:
    """Open the source and check it has audio, or raise SourceError with a one-line reason."""
    # stdin through FFmpeg's own pipe protocol, which hands over what has arrived: a Python file
    # object would be read in 32 KiB blocks, each waiting until it is full (1 s of 16 kHz PCM).
    target = STDIN_URL if settings.url == "-" else settings.url
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
    container: av.container.InputContainer, admit: Callable[[av.Packet], bool] | None = None
) -> Iterator[tuple[np.ndarray, int | None]]:
    """Yield (16 kHz mono float32 samples, the packet's presentation time in MPEG-TS ticks or
    None) for the first audio stream, skipping corrupt packets and packets `admit` turns down."""
    stream = container.streams.audio[0]
    for other in container.streams:
        if other.index != stream.index:  # unread: an HLS demuxer then fetches none of its segments
            other.discard = av.stream.Discard.all
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
    for packet in container.demux(stream):
        if admit is not None and not admit(packet):
            continue
        tick = packet_tick(packet)
        try:
            frames = packet.decode()
        except av.InvalidDataError as exc:
            _LOGGER.warning("Skipping a corrupt audio packet: %s", _reason(exc))
            continue
        offset = 0  # samples of this packet already yielded
        for frame in frames:
            for out in resampler.resample(frame):
                samples = out.to_ndarray().reshape(-1)
                yield samples, chunk_tick(tick, offset)
                offset += len(samples)
    for out in resampler.resample(None):
        yield out.to_ndarray().reshape(-1), None


def chunk_tick(tick: int | None, offset_samples: int) -> int | None:
    """The presentation tick of the sample `offset_samples` into a decoded packet that starts at `tick`."""
    if tick is None:
        return None
    return (tick + offset_samples * TICK_HZ // SAMPLE_RATE_HZ) % TICK_WRAP


class AudioSource:
    """Reads the source on a thread of its own and hands chunks to the event loop.

    The first open must succeed (a wrong URL fails fast). After that, a network source
    that drops or stalls is reopened with exponential backoff; stream time jumps ahead by
    the time it was away, so captions stay on the event's clock. stop() ends the stream
    at once: audio read ahead but not yet yielded is dropped, and nothing waits for the
    reader thread, which closes its container when its current read returns.
    """

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._wake: Callable[[], None] | None = None
        self.opened_at = time.monotonic()

    async def stream(self, first: av.container.InputContainer) -> AsyncIterator[SourceItem]:
        """Yield chunks and state changes until the source ends, fails, or stop() is called."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_QueueItem] = asyncio.Queue(_QUEUE_CHUNKS)
        self.opened_at = time.monotonic()

        def put(item: _QueueItem) -> None:
            """Hand an item to the loop (backpressure); give up once stopping."""
            if self._stop.is_set():
                return
            put_item = queue.put(item)
            try:
                future = asyncio.run_coroutine_threadsafe(put_item, loop)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                put_item.close()
                return
            while not self._stop.is_set():
                try:
                    future.result(timeout=0.5)
                    return
                except TimeoutError:
                    continue
            future.cancel()

        def nudge() -> None:
            if queue.empty():  # the consumer may be waiting in get(): let it see the stop
                queue.put_nowait(_WAKE)

        self._wake = lambda: loop.call_soon_threadsafe(nudge)
        thread = threading.Thread(target=self._run, args=(first, put), name="source", daemon=True)
        thread.start()
        try:
            while not (self._stop.is_set() and queue.empty()):
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                if item is _WAKE or (self._stop.is_set() and isinstance(item, AudioChunk)):
                    continue  # stopping: what was read ahead is not heard
                yield item
        finally:
            self._wake = None
            self._stop.set()

    def stop(self) -> None:
        """End the stream now (safe from the event loop or another thread)."""
        self._stop.set()
        wake = self._wake
        if wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                wake()

    def _run(self, container: av.container.InputContainer | None, put: Callable[[_QueueItem], None]) -> None:
        clock = StreamClock()
        stale = 0  # reopenings in a row that ended with nothing new
        try:
            put(SourceEvent(SourceState.CONNECTED, "connected"))
            while container is not None:
                try:
                    at_end = not self._stop.is_set() and self._pump(container, put, clock)
                finally:
                    container.close()
                if self._stop.is_set() or not self.settings.should_reconnect:
                    break
                stale = stale + 1 if at_end and clock.reconnected and not clock.fresh else 0
                if stale >= _STALE_REOPENS:
                    break  # the source has ended (e.g. an HLS playlist with #EXT-X-ENDLIST)
                container = self._reconnect(put)
                clock.new_connection()
            if not self._stop.is_set():
                put(SourceEvent(SourceState.ENDED, "the source ended"))
        except Exception as exc:  # surfaces in the pipeline, which reports it
            put(exc)
        finally:
            put(None)

    def _pump(self, container: av.container.InputContainer, put, clock: StreamClock) -> bool:
        """Hand over what the container yields; True if it reached its end (not dropped or stopped)."""
        try:
            for samples, tick in decode_audio(container, clock.admit):
                if not self._hand_over(samples, tick, clock, put):
                    return False
        except (av.FFmpegError, OSError) as exc:
            _LOGGER.warning("Source %s dropped: %s", redact_url(self.settings.url), _reason(exc))
            return False
        if self.settings.should_reconnect and not self._stop.is_set():
            _LOGGER.warning("Source %s ended; checking whether it comes back", redact_url(self.settings.url))
        return True

    def _hand_over(self, samples: np.ndarray, tick: int | None, clock: StreamClock, put) -> bool:
        """Pass samples on in small chunks (paced if asked); False once stopping."""
        for start in range(0, len(samples), CHUNK_SAMPLES):
            piece = samples[start : start + CHUNK_SAMPLES]
            chunk = AudioChunk(piece, clock.samples / SAMPLE_RATE_HZ, chunk_tick(tick, start))
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
        put(SourceEvent(SourceState.RECONNECTING, "reconnecting"))
        shown = redact_url(self.settings.url)
        backoff = 0.5
        while not self._stop.wait(backoff):
            try:
                container = open_container(self.settings)
            except SourceError as exc:
                _LOGGER.info("Reconnecting to %s failed: %s", shown, exc)
                backoff = min(backoff * 2, self.settings.max_backoff_s)
                continue
            _LOGGER.info("Reconnected to %s", shown)
            put(SourceEvent(SourceState.CONNECTED, "connected"))
            return container
        return None
