"""Opening an event's channels: one reader for a multi-track source, one clock for all channels."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pytest
from faster_whisper.audio import decode_audio

from relay.channel_input import (
    ChannelInput,
    ChannelSourceError,
    SourceChannel,
    TrackChannel,
    open_channels,
    open_event_channels,
)
from relay.channels import BoothOption, ChannelSpec
from relay.messages import AudioChunk, SourceState
from relay.source import SourceSettings
from tests.support.live_hls_master import INTERPRETATION_DIR, live_hls_master, trim_audio  # noqa: F401

EVENT_MKA = INTERPRETATION_DIR / "event.mka"
CHANNELS = ("floor", "booth-en", "booth-fr", "booth-es")
_ENVELOPE_SAMPLES = 800  # 50 ms


@dataclass
class Received:
    """What one channel yielded, in order, with the monotonic time each item arrived."""

    chunks: list[AudioChunk] = field(default_factory=list)
    states: list[SourceState] = field(default_factory=list)
    arrivals: list[tuple[float, object]] = field(default_factory=list)

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate([c.samples for c in self.chunks]) if self.chunks else np.zeros(0, np.float32)

    @property
    def stream_s(self) -> float:
        return self.chunks[-1].end_s if self.chunks else 0.0


async def receive(channel: ChannelInput, received: Received, stop_at_s: float | None = None) -> Received:
    """Consume a channel to its end, stopping it once `stop_at_s` of audio came."""
    async for item in channel.stream():
        received.arrivals.append((time.monotonic(), item))
        if isinstance(item, AudioChunk):
            received.chunks.append(item)
            if stop_at_s is not None and item.end_s >= stop_at_s:
                channel.stop()
        else:
            received.states.append(item.state)
    return received


async def receive_all(inputs: dict[str, ChannelInput], stop_at_s: float | None, timeout_s: float = 90
                      ) -> dict[str, Received]:
    received = {name: Received() for name in inputs}
    await asyncio.wait_for(asyncio.gather(
        *(receive(channel, received[name], stop_at_s) for name, channel in inputs.items())), timeout_s)
    return received


def envelope(samples: np.ndarray) -> np.ndarray:
    usable = len(samples) // _ENVELOPE_SAMPLES * _ENVELOPE_SAMPLES
    return np.sqrt((samples[:usable].reshape(-1, _ENVELOPE_SAMPLES) ** 2).mean(axis=1))


def envelope_distance(audio: np.ndarray, reference: np.ndarray) -> float:
    """Mean loudness difference relative to the reference's loudness (lossy codecs keep the envelope)."""
    size = min(len(audio), len(reference))
    a, r = envelope(audio[:size]), envelope(reference[:size])
    return float(np.abs(a - r).mean() / r.mean())


def assert_each_channel_carries_its_own_audio(received: dict[str, Received], max_distance: float) -> None:
    references = {name: decode_audio(str(INTERPRETATION_DIR / f"{name}.flac")) for name in CHANNELS}
    for name in CHANNELS:
        distances = {ref: envelope_distance(received[name].audio, references[ref]) for ref in CHANNELS}
        others = min(d for ref, d in distances.items() if ref != name)
        assert distances[name] < max_distance and distances[name] < others / 2, (name, distances)


def assert_contiguous(chunks: list[AudioChunk]) -> None:
    for before, after in zip(chunks, chunks[1:]):
        assert after.start_s == pytest.approx(before.end_s, abs=1e-6)


def remux_head(source: Path, target: Path, seconds: float) -> Path:
    """The first `seconds` of every stream of a file, remuxed (no re-encoding)."""
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams.audio}
        for index, stream in streams.items():
            for key in ("language", "title"):
                stream.metadata[key] = inp.streams[index].metadata[key]
            stream.disposition = inp.streams[index].disposition
        for packet in inp.demux(*inp.streams.audio):
            if packet.dts is None or packet.pts * packet.time_base >= seconds:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return target


async def test_event_tracks_yield_each_channels_own_audio():
    inputs = await asyncio.to_thread(open_event_channels, SourceSettings(str(EVENT_MKA)), (), True)
    assert list(inputs) == list(CHANNELS)
    assert all(isinstance(channel, TrackChannel) for channel in inputs.values())
    received = await receive_all(inputs, stop_at_s=20.0)
    assert_each_channel_carries_its_own_audio(received, max_distance=0.35)
    for name in CHANNELS:
        assert received[name].states == [SourceState.CONNECTED]  # stopped: no ENDED
        assert received[name].chunks[0].start_s == 0.0 and received[name].stream_s >= 20.0
        assert_contiguous(received[name].chunks)


