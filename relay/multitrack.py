"""Several audio tracks of one source read by one thread, each handed to its channel's queue."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence

import av
import numpy as np

from relay.channels import ChannelSpec
from relay.messages import SAMPLE_RATE_HZ, AudioChunk, SourceEvent, SourceState
from relay.redact import redact_url
from relay.source import CHUNK_SAMPLES, SourceError, SourceItem, SourceSettings, _reason, chunk_tick, open_container
from relay.streamclock import StreamClock, packet_tick

_LOGGER = logging.getLogger(__name__)

_QUEUE_CHUNKS = 256  # per channel: 16 s of audio
_WAIT_S = 0.5  # how often a blocked reader looks at the stop flags
_STALE_REOPENS = 2  # as AudioSource: reopenings in a row with nothing new before the source counts as ended


class StreamEpoch:
    """When stream time 0 plays (time.monotonic()): one for all channels, so --realtime paces them together."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at: float | None = None

    def mark(self) -> float:
        """Start the clock now unless a channel already did; the start time."""
        if self._at is not None:  # set once: no lock needed to read it (every paced chunk asks)
            return self._at
        with self._lock:
            if self._at is None:
                self._at = time.monotonic()
            return self._at

    @property
    def at(self) -> float | None:
        """The start time, or None before any channel started."""
        return self._at

    def wait_until(self, stream_s: float, stop: threading.Event) -> None:
        """Sleep until stream time `stream_s` plays, or stop is set."""
        delay = self.mark() + stream_s - time.monotonic()
        if delay > 0:
            stop.wait(delay)


class ChannelQueue:
    """Items of one channel, from a reader thread to the event loop; audio is bounded, events are not."""

    def __init__(self, spec: ChannelSpec) -> None:
        self.spec = spec
        self.closed = threading.Event()  # the consumer stopped or finished: drop what comes
        self._room = threading.BoundedSemaphore(_QUEUE_CHUNKS)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[SourceItem | BaseException | None] = asyncio.Queue()
        self._lock = threading.Lock()
        self._early: list[SourceItem | BaseException | None] = []  # sent before the consumer came

    def bind(self) -> None:
        """Attach to the running event loop (the consumer's) and take what was sent before."""
        with self._lock:
            self._loop = asyncio.get_running_loop()
            for item in self._early:
                self._queue.put_nowait(item)
            self._early.clear()

    def put_audio(self, chunk: AudioChunk, stopping: threading.Event) -> bool:
        """Block while the channel is behind; False if it closed or the reader is stopping."""
        while not self._room.acquire(timeout=_WAIT_S):
            if self.closed.is_set() or stopping.is_set():
                return False
        if self.closed.is_set():
            self._room.release()
            return False
        self._send(chunk)
        return True

    def put_control(self, item: SourceEvent | BaseException | None) -> None:
        """An event, an error or the end mark: never blocks."""
        self._send(item)

    def _send(self, item: SourceItem | BaseException | None) -> None:
        with self._lock:
            if self._loop is None:
                self._early.append(item)  # bounded: audio waits for room (_room) like any other
                return
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                self.closed.set()

    async def items(self) -> AsyncIterator[SourceItem]:
        """Chunks and events until the end mark or close(); an error from the reader is raised here."""
        self.bind()
        while not self.closed.is_set():
            item = await self._queue.get()
            if item is None or self.closed.is_set():
                return  # closed: what was read ahead is not heard (as AudioSource.stop)
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, AudioChunk):
                self._room.release()
            yield item

    def close(self) -> None:
        """End the stream now: the reader drops this channel's audio and is not held back by it."""
        if not self.closed.is_set():
            self.closed.set()
            self._send(None)  # wakes a consumer waiting for the next item


