"""The live HLS fixture, and how FFmpeg (via PyAV) reads, follows and loses a live stream."""

from __future__ import annotations

import asyncio
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import av
import pytest

from tests.support.fixtures import LiveHlsFactory
from tests.support.live_hls import LiveHlsServer, Timeline, render_playlist
from tests.support.media import SPEECH_DIR, EncodedAudio

CLIP = SPEECH_DIR / "clips" / "en-jfk.flac"  # 11.0 s


@dataclass(frozen=True, slots=True)
class Playlist:
    """The parts of a media playlist the tests check."""

    target_duration: int
    media_sequence: int
    durations: tuple[float, ...]
    uris: tuple[str, ...]
    ended: bool


def parse_playlist(text: str) -> Playlist:
    """Parse the subset of M3U8 that LiveHlsServer writes."""
    lines = text.splitlines()
    assert lines[:2] == ["#EXTM3U", "#EXT-X-VERSION:3"]
    target = re.search(r"^#EXT-X-TARGETDURATION:(\d+)$", text, re.M)
    sequence = re.search(r"^#EXT-X-MEDIA-SEQUENCE:(\d+)$", text, re.M)
    assert target is not None and sequence is not None
    durations = tuple(float(value) for value in re.findall(r"^#EXTINF:([\d.]+),$", text, re.M))
    uris = tuple(line for line in lines if line and not line.startswith("#"))
    assert len(durations) == len(uris)
    return Playlist(int(target.group(1)), int(sequence.group(1)), durations, uris,
                    "#EXT-X-ENDLIST" in lines)


def fetch_playlist(server: LiveHlsServer) -> Playlist:
    """GET the live playlist synchronously."""
    with urllib.request.urlopen(server.url, timeout=10) as response:
        return parse_playlist(response.read().decode())


def wait_until(deadline: float) -> None:
    """Sleep until the monotonic deadline (the server's clock is wall time, there is no event)."""
    time.sleep(max(0.0, deadline - time.monotonic()))


def audio_seconds(
    container: av.container.InputContainer, limit_s: float
) -> Iterator[av.AudioFrame]:
    """Decoded audio frames, stopping after limit_s of wall time."""
    give_up = time.monotonic() + limit_s
    for frame in container.decode(audio=0):
        yield frame
        if time.monotonic() > give_up:
            return


def test_timeline_airs_a_segment_when_the_clock_passes_its_end() -> None:
    """aired_count counts only segments that are complete; looping continues the numbering."""
    audio = EncodedAudio(48000, b"", (b"x",) * 300, 1024)  # 6.4 s
    timeline = Timeline(audio, segment_s=2.0, loop=True)
    assert timeline.segments_per_pass == 4
    first_end = timeline.segment_span_s(0)[1]
    assert timeline.aired_count(first_end - 0.001) == 0
    assert timeline.aired_count(first_end) == 1
    assert timeline.segment_span_s(4)[0] == pytest.approx(timeline.pass_s)
    assert timeline.aired_count(timeline.pass_s + first_end) == 5


def test_render_playlist_slides_and_ends() -> None:
    """The playlist keeps the last `window` aired segments and ends only for a finished file."""
    audio = EncodedAudio(48000, b"", (b"x",) * 300, 1024)
    timeline = Timeline(audio, segment_s=2.0, loop=False)
    live = parse_playlist(render_playlist(timeline, aired=3, window=2))
    assert (live.media_sequence, live.uris, live.ended) == (1, ("seg1.ts", "seg2.ts"), False)
    done = parse_playlist(render_playlist(timeline, aired=4, window=2))
    assert (done.media_sequence, done.ended) == (2, True)
    assert done.target_duration >= max(round(value) for value in done.durations)