async def test_every_channel_ends_when_the_file_does(tmp_path):
    head = remux_head(EVENT_MKA, tmp_path / "head.mka", seconds=3.0)
    inputs = await asyncio.to_thread(open_event_channels, SourceSettings(str(head)), (), True)
    received = await receive_all(inputs, stop_at_s=None)
    for name in CHANNELS:
        assert received[name].states == [SourceState.CONNECTED, SourceState.ENDED]
        assert 2.9 <= received[name].stream_s <= 3.1


async def test_stopping_one_channel_leaves_the_others_reading():
    inputs = await asyncio.to_thread(open_event_channels, SourceSettings(str(EVENT_MKA)), (), True)
    received = {name: Received() for name in inputs}
    floor = asyncio.create_task(receive(inputs["floor"], received["floor"], stop_at_s=2.0))
    booths = [receive(inputs[name], received[name], stop_at_s=8.0) for name in CHANNELS[1:]]
    await asyncio.wait_for(asyncio.gather(floor, *booths), 60)
    assert received["floor"].stream_s < 3.0
    assert all(received[name].stream_s >= 8.0 for name in CHANNELS[1:])
    assert all(r.states == [SourceState.CONNECTED] for r in received.values())


async def test_a_missing_track_names_its_channel():
    spec = ChannelSpec("booth-de", "de", SourceSettings(str(EVENT_MKA)), stream_index=7)
    with pytest.raises(ChannelSourceError, match="no audio track 7") as error:
        await asyncio.to_thread(open_channels, [spec])
    assert error.value.channel == "booth-de"


async def test_a_bad_booth_fails_the_open_and_names_the_booth(tmp_path, unused_tcp_port):
    floor = SourceSettings(str(INTERPRETATION_DIR / "floor.flac"))
    booths = [BoothOption("en", str(INTERPRETATION_DIR / "booth-en.flac")),
              BoothOption("fr", f"http://127.0.0.1:{unused_tcp_port}/fr.m3u8")]
    with pytest.raises(ChannelSourceError, match="refused") as error:
        await asyncio.to_thread(open_event_channels, floor, booths)
    assert error.value.channel == "booth-fr"


async def test_live_hls_master_channels_carry_their_renditions(live_hls_master):  # noqa: F811
    server = live_hls_master(seconds=16.0, speed=2.0)
    inputs = await asyncio.to_thread(open_event_channels, SourceSettings(server.url), (), True)
    assert list(inputs) == list(CHANNELS)
    received = await receive_all(inputs, stop_at_s=12.0)
    assert_each_channel_carries_its_own_audio(received, max_distance=0.45)
    for name in CHANNELS:
        assert received[name].states == [SourceState.CONNECTED]
        assert_contiguous(received[name].chunks)
    # Each rendition is fetched once: FFmpeg also lists the variant stream (the floor's playlist
    # again), whose segments are not fetched once discarded (a probe may read its first one).
    requests = server.rendition_segment_requests
    assert requests["en"] >= 5 and requests["floor"] <= requests["en"] + 2, requests


async def test_separate_sources_are_paced_on_one_clock():
    floor = SourceSettings(str(INTERPRETATION_DIR / "floor.flac"), realtime=True)
    booths = [BoothOption("fr", str(INTERPRETATION_DIR / "booth-fr.flac"))]
    inputs = await asyncio.to_thread(open_event_channels, floor, booths)
    assert all(isinstance(channel, SourceChannel) for channel in inputs.values())
    received = {name: Received() for name in inputs}
    floor_task = asyncio.create_task(receive(inputs["floor"], received["floor"], stop_at_s=5.0))
    await wait_until(lambda: received["floor"].stream_s >= 2.0)  # the booth's consumer starts late
    await asyncio.wait_for(asyncio.gather(floor_task, receive(inputs["booth-fr"], received["booth-fr"], 5.0)), 30)
    # On one clock, the late booth catches up at once and then keeps the floor's stream time
    # (on a clock of its own, it would stay 2 s behind).
    booth, floor_got = received["booth-fr"], received["floor"]
    first_booth_t = next(t for t, item in booth.arrivals if isinstance(item, AudioChunk))
    assert stream_s_at(floor_got, first_booth_t) >= 2.0
    caught_up = next((t for t, item in booth.arrivals
                      if isinstance(item, AudioChunk) and item.end_s >= stream_s_at(floor_got, t) - 0.2), None)
    assert caught_up is not None, "the booth never caught up with the floor"
    later = [(t, item.end_s) for t, item in floor_got.arrivals if isinstance(item, AudioChunk) and t > caught_up + 0.5]
    assert later and all(abs(end_s - stream_s_at(booth, t)) < 0.5 for t, end_s in later)


