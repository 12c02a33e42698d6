"""The HLS routes on a real server over loopback: cache headers, cross-origin headers, 404s and the key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import m3u8
import pytest
from aiohttp import web

from relay.hls.packager import ClosedSegment, SegmentSpan
from relay.hls.routes import add_hls_routes
from relay.hls.window import HlsWindow, MasterSource
from relay.hub import CaptionHub
from relay.server import create_app, serve

PRESENTATION = "a1b2c3"
MASTER = MasterSource(
    "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\nvideo/360p.m3u8\n",
    "https://origin.example.com/live/master.m3u8",
)
SEGMENT_CACHE = "public, max-age=31536000, immutable"


@dataclass
class Served:
    url: str
    session: aiohttp.ClientSession
    holder: dict[str, HlsWindow | None]

    @property
    def window(self) -> HlsWindow:
        window = self.holder["window"]
        assert window is not None
        return window

    async def get(self, path: str) -> tuple[int, bytes, Mapping[str, str]]:
        async with self.session.get(self.url + path, allow_redirects=False) as response:
            return response.status, await response.read(), response.headers


def published_window() -> HlsWindow:
    window = HlsWindow(("en", "fr", "original"), PRESENTATION)
    for sn in (10, 11):
        bodies = {lang: f"WEBVTT\n\n{sn}\n00:00:01.000 --> 00:00:02.000\n{lang} é\n".encode() for lang in window.langs}
        window.add(ClosedSegment(SegmentSpan(sn, sn * 6.0, 6.0), bodies))
    window.master = MASTER
    return window


async def running(app: web.Application, window: HlsWindow | None) -> AsyncIterator[Served]:
    holder: dict[str, HlsWindow | None] = {"window": window}
    add_hls_routes(app, lambda: holder["window"])
    async with serve(app, shutdown_timeout_s=2.0) as url, aiohttp.ClientSession() as session:
        yield Served(url, session, holder)


def relay_app() -> web.Application:
    """Mounted as `relay serve` mounts it, behind the caption server's security headers."""
    return create_app(CaptionHub())


@pytest.fixture
async def bare() -> AsyncIterator[Served]:
    async for served in running(web.Application(), published_window()):
        yield served


@pytest.fixture
async def relay() -> AsyncIterator[Served]:
    async for served in running(relay_app(), published_window()):
        yield served