async def test_playlist_slides_with_the_wall_clock(live_hls: LiveHlsFactory) -> None:
    """From an async test: the window moves forward as segments air, with no ENDLIST while live."""
    server = live_hls(segment_s=1.0, window=3, speed=4.0)
    async with aiohttp.ClientSession() as session:
        async with asyncio.timeout(10):
            async with session.get(server.url) as response:
                first = parse_playlist(await response.text())
                assert response.content_type == "application/vnd.apple.mpegurl"
            assert first.media_sequence == 0 and first.uris[0] == "seg0.ts"
            await asyncio.sleep(server.wall_time_of(6.5) - time.monotonic())
            before = server.aired_segments()
            async with session.get(server.url) as response:
                later = parse_playlist(await response.text())
            after = server.aired_segments()
            next_url = server.url.replace("live.m3u8", f"seg{after + 1}.ts")
            async with session.get(next_url) as response:
                assert response.status == 404
    assert before - 3 <= later.media_sequence <= after - 3
    assert len(later.uris) == 3 and not later.ended
    assert later.uris == tuple(f"seg{n}.ts" for n in range(later.media_sequence,
                                                           later.media_sequence + 3))


def test_playlist_ends_when_the_file_ends(live_hls: LiveHlsFactory) -> None:
    """After the last segment airs the playlist carries EXT-X-ENDLIST."""
    server = live_hls(CLIP, segment_s=2.0, window=3, speed=8.0)
    assert server.ends_at is not None
    wait_until(server.ends_at + 0.05)
    playlist = fetch_playlist(server)
    assert playlist.ended
    assert playlist.uris[-1] == f"seg{server.timeline.segments_per_pass - 1}.ts"


def test_pyav_decodes_all_that_aired_with_continuous_timestamps(
    live_hls: LiveHlsFactory,
) -> None:
    """Opened at the start, FFmpeg's HLS demuxer plays every segment as one gapless stream."""
    server = live_hls(CLIP, segment_s=1.0, window=20, speed=4.0)
    with av.open(server.url, timeout=(10.0, 10.0), options={"live_start_index": "0"}) as container:
        frames = list(audio_seconds(container, limit_s=15.0))
    assert frames[0].sample_rate == 48000 and frames[0].time == pytest.approx(0.0, abs=0.03)
    for previous, frame in zip(frames, frames[1:]):
        assert frame.time == pytest.approx(previous.time + previous.samples / 48000, abs=1e-3)
    decoded_s = sum(frame.samples for frame in frames) / 48000
    assert decoded_s == pytest.approx(server.timeline.pass_s, abs=1.0)


def test_pyav_follows_the_growing_playlist(live_hls: LiveHlsFactory) -> None:
    """PyAV keeps refreshing the live playlist and never decodes audio that has not aired."""
    server = live_hls(segment_s=1.0, window=10, speed=2.0)
    with av.open(server.url, timeout=(10.0, 10.0)) as container:
        aired_at_open_s = server.stream_time_at()
        last_end_s = 0.0
        for frame in audio_seconds(container, limit_s=6.0):
            last_end_s = frame.time + frame.samples / frame.sample_rate
            assert last_end_s <= server.stream_time_at() + 0.01
    assert last_end_s > aired_at_open_s + 6.0
    assert server.playlist_requests >= 4


def test_stop_refuses_connections(live_hls: LiveHlsFactory) -> None:
    """After stop() the port is closed: urllib and av.open get 'connection refused' at once."""
    server = live_hls(segment_s=1.0, speed=4.0)
    fetch_playlist(server)
    server.stop()
    with pytest.raises(urllib.error.URLError) as caught:
        fetch_playlist(server)
    assert isinstance(caught.value.reason, ConnectionRefusedError)
    started = time.monotonic()
    with pytest.raises(av.error.ConnectionRefusedError):
        av.open(server.url, timeout=(5.0, 5.0))
    assert time.monotonic() - started < 1.0