def stream_s_at(received: Received, when: float) -> float:
    """Stream time a channel had delivered by monotonic time `when`."""
    ends = [item.end_s for t, item in received.arrivals if isinstance(item, AudioChunk) and t <= when]
    return max(ends, default=0.0)


async def wait_until(condition, timeout_s: float = 30.0) -> None:
    """Poll a condition of what the channels received so far (bounded, so a bug cannot hang)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_dropped_booth_reconnects_while_the_floor_goes_on(live_hls, tmp_path):
    floor_server = live_hls(trim_audio(INTERPRETATION_DIR / "floor.flac", 30.0, tmp_path), speed=2.0)
    booth_server = live_hls(trim_audio(INTERPRETATION_DIR / "booth-fr.flac", 30.0, tmp_path), speed=2.0)
    floor = SourceSettings(floor_server.url, stall_timeout_s=5.0, open_timeout_s=5.0)
    inputs = await asyncio.to_thread(open_event_channels, floor, [BoothOption("fr", booth_server.url)])
    received = {name: Received() for name in inputs}
    tasks = [asyncio.create_task(receive(inputs[name], received[name], stop_at_s=24.0)) for name in inputs]

    await wait_until(lambda: received["booth-fr"].stream_s > 4.0)
    booth_server.stop()
    await wait_until(lambda: SourceState.RECONNECTING in received["booth-fr"].states)
    floor_during_outage = received["floor"].stream_s
    await wait_until(lambda: received["floor"].stream_s > floor_during_outage + 2.0)
    booth_server.start()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    assert received["floor"].states == [SourceState.CONNECTED]
    booth = received["booth-fr"]
    assert booth.states == [SourceState.CONNECTED, SourceState.RECONNECTING, SourceState.CONNECTED]
    assert booth.stream_s >= 24.0
    starts = [chunk.start_s for chunk in booth.chunks]
    assert starts == sorted(starts)  # what aired during the outage is skipped, nothing replayed


async def test_a_dropped_multitrack_source_reconnects_every_channel(live_hls_master):  # noqa: F811
    server = live_hls_master(seconds=24.0, speed=2.0)
    settings = SourceSettings(server.url, stall_timeout_s=5.0, open_timeout_s=5.0)
    inputs = await asyncio.to_thread(open_event_channels, settings, (), True)
    received = {name: Received() for name in inputs}
    tasks = [asyncio.create_task(receive(inputs[name], received[name], stop_at_s=20.0)) for name in inputs]
    await wait_until(lambda: min(r.stream_s for r in received.values()) >= 4.0)
    server.stop()
    await wait_until(lambda: all(SourceState.RECONNECTING in r.states for r in received.values()))
    server.start()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    for name, r in received.items():
        assert r.states == [SourceState.CONNECTED, SourceState.RECONNECTING, SourceState.CONNECTED], name
        starts = [chunk.start_s for chunk in r.chunks]
        assert starts == sorted(starts) and r.stream_s >= 20.0, name



async def test_stop_ends_channels_waiting_on_a_live_source(live_hls_master):  # noqa: F811
    server = live_hls_master(seconds=30.0, speed=1.0)
    inputs = await asyncio.to_thread(open_event_channels, SourceSettings(server.url), (), True)
    received = {name: Received() for name in inputs}
    tasks = [asyncio.create_task(receive(inputs[name], received[name])) for name in inputs]
    await wait_until(lambda: all(r.chunks for r in received.values()))
    for channel in inputs.values():  # their consumers wait for the next segment to air
        channel.stop()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)  # a bound, so a hang fails instead of blocking
    assert all(r.states == [SourceState.CONNECTED] for r in received.values())
    assert all(r.stream_s < 25.0 for r in received.values())


async def test_a_live_master_that_ends_ends_every_channel(live_hls_master):  # noqa: F811
    server = live_hls_master(seconds=6.0, speed=4.0)
    settings = SourceSettings(server.url, stall_timeout_s=5.0)
    inputs = await asyncio.to_thread(open_event_channels, settings, (), True)
    received = await receive_all(inputs, stop_at_s=None, timeout_s=60)
    for name, r in received.items():
        assert r.states[0] is SourceState.CONNECTED and r.states[-1] is SourceState.ENDED, name
        assert 5.5 <= r.stream_s <= 6.5, name  # the whole playlist once: replays were not heard again
