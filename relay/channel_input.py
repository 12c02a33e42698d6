"""Opening an event's channels: each source once, then one stream of SourceItems per channel."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import av

from relay.channels import BoothOption, ChannelError, ChannelSpec, map_tracks, separate_channels
from relay.multitrack import ChannelQueue, MultiTrackReader, StreamEpoch
from relay.probe import audio_tracks
from relay.source import AudioSource, SourceError, SourceItem, SourceSettings, open_container

_LOGGER = logging.getLogger(__name__)

Container = av.container.InputContainer


class ChannelSourceError(SourceError):
    """A channel's source cannot be opened, or lacks the track asked for."""

    def __init__(self, channel: str, url: str, reason: str) -> None:
        super().__init__(reason)
        self.channel = channel
        self.url = url


class ChannelInput(ABC):
    """One channel's audio: stream() yields what Pipeline._feed consumes; stop() ends it at once."""

    def __init__(self, spec: ChannelSpec, epoch: StreamEpoch) -> None:
        self.spec = spec
        self.epoch = epoch

    @property
    def name(self) -> str:
        """floor, booth-en..."""
        return self.spec.name

    @property
    def opened_at(self) -> float:
        """time.monotonic() at which stream time 0 played (shared by all channels of the event)."""
        return self.epoch.at if self.epoch.at is not None else time.monotonic()

    @abstractmethod
    def stream(self) -> AsyncIterator[SourceItem]:
        """CONNECTED, AudioChunks (RECONNECTING, CONNECTED around a drop), ENDED when the source
        ends; an error of the source is raised. Once per channel."""

    @abstractmethod
    def stop(self) -> None:
        """End the stream now, as AudioSource.stop: audio read ahead is dropped, no ENDED follows."""

    @abstractmethod
    def close(self) -> None:
        """Release the source of a channel that will never be streamed (safe after stream(), too)."""


class _EpochAudioSource(AudioSource):
    """AudioSource paced by the event's shared epoch rather than its own start."""

    def __init__(self, settings: SourceSettings, epoch: StreamEpoch) -> None:
        super().__init__(settings)
        self._epoch = epoch

    def _pace(self, stream_end_s: float) -> None:
        self._epoch.wait_until(stream_end_s, self._stop)


class SourceChannel(ChannelInput):
    """A channel with a source of its own, read by an AudioSource."""

    def __init__(self, spec: ChannelSpec, epoch: StreamEpoch, container: Container) -> None:
        super().__init__(spec, epoch)
        self._container: Container | None = container
        self._source = _EpochAudioSource(spec.source, epoch)

    async def stream(self) -> AsyncIterator[SourceItem]:
        container, self._container = self._container, None
        if container is None:
            raise RuntimeError(f"channel {self.name} already streamed or closed")
        self.epoch.mark()
        async for item in self._source.stream(container):
            yield item

    def stop(self) -> None:
        self._source.stop()

    def close(self) -> None:
        self._source.stop()
        container, self._container = self._container, None
        if container is not None:
            container.close()


class TrackChannel(ChannelInput):
    """A channel fed by a MultiTrackReader shared with the other tracks of its source."""

    def __init__(self, spec: ChannelSpec, epoch: StreamEpoch, queue: ChannelQueue, reader: MultiTrackReader) -> None:
        super().__init__(spec, epoch)
        self._queue = queue
        self._reader = reader
        self._streamed = False

    async def stream(self) -> AsyncIterator[SourceItem]:
        if self._streamed:
            raise RuntimeError(f"channel {self.name} already streamed or closed")
        self._streamed = True
        self.epoch.mark()
        self._reader.start()
        try:
            async for item in self._queue.items():
                yield item
        finally:
            self.close()

    def stop(self) -> None:
        self.close()

    def close(self) -> None:
        self._queue.close()
        self._reader.channel_closed()