def test_start_again_resumes_at_the_live_edge_on_the_same_port(live_hls: LiveHlsFactory) -> None:
    """Segments that aired while the server was down are skipped, as with a real live source."""
    server = live_hls(segment_s=1.0, window=3, speed=4.0)
    port = server.port
    fetch_playlist(server)
    server.stop()
    aired_at_stop = server.aired_segments()
    wait_until(server.wall_time_of(server.stream_time_at() + 8.0))
    server.start()
    after = fetch_playlist(server)
    assert server.port == port
    assert after.media_sequence >= aired_at_stop + 8 - 3
    assert after.media_sequence >= server.aired_segments() - 3 - 1


def test_restart_with_fresh_timestamps_starts_pts_again_from_zero(live_hls: LiveHlsFactory) -> None:
    """Like a restarted encoder: after start(reset_timestamps=True) PTS begin near 0 again and
    the playlist holds only segments aired since, while the audio goes on with the clock."""
    server = live_hls(segment_s=1.0, window=10, speed=4.0)
    wait_until(server.wall_time_of(12.0))
    server.stop()
    wait_until(server.wall_time_of(16.0))
    server.start(reset_timestamps=True)
    first = server.epoch_segment
    assert first >= 15
    with av.open(server.url, timeout=(10.0, 10.0), options={"live_start_index": "0"}) as container:
        frames = list(audio_seconds(container, limit_s=2.0))
    playlist = fetch_playlist(server)
    assert playlist.media_sequence >= first and playlist.uris[0] == f"seg{playlist.media_sequence}.ts"
    assert frames[0].time < 2.0
    restart_s = server.timeline.segment_span_s(first)[0]
    assert frames[-1].time < server.stream_time_at() - restart_s + 1.0


def test_loop_continues_the_media_sequence_and_timestamps(live_hls: LiveHlsFactory) -> None:
    """With loop=True segment numbers and PTS keep increasing across the wrap (no discontinuity)."""
    server = live_hls(CLIP, segment_s=1.0, window=30, speed=8.0, loop=True)
    wait_until(server.wall_time_of(server.timeline.pass_s + 2.5))
    with av.open(server.url, timeout=(10.0, 10.0), options={"live_start_index": "0"}) as container:
        frames = list(audio_seconds(container, limit_s=2.0))
    playlist = fetch_playlist(server)
    assert not playlist.ended and len(playlist.uris) > server.timeline.segments_per_pass
    assert frames[-1].time > server.timeline.pass_s + 1.0
    for previous, frame in zip(frames, frames[1:]):
        assert frame.time == pytest.approx(previous.time + previous.samples / 48000, abs=1e-3)


def test_pyav_demux_ends_quietly_when_the_server_stops(live_hls: LiveHlsFactory) -> None:
    """Pins FFmpeg's behaviour: a failed playlist reload ends demuxing without any exception."""
    server = live_hls(segment_s=1.0, window=10, speed=1.0)
    with av.open(server.url, timeout=(10.0, 10.0)) as container:
        packets = container.demux(audio=0)
        next(packets)
        server.stop()
        stopped = time.monotonic()
        rest = [packet for packet in packets if packet.pts is not None]
    assert time.monotonic() - stopped < 3.0
    assert all(packet.pts * packet.time_base <= server.stream_time_at() for packet in rest)


def test_read_timeout_ends_demux_when_the_server_hangs(live_hls: LiveHlsFactory) -> None:
    """A port that accepts but never answers stalls FFmpeg until PyAV's read timeout ends it."""
    server = live_hls(segment_s=1.0, window=10, speed=1.0)
    with av.open(server.url, timeout=(10.0, 2.0)) as container:
        packets = container.demux(audio=0)
        next(packets)
        server.stop()
        with socket.create_server(("127.0.0.1", server.port)):
            silenced = time.monotonic()
            for _packet in packets:
                pass
            elapsed = time.monotonic() - silenced
    assert 1.0 < elapsed < 4.0


def test_video_only_file_has_no_audio_stream(video_only_file: Path) -> None:
    """The helper writes a decodable video with no audio stream."""
    with av.open(str(video_only_file)) as container:
        assert len(container.streams.audio) == 0
        assert len(container.streams.video) == 1
        assert sum(1 for _frame in container.decode(video=0)) == 20
