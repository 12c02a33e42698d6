"""Pytest fixtures: a live HLS server factory and a video-only media file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from tests.support.live_hls import LiveHlsServer
from tests.support.media import MEETING_FLAC, write_video_only


class LiveHlsFactory(Protocol):
    """Starts a LiveHlsServer; the fixture closes it at teardown."""

    def __call__(self, audio_path: str | Path = MEETING_FLAC, *, segment_s: float = 2.0,
                 window: int = 6, speed: float = 1.0, loop: bool = False, port: int = 0,
                 sample_rate_hz: int = 48000) -> LiveHlsServer:
        """Build and start a server with these options."""
        ...


@pytest.fixture
def live_hls() -> Iterator[LiveHlsFactory]:
    """Factory for started live HLS servers (default audio: the 176.6 s meeting recording)."""
    servers: list[LiveHlsServer] = []

    def factory(audio_path: str | Path = MEETING_FLAC, *, segment_s: float = 2.0,
                window: int = 6, speed: float = 1.0, loop: bool = False, port: int = 0,
                sample_rate_hz: int = 48000) -> LiveHlsServer:
        server = LiveHlsServer(audio_path, segment_s=segment_s, window=window, speed=speed,
                               loop=loop, port=port, sample_rate_hz=sample_rate_hz)
        servers.append(server)
        return server.start()

    yield factory
    for server in servers:
        server.close()


@pytest.fixture
def video_only_file(tmp_path: Path) -> Path:
    """A 2 s MPEG-4 video in .mp4 with no audio stream."""
    return write_video_only(tmp_path / "video_only.mp4")