@pytest.fixture(params=["bare", "relay"])
async def any_app(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    """The routes alone, and in the relay's server."""
    app = relay_app() if request.param == "relay" else web.Application()
    async for served in running(app, published_window()):
        yield served


def assert_cross_origin(headers: Mapping[str, str]) -> None:
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Cross-Origin-Resource-Policy"] == "cross-origin"


async def test_a_segment_is_immutable_and_byte_identical(any_app: Served) -> None:
    status, body, headers = await any_app.get(f"/hls/fr/{PRESENTATION}-11.vtt")
    assert status == 200 and body == any_app.window.body("fr", PRESENTATION, 11)
    assert headers["Cache-Control"] == SEGMENT_CACHE
    assert headers["Content-Type"] == "text/vtt; charset=utf-8"
    assert_cross_origin(headers)


async def test_a_live_playlist_is_cached_a_second(any_app: Served) -> None:
    status, body, headers = await any_app.get("/hls/fr.m3u8")
    assert status == 200 and body.decode() == any_app.window.playlist("fr")
    assert headers["Cache-Control"] == "public, max-age=1"
    assert headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
    assert_cross_origin(headers)


async def test_an_ended_playlist_is_cached_a_day(any_app: Served) -> None:
    any_app.window.ended = True
    status, body, headers = await any_app.get("/hls/original.m3u8")
    assert status == 200 and m3u8.M3U8(body.decode(), strict=True).is_endlist
    assert headers["Cache-Control"] == "public, max-age=86400"


async def test_the_master_is_cached_ten_seconds(any_app: Served) -> None:
    status, body, headers = await any_app.get("/hls/master.m3u8")
    assert status == 200 and m3u8.M3U8(body.decode(), strict=True).is_variant
    assert headers["Cache-Control"] == "public, max-age=10"
    assert_cross_origin(headers)


@pytest.mark.parametrize("path", ["/hls/master.m3u8", "/hls/fr.m3u8", f"/hls/fr/{PRESENTATION}-10.vtt"])
async def test_before_the_first_segment_everything_is_an_uncached_404(any_app: Served, path: str) -> None:
    any_app.holder["window"] = None
    status, body, headers = await any_app.get(path)
    assert status == 404 and b"no captions yet" in body
    assert headers["Cache-Control"] == "no-store"
    assert_cross_origin(headers)


@pytest.mark.parametrize("path", [
    "/hls/de.m3u8",  # a language not served
    f"/hls/de/{PRESENTATION}-10.vtt",
    f"/hls/fr/{PRESENTATION}-12.vtt",  # not published yet
    f"/hls/fr/{PRESENTATION}-9.vtt",  # never in the window
    "/hls/fr/ffffff-10.vtt",  # another presentation
])
async def test_what_is_not_published_is_an_uncached_404(any_app: Served, path: str) -> None:
    status, _, headers = await any_app.get(path)
    assert status == 404
    assert headers["Cache-Control"] == "no-store"
    assert_cross_origin(headers)


async def test_a_language_served_but_without_segments_yet_says_so(bare: Served) -> None:
    bare.holder["window"] = HlsWindow(("fr",), PRESENTATION)
    status, body, _ = await bare.get("/hls/fr.m3u8")
    assert (status, body) == (404, b"no fr captions yet\n")


@pytest.mark.parametrize("lang", ["EN", "english", "e", "%2E%2E%2Fetc", "%00", "%C3%A9", "x" * 300, "fr%0Aen", "fr%0A"])
async def test_a_malformed_language_is_a_404(any_app: Served, lang: str) -> None:
    status, body, headers = await any_app.get(f"/hls/{lang}.m3u8")
    assert status == 404 and b"no subtitle rendition" in body
    assert headers["Cache-Control"] == "no-store"


async def test_a_malformed_segment_path_is_a_404(any_app: Served) -> None:
    for path in (f"/hls/EN/{PRESENTATION}-10.vtt", "/hls/fr/XYZ-10.vtt", f"/hls/fr/{PRESENTATION}-1e3.vtt",
                 f"/hls/fr/{PRESENTATION}-{'9' * 19}.vtt"):
        status, _, _ = await any_app.get(path)
        assert status == 404, path


async def test_the_master_without_a_source_master_says_why(any_app: Served) -> None:
    any_app.window.master = None
    any_app.window.master_error = "the source address holds credentials; give --hls-master"
    status, body, headers = await any_app.get("/hls/master.m3u8")
    assert (status, body) == (404, b"the source address holds credentials; give --hls-master\n")
    assert headers["Cache-Control"] == "no-store"
    assert_cross_origin(headers)


async def test_the_key_is_handed_on_to_the_renditions_in_the_master(bare: Served) -> None:
    status, body, _ = await bare.get("/hls/master.m3u8?key=a%20b%26c%2F%3D")
    playlist = m3u8.M3U8(body.decode(), strict=True)
    assert status == 200
    assert [m.uri for m in playlist.media] == [f"{lang}.m3u8?key=a%20b%26c%2F%3D" for lang in ("en", "fr", "original")]
    assert playlist.playlists[0].uri == "https://origin.example.com/live/video/360p.m3u8"  # the origin's, untouched


async def test_the_key_is_handed_on_to_the_segments_in_a_playlist(bare: Served) -> None:
    status, body, _ = await bare.get("/hls/fr.m3u8?key=s%C3%A9cret%22")
    assert status == 200
    uris = [s.uri for s in m3u8.M3U8(body.decode(), strict=True).segments]
    assert uris == [f"fr/{PRESENTATION}-{sn}.vtt?key=s%C3%A9cret%22" for sn in (10, 11)]


async def test_the_uris_a_playlist_names_are_served(bare: Served) -> None:
    _, body, _ = await bare.get("/hls/en.m3u8?key=k")
    for segment in m3u8.M3U8(body.decode(), strict=True).segments:
        status, vtt, _ = await bare.get("/hls/" + segment.uri)
        assert status == 200 and vtt.startswith(b"WEBVTT")


async def test_without_a_key_the_uris_carry_no_query(bare: Served) -> None:
    _, body, _ = await bare.get("/hls/en.m3u8?key=")
    assert "?" not in body.decode()


async def test_the_relays_other_security_headers_stay(relay: Served) -> None:
    _, _, headers = await relay.get(f"/hls/en/{PRESENTATION}-10.vtt")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in headers
