"""Audio in: anything FFmpeg opens (HLS, RTMP, SRT, RTSP, HTTP, files, stdin) as 16 kHz mono."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Union

import av
import numpy as np

from relay.messages import SAMPLE_RATE_HZ, AudioChunk, SourceEvent, SourceState
from relay.redact import redact_url

_LOGGER = logging.getLogger(__name__)

CHUNK_SAMPLES = 1024  # 64 ms: fine-grained enough for a live VAD
_QUEUE_CHUNKS = 256
# Reopenings in a row that bring nothing new before the source counts as ended: one could
# be a fluke (the server went down again while replaying), two is an ended playlist.
_STALE_REOPENS = 2
_LOCAL_SCHEMES = ("file:", "pipe:")

SourceItem = Union[AudioChunk, SourceEvent]
_WAKE = object()  # put by stop(): wakes a consumer waiting for the next item
_QueueItem = Union[SourceItem, BaseException, None, object]
_PacketKey = tuple[Union[int, None], bytes]  # (timestamp tick, digest of the bytes)


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
    container: av.container.InputContainer, admit: Callable[[av.Packet], bool] | None = None
) -> Iterator[tuple[np.ndarray, float | None]]:
    """Yield (16 kHz mono float32 samples, source timestamp of the packet) for the first
    audio stream, skipping corrupt packets and packets `admit` turns down."""
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
    for packet in container.demux(stream):
        if admit is not None and not admit(packet):
            continue
        pts_s = float(packet.pts * packet.time_base) if packet.pts is not None else None
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
    """Where the stream is (samples handed over), and what was heard lately.

    After a reconnect a live source may replay what was already heard (an HLS server sends
    its playlist window again), or start a fresh timeline (an RTMP/SRT encoder restarted
    with timestamps from 0, an MPEG-TS timestamp wrap). Timestamps alone cannot tell these
    apart, so a packet counts as a replay only if the same bytes at the same timestamp were
    heard in the last `_HISTORY_S`. The first packet that is not starts the new audio: the
    clock jumps by the gap in timestamps when that gap fits the time away (HLS), else by
    the time away from the last packet heard.
    """

    _HISTORY_S = 90.0
    _GAP_SLACK_S = 60.0  # a timestamp gap this much longer than the time away is another timeline

    def __init__(self) -> None:
        self.samples = 0
        self.fresh = False  # this connection delivered audio not heard before
        self.reconnected = False
        self._last_tick: int | None = None  # where the last packet taken ends
        self._heard_at: float | None = None  # time.monotonic() of the last packet taken
        self._heard: dict[_PacketKey, float] = {}  # packet -> stream time last heard
        self._order: deque[tuple[_PacketKey, float]] = deque()  # oldest first, to forget

    def new_connection(self) -> None:
        """A reopened source: what comes first may be a replay."""
        self.fresh = False
        self.reconnected = True

    def admit(self, packet: av.Packet) -> bool:
        """True for a packet to decode; False for one replayed after a reconnect."""
        if packet.size == 0:  # the demuxer's end marker: it flushes the decoder
            return True
        tick = _tick(packet)
        key = (tick, hashlib.blake2b(bytes(packet), digest_size=8).digest())
        if not self.fresh:
            if self.reconnected and key in self._heard:
                return False
            self._jump(tick)
            self.fresh = True
        self._remember(key, self.samples / SAMPLE_RATE_HZ)
        if tick is not None:  # where this packet ends: the next one follows on without a gap
            self._last_tick = tick + _tick_span(packet.duration, packet.time_base)
        self._heard_at = time.monotonic()
        return True

    def _remember(self, key: _PacketKey, now: float) -> None:
        """Keep the packets of the last _HISTORY_S of stream (stream time, so a fast file stays small)."""
        self._heard[key] = now
        self._order.append((key, now))
        while now - self._order[0][1] > self._HISTORY_S:
            old, when = self._order.popleft()
            if self._heard.get(old) == when:  # not heard again since
                del self._heard[old]

    def _jump(self, tick: int | None) -> None:
        """First new packet of a connection: move the clock over the time the source was away."""
        if not self.reconnected or self._heard_at is None:
            return
        away_s = time.monotonic() - self._heard_at
        if tick is not None and self._last_tick is not None:
            gap_s = ((tick - self._last_tick) % _TICK_WRAP) / _TICK_HZ
            if gap_s <= away_s + self._GAP_SLACK_S:
                away_s = gap_s
        _LOGGER.info("Source back after %.1f s of stream", away_s)
        self.samples += int(max(away_s, 0.0) * SAMPLE_RATE_HZ)


_TICK_HZ = 90_000
_TICK_WRAP = 2**33  # MPEG-TS timestamps are 33 bits of a 90 kHz clock


def _tick_span(duration: int | None, time_base: Fraction | None) -> int:
    return round(duration * time_base * _TICK_HZ) if duration and time_base else 0


def _tick(packet: av.Packet) -> int | None:
    """The packet's timestamp as an MPEG-TS tick, modulo the wrap (so an unwrapped and a
    wrapped copy of the same packet agree)."""
    if packet.pts is None or packet.time_base is None:
        return None
    return round(packet.pts * packet.time_base * _TICK_HZ) % _TICK_WRAP


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
        clock = _StreamClock()
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

    def _pump(self, container: av.container.InputContainer, put, clock: _StreamClock) -> bool:
        """Hand over what the container yields; True if it reached its end (not dropped or stopped)."""
        try:
            for samples, _pts_s in decode_audio(container, clock.admit):
                if not self._hand_over(samples, clock, put):
                    return False
        except (av.FFmpegError, OSError) as exc:
            _LOGGER.warning("Source %s dropped: %s", redact_url(self.settings.url), _reason(exc))
            return False
        if self.settings.should_reconnect and not self._stop.is_set():
            _LOGGER.warning("Source %s ended; checking whether it comes back", redact_url(self.settings.url))
        return True

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
