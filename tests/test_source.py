"""The audio source alone: stopping under backpressure, and replays told from restarted timelines."""

from __future__ import annotations

import asyncio
import os
import time
from fractions import Fraction

import av

from relay.messages import SAMPLE_RATE_HZ, AudioChunk, SourceEvent, SourceState
from relay.source import AudioSource, SourceSettings, open_container
from relay.streamclock import StreamClock
from tests.support.live_hls import LiveHlsServer
from tests.support.media import MEETING_FLAC, SPEECH_DIR

TS = Fraction(1, 90_000)


def _packet(payload: bytes, pts_s: float, duration_s: float = 0.1, time_base: Fraction = TS) -> av.Packet:
    packet = av.Packet(payload)
    packet.pts = round(pts_s / time_base)
    packet.duration = round(duration_s / time_base)
    packet.time_base = time_base
    return packet


def _hear(clock: StreamClock, payloads: list[bytes], start_s: float, step_s: float = 0.1) -> None:
    for index, payload in enumerate(payloads):
        assert clock.admit(_packet(payload, start_s + index * step_s))
        clock.samples += int(step_s * SAMPLE_RATE_HZ)


async def test_a_stop_while_the_queue_is_full_ends_the_stream() -> None:
    """A file read faster than it is consumed fills the queue; stop() must still end it."""
    settings = SourceSettings(str(MEETING_FLAC))
    source = AudioSource(settings)
    stream = source.stream(open_container(settings))
    first = await asyncio.wait_for(anext(stream), 10)
    assert isinstance(first, SourceEvent) and first.state is SourceState.CONNECTED
    await asyncio.sleep(1.0)  # the reader fills the queue and waits (backpressure)
    source.stop()
    rest = await asyncio.wait_for(_drain(stream), 10)
    assert not any(isinstance(item, AudioChunk) for item in rest), "read-ahead audio after a stop"
    assert not any(isinstance(item, SourceEvent) and item.state is SourceState.ENDED for item in rest)


async def test_a_stop_while_waiting_for_audio_ends_the_stream() -> None:
    """A consumer waiting for the next chunk of a quiet live source wakes up on stop()."""
    with LiveHlsServer(MEETING_FLAC, segment_s=2.0) as server:
        settings = SourceSettings(server.url)
        source = AudioSource(settings)
        stream = source.stream(open_container(settings))
        await asyncio.wait_for(anext(stream), 10)
        asyncio.get_running_loop().call_later(0.5, source.stop)
        await asyncio.wait_for(_drain(stream), 10)


async def _drain(stream) -> list:
    return [item async for item in stream]


def test_after_a_reconnect_packets_heard_before_are_skipped() -> None:
    clock = StreamClock()
    _hear(clock, [b"a", b"b", b"c"], start_s=10.0)
    clock.new_connection()
    assert not clock.admit(_packet(b"b", 10.1))  # replayed by the server
    assert not clock.admit(_packet(b"c", 10.2))
    before = clock.samples
    assert clock.admit(_packet(b"d", 10.3))  # new: continues the timeline, no jump
    assert clock.fresh and clock.samples == before


def test_a_restarted_timeline_is_new_audio_and_the_clock_jumps_by_the_time_away() -> None:
    clock = StreamClock()
    _hear(clock, [bytes([n]) for n in range(50)], start_s=40.0)
    time.sleep(0.3)
    clock.new_connection()
    before = clock.samples
    assert clock.admit(_packet(b"\x07", 0.7))  # same bytes as packet 7 but PTS start over
    assert 0.3 <= (clock.samples - before) / SAMPLE_RATE_HZ < 5.0
    assert clock.admit(_packet(b"\x08", 0.8))


def test_same_timestamp_with_other_bytes_is_not_a_replay() -> None:
    clock = StreamClock()
    _hear(clock, [b"old-1", b"old-2"], start_s=0.0)
    clock.new_connection()
    assert clock.admit(_packet(b"new-1", 0.0))


def test_a_replay_across_an_mpeg_ts_wrap_is_recognised_and_the_gap_measured_over_it() -> None:
    wrap_s = 2**33 / 90_000
    clock = StreamClock()
    _hear(clock, [b"x", b"y"], start_s=wrap_s + 1.0)  # FFmpeg unwrapped these timestamps
    clock.new_connection()
    assert not clock.admit(_packet(b"y", 1.1))  # the same packet as sent: wrapped
    before = clock.samples
    assert clock.admit(_packet(b"z", 3.2))
    assert abs((clock.samples - before) / SAMPLE_RATE_HZ - 2.0) < 0.01  # the timestamp gap


def test_old_packets_are_forgotten() -> None:
    clock = StreamClock()
    _hear(clock, [b"first"], start_s=0.0)
    clock.samples += int(2 * StreamClock._HISTORY_S * SAMPLE_RATE_HZ)
    _hear(clock, [b"later"], start_s=200.0)
    clock.new_connection()
    assert clock.admit(_packet(b"first", 0.0))


async def test_a_second_switch_before_the_first_took_over_closes_the_first_source() -> None:
    """Only the newest requested source stays open; the one it replaced is closed, not leaked."""
    from relay.pipeline import PipelineSettings
    from relay.service import RelayService

    clips = SPEECH_DIR / "clips"
    service = RelayService(PipelineSettings(SourceSettings(str(MEETING_FLAC))))
    try:
        before = len(os.listdir("/proc/self/fd"))
        await service.switch_source(str(clips / "en-jfk.flac"))
        opened_one = len(os.listdir("/proc/self/fd"))
        await service.switch_source(str(clips / "en-ast-conf-usermenu.flac"))
        assert opened_one > before
        assert len(os.listdir("/proc/self/fd")) == opened_one
    finally:
        service.request_stop()
        service.close()
    assert len(os.listdir("/proc/self/fd")) == before