def open_event_channels(floor: SourceSettings, booths: Sequence[BoothOption] = (),
                        auto: bool = False) -> dict[str, ChannelInput]:
    """Open the floor and its booths (blocking: run it in a thread from async code).

    `auto`: the floor source's audio tracks are mapped by language tag (`--booths auto`);
    a `--booth` given as well replaces the track of its language. Raises ChannelSourceError
    (naming the channel) or ChannelError (e.g. no floor track); nothing stays open then.
    """
    if not auto:
        return open_channels(separate_channels(floor, booths))
    container = _open(ChannelSpec("floor", None, floor))
    try:
        mapping = map_tracks(floor, audio_tracks(container))
    except ChannelError:
        container.close()
        raise
    explicit = separate_channels(floor, booths)[1:]
    given = {spec.lang for spec in explicit}
    specs = [spec for spec in mapping.channels if spec.lang not in given] + explicit
    for spec in mapping.channels:
        if spec.lang in given:
            _LOGGER.info("--booth %s replaces audio track %d of the source", spec.lang, spec.stream_index)
    return open_channels(specs, {floor: container})


def open_channels(specs: Sequence[ChannelSpec], opened: Mapping[SourceSettings, Container] | None = None
                  ) -> dict[str, ChannelInput]:
    """Open every distinct source once (side by side) and give each channel its input, by name."""
    groups: dict[SourceSettings, list[ChannelSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.source, []).append(spec)
    containers = dict(opened or {})
    try:
        containers.update(_open_all([group[0] for source, group in groups.items() if source not in containers]))
        for group in groups.values():
            _check_tracks(group, containers[group[0].source])
    except BaseException:
        for container in containers.values():
            container.close()
        raise
    epoch = StreamEpoch()
    inputs: dict[str, ChannelInput] = {}
    for source, group in groups.items():
        inputs.update(_inputs_of(group, containers[source], epoch))
    return {spec.name: inputs[spec.name] for spec in specs}


def _open(spec: ChannelSpec) -> Container:
    try:
        return open_container(spec.source)
    except SourceError as exc:
        raise ChannelSourceError(spec.name, spec.source.url, str(exc)) from exc


def _open_all(firsts: list[ChannelSpec]) -> dict[SourceSettings, Container]:
    """Open sources in parallel (each may take its open timeout); the first failure, in order, wins."""
    if not firsts:
        return {}
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(firsts), thread_name_prefix="open") as pool:
        futures = [(spec, pool.submit(_open, spec)) for spec in firsts]
        results: dict[SourceSettings, Container] = {}
        failure: BaseException | None = None
        for spec, future in futures:
            try:
                results[spec.source] = future.result()
            except BaseException as exc:
                failure = failure or exc
    if failure is not None:
        for container in results.values():
            container.close()
        raise failure
    _LOGGER.info("Opened %d source(s) in %.1f s", len(firsts), time.monotonic() - started)
    return results


def _check_tracks(group: list[ChannelSpec], container: Container) -> None:
    audio = [stream.index for stream in container.streams.audio]
    taken: dict[int, str] = {}
    for spec in group:
        index = audio[0] if spec.stream_index is None else spec.stream_index
        if index not in audio:
            raise ChannelSourceError(spec.name, spec.source.url, f"no audio track {index} in it")
        if index in taken:
            raise ChannelError(f"{spec.name} and {taken[index]} would caption the same audio track {index}")
        taken[index] = spec.name


def _inputs_of(group: list[ChannelSpec], container: Container, epoch: StreamEpoch) -> dict[str, ChannelInput]:
    first_audio = container.streams.audio[0].index
    if len(group) == 1 and group[0].stream_index in (None, first_audio):
        return {group[0].name: SourceChannel(group[0], epoch, container)}
    queues = [ChannelQueue(_with_index(spec, first_audio)) for spec in group]
    reader = MultiTrackReader(group[0].source, container, queues, epoch)
    return {queue.spec.name: TrackChannel(queue.spec, epoch, queue, reader) for queue in queues}


def _with_index(spec: ChannelSpec, default: int) -> ChannelSpec:
    if spec.stream_index is not None:
        return spec
    return ChannelSpec(spec.name, spec.lang, spec.source, default)
