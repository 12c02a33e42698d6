"""A live HLS master playlist over loopback: the floor and booth channels as EXT-X-MEDIA audio renditions.

Every rendition is a sliding live media playlist (``/{name}/live.m3u8``, segments
``/{name}/seg{n}.ts``) cut from its own file, all on one stream clock (the one of
``LiveHlsServer``, whose docstring explains it). ``/master.m3u8`` lists them as
``TYPE=AUDIO`` renditions of one group; the floor is the ``DEFAULT=YES`` rendition and the
variant stream's own playlist.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.live_hls import LiveHlsServer, Timeline, render_playlist
from tests.support.media import SPEECH_DIR, cut_audio, encode_aac, mux_ts_segment

INTERPRETATION_DIR = SPEECH_DIR / "interpretation"
MASTER_PATH = "/master.m3u8"


@dataclass(frozen=True, slots=True)
class Rendition:
    """One EXT-X-MEDIA audio rendition: its path name, NAME, LANGUAGE (None: no attribute) and file."""

    name: str
    title: str
    language: str | None
    audio_path: Path


def interpretation_renditions(floor_language: str | None = "mul") -> tuple[Rendition, ...]:
    """The floor and the en/fr/es booths of the interpreted event in /work/shared/speech."""
    return (
        Rendition("floor", "Floor", floor_language, INTERPRETATION_DIR / "floor.flac"),
        Rendition("en", "English", "en", INTERPRETATION_DIR / "booth-en.flac"),
        Rendition("fr", "Français", "fr", INTERPRETATION_DIR / "booth-fr.flac"),
        Rendition("es", "Español", "es", INTERPRETATION_DIR / "booth-es.flac"),
    )


def render_master(renditions: tuple[Rendition, ...], floor_in_variant: bool = False) -> str:
    """The master playlist: one audio group, the first rendition the default and the variant.

    `floor_in_variant`: the first rendition has no URI of its own (its audio is the variant's).
    """
    lines = ["#EXTM3U", "#EXT-X-VERSION:3"]
    for index, rendition in enumerate(renditions):
        attributes = ["TYPE=AUDIO", 'GROUP-ID="aud"', f'NAME="{rendition.title}"']
        if rendition.language is not None:
            attributes.append(f'LANGUAGE="{rendition.language}"')
        attributes += [f"DEFAULT={'YES' if index == 0 else 'NO'}", "AUTOSELECT=YES"]
        if index > 0 or not floor_in_variant:
            attributes.append(f'URI="{rendition.name}/live.m3u8"')
        lines.append("#EXT-X-MEDIA:" + ",".join(attributes))
    lines += ['#EXT-X-STREAM-INF:BANDWIDTH=96000,CODECS="mp4a.40.2",AUDIO="aud"',
              f"{renditions[0].name}/live.m3u8"]
    return "\n".join(lines) + "\n"


def trim_audio(audio_path: Path, seconds: float, out_dir: Path) -> Path:
    """The first `seconds` of a file as FLAC in out_dir (encoding a whole 326 s file is slow)."""
    return cut_audio(audio_path, 0.0, seconds, out_dir)


class LiveHlsMasterServer(LiveHlsServer):
    """Serves the master playlist and every rendition's live playlist and segments."""

    def __init__(self, renditions: tuple[Rendition, ...] | None = None, seconds: float | None = 40.0,
                 floor_in_variant: bool = False, **options) -> None:
        """Configure only: renditions (default: the interpreted event), first `seconds` of each."""
        self.renditions = renditions or interpretation_renditions()
        self.floor_in_variant = floor_in_variant
        super().__init__(self.renditions[0].audio_path, **options)
        self.seconds = seconds
        self._timelines: dict[str, Timeline] = {}
        self.rendition_segment_requests: Counter[str] = Counter()
        self._workdir = tempfile.TemporaryDirectory(prefix="live-hls-master-")

    @property
    def url(self) -> str:
        """The master playlist URL."""
        return f"http://127.0.0.1:{self.port}{MASTER_PATH}"

    def rendition_url(self, name: str) -> str:
        """One rendition's media playlist URL."""
        return f"http://127.0.0.1:{self.port}/{name}/live.m3u8"

    def start(self) -> LiveHlsMasterServer:
        """Encode every rendition (once), then start the clock and listen like LiveHlsServer."""
        if not self._timelines:
            for rendition in self.renditions:
                path = rendition.audio_path
                if self.seconds is not None:
                    path = trim_audio(path, self.seconds, Path(self._workdir.name))
                audio = encode_aac(str(path), self.sample_rate_hz)
                self._timelines[rendition.name] = Timeline(audio, self.segment_s, self.loop_audio)
            self._timeline = self._timelines[self.renditions[0].name]
        super().start()
        return self

    def close(self) -> None:
        """Stop serving and remove the trimmed files; safe to call twice."""
        super().close()
        self._workdir.cleanup()

    def _add_routes(self, app: web.Application) -> None:
        """The master, each rendition's media playlist and its segments."""
        app.router.add_get(MASTER_PATH, self._handle_master)
        app.router.add_get(r"/{name}/live.m3u8", self._handle_media_playlist)
        app.router.add_get(r"/{name}/seg{n:\d+}.ts", self._handle_rendition_segment)

    def _rendition_timeline(self, request: web.Request) -> Timeline:
        timeline = self._timelines.get(request.match_info["name"])
        if timeline is None:
            raise web.HTTPNotFound()
        return timeline

    async def _handle_master(self, request: web.Request) -> web.Response:
        self.playlist_requests += 1
        text = render_master(self.renditions, self.floor_in_variant)
        return web.Response(text=text, content_type="application/vnd.apple.mpegurl")

    async def _handle_media_playlist(self, request: web.Request) -> web.Response:
        """A rendition's sliding window; before the first segment airs, wait for it."""
        self.playlist_requests += 1
        timeline = self._rendition_timeline(request)
        if (delay := self.wall_time_of(timeline.segment_span_s(0)[1]) - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        aired = timeline.aired_count(self.stream_time_at())
        return web.Response(text=render_playlist(timeline, aired, self.window),
                            content_type="application/vnd.apple.mpegurl", headers={"Cache-Control": "no-cache"})

    async def _handle_rendition_segment(self, request: web.Request) -> web.Response:
        self.segment_requests += 1
        timeline = self._rendition_timeline(request)
        self.rendition_segment_requests[request.match_info["name"]] += 1
        n = int(request.match_info["n"])
        if n >= timeline.aired_count(self.stream_time_at()):
            raise web.HTTPNotFound()
        first, stop, offset = timeline.packet_range(n)
        body = await asyncio.to_thread(mux_ts_segment, timeline.audio, first, stop, offset)
        return web.Response(body=body, content_type="video/mp2t")



@pytest.fixture
def live_hls_master() -> Iterator[Callable[..., LiveHlsMasterServer]]:
    """Factory for started master-playlist servers (default: the interpreted event, first 40 s)."""
    servers: list[LiveHlsMasterServer] = []

    def factory(renditions: tuple[Rendition, ...] | None = None, **options) -> LiveHlsMasterServer:
        server = LiveHlsMasterServer(renditions, **options)
        servers.append(server)
        return server.start()

    yield factory
    for server in servers:
        server.close()