class MultiTrackReader:
    """Demuxes the wanted audio streams of one container on one thread.

    Like AudioSource, it reconnects a network source with backoff, skips what a reopened live
    source replays and moves each channel's clock over the time away (a StreamClock per track).
    A channel that falls behind holds the reader back (its queue is bounded), so all channels
    stay on one clock; one that stopped is dropped without holding anything.
    """

    def __init__(self, settings: SourceSettings, container: av.container.InputContainer,
                 queues: Sequence[ChannelQueue], epoch: StreamEpoch) -> None:
        self.settings = settings
        self._container: av.container.InputContainer | None = container
        self._queues = {queue.spec.stream_index: queue for queue in queues}
        self._epoch = epoch
        self._stop = threading.Event()
        self._started = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the reader thread (once; later calls do nothing)."""
        with self._started:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="multitrack", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish; it notices within one packet or _WAIT_S."""
        self._stop.set()

    def channel_closed(self) -> None:
        """A channel's consumer finished; once all have, the reader stops."""
        if all(queue.closed.is_set() for queue in self._queues.values()):
            self._stop.set()
            self.close_unstarted()

    def close_unstarted(self) -> None:
        """Close the container if the thread never ran (e.g. the event failed to start)."""
        with self._started:
            if self._thread is None and self._container is not None:
                self._container.close()
                self._container = None

    def _broadcast(self, item: SourceEvent | BaseException | None) -> None:
        for queue in self._queues.values():
            if not queue.closed.is_set() or item is None:
                queue.put_control(item)

    def _run(self) -> None:
        clocks = {index: StreamClock() for index in self._queues}
        container = self._container
        stale = 0  # reopenings in a row that ended with nothing new
        try:
            self._broadcast(SourceEvent(SourceState.CONNECTED, "connected"))
            while container is not None:
                try:
                    at_end = not self._stop.is_set() and self._pump(container, clocks)
                finally:
                    container.close()
                if self._stop.is_set() or not self.settings.should_reconnect:
                    break
                nothing_new = all(c.reconnected and not c.fresh for c in clocks.values())
                stale = stale + 1 if at_end and nothing_new else 0
                if stale >= _STALE_REOPENS:
                    break  # the source has ended (e.g. an HLS playlist with #EXT-X-ENDLIST)
                container = self._reconnect()
                for clock in clocks.values():
                    clock.new_connection()
            if not self._stop.is_set():
                self._broadcast(SourceEvent(SourceState.ENDED, "the source ended"))
        except Exception as exc:  # surfaces in every channel's pipeline
            self._broadcast(exc)
        finally:
            self._container = None
            self._broadcast(None)

    def _pump(self, container: av.container.InputContainer, clocks: dict[int, StreamClock]) -> bool:
        """Hand over what the container yields; True if it reached its end (not dropped or stopped)."""
        for stream in container.streams:
            if stream.index not in self._queues:  # unread: an HLS demuxer then fetches none of its segments
                stream.discard = av.stream.Discard.all
        streams = [s for s in container.streams.audio if s.index in self._queues]
        if len(streams) < len(self._queues):
            _LOGGER.warning("Source %s lacks audio tracks: has %s, wants %s", redact_url(self.settings.url),
                            [s.index for s in streams], sorted(self._queues))
        decoders = {s.index: _TrackDecoder() for s in streams}
        try:
            for packet in container.demux(*streams):
                index = packet.stream.index
                if not clocks[index].admit(packet):
                    continue  # replayed after a reconnect
                tick, offset = packet_tick(packet), 0
                for samples in decoders[index].decode(packet):
                    self._deliver(index, samples, chunk_tick(tick, offset), clocks[index])
                    offset += len(samples)
                if self._stop.is_set():
                    return False
            for index, decoder in decoders.items():
                for samples in decoder.flush():
                    self._deliver(index, samples, None, clocks[index])
        except (av.FFmpegError, OSError) as exc:
            _LOGGER.warning("Source %s dropped: %s", redact_url(self.settings.url), _reason(exc))
            return False
        if self.settings.should_reconnect and not self._stop.is_set():
            _LOGGER.warning("Source %s ended; checking whether it comes back", redact_url(self.settings.url))
        return True

    def _deliver(self, index: int, samples: np.ndarray, tick: int | None, clock: StreamClock) -> None:
        """Cut into chunks on the channel's clock, paced on the event's clock if asked."""
        queue = self._queues[index]
        for start in range(0, len(samples), CHUNK_SAMPLES):
            piece = samples[start : start + CHUNK_SAMPLES]
            chunk = AudioChunk(piece, clock.samples / SAMPLE_RATE_HZ, chunk_tick(tick, start))
            clock.samples += len(piece)
            if self.settings.realtime:
                self._epoch.wait_until(chunk.end_s, self._stop)
            if self._stop.is_set() or not queue.put_audio(chunk, self._stop):
                break

    def _reconnect(self) -> av.container.InputContainer | None:
        self._broadcast(SourceEvent(SourceState.RECONNECTING, "reconnecting"))
        backoff = 0.5
        while not self._stop.wait(backoff):
            try:
                container = open_container(self.settings)
            except SourceError as exc:
                _LOGGER.info("Reconnecting to %s failed: %s", redact_url(self.settings.url), exc)
                backoff = min(backoff * 2, self.settings.max_backoff_s)
                continue
            _LOGGER.info("Reconnected to %s", redact_url(self.settings.url))
            self._broadcast(SourceEvent(SourceState.CONNECTED, "connected"))
            return container
        return None


class _TrackDecoder:
    """Decodes one stream's packets to 16 kHz mono, skipping corrupt ones (as decode_audio does)."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)

    def decode(self, packet: av.Packet) -> list[np.ndarray]:
        try:
            frames = packet.decode()
        except av.InvalidDataError as exc:
            _LOGGER.warning("Skipping a corrupt audio packet: %s", _reason(exc))
            return []
        return [out.to_ndarray().reshape(-1) for frame in frames for out in self._resampler.resample(frame)]

    def flush(self) -> list[np.ndarray]:
        return [out.to_ndarray().reshape(-1) for out in self._resampler.resample(None)]

