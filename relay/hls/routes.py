"""`/hls/master.m3u8`, `/hls/LANG.m3u8`, `/hls/LANG/PRESENTATION-SN.vtt`: served by `relay serve` and `relay edge`.

Cache headers a CDN can honour: a segment never changes once listed (`immutable`, a year); a
live playlist changes with every segment (cached a second); an ended one, and the master, for
longer. Anything not there yet is `no-store`, so no cache keeps the 404. Players on other sites
(a page with hls.js, a TV app) fetch these cross-origin: every answer allows any origin and is
not same-origin-only. On a private event the viewer key guards these paths like the page
(`?key=` works, and the playlists hand it on to what they name).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from aiohttp import web

from relay.hls.playlist import MasterError
from relay.hls.window import HlsWindow

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
_LANG = re.compile(r"[a-z]{2,3}|original")
_SEGMENT_CACHE = "public, max-age=31536000, immutable"
_LIVE_CACHE = "public, max-age=1"
_ENDED_CACHE = "public, max-age=86400"
_MASTER_CACHE = "public, max-age=10"
_CROSS_ORIGIN = {"Access-Control-Allow-Origin": "*", "Cross-Origin-Resource-Policy": "cross-origin"}

WindowGetter = Callable[[], HlsWindow | None]
WINDOW_KEY = web.AppKey("hls_window", object)


def add_hls_routes(app: web.Application, window: WindowGetter) -> None:
    """Serve the HLS subtitle renditions of whatever window `window()` returns (None: not yet)."""
    app[WINDOW_KEY] = window
    app.router.add_get("/hls/master.m3u8", _master)
    app.router.add_get("/hls/{lang}.m3u8", _playlist)
    app.router.add_get(r"/hls/{lang}/{presentation:[0-9a-f]{1,32}}-{sn:[0-9]{1,18}}.vtt", _segment)


def _window(request: web.Request) -> HlsWindow:
    window = request.app[WINDOW_KEY]()
    if window is None:
        raise _missing("no captions yet: the relay has not published a segment")
    return window


def _key_query(request: web.Request) -> str:
    """`?key=...` handed on to the URIs of a private event's playlists (the player has no cookie)."""
    key = request.query.get("key")
    return f"?key={quote(key, safe='')}" if key else ""


async def _master(request: web.Request) -> web.Response:
    window = _window(request)
    try:
        text = window.master_playlist(_key_query(request))
    except MasterError as exc:
        raise _missing(str(exc)) from None
    return _text(text, _MASTER_CACHE)


async def _playlist(request: web.Request) -> web.Response:
    lang = request.match_info["lang"]
    if not _LANG.fullmatch(lang):
        raise _missing(f"no subtitle rendition {lang[:20]!r}")
    window = _window(request)
    text = window.playlist(lang, _key_query(request))
    if text is None:
        raise _missing(f"no {lang} captions yet" if lang in window.langs else f"no subtitle rendition {lang!r}")
    return _text(text, _ENDED_CACHE if window.ended else _LIVE_CACHE)


async def _segment(request: web.Request) -> web.Response:
    window = _window(request)
    body = window.body(request.match_info["lang"], request.match_info["presentation"], int(request.match_info["sn"]))
    if body is None:
        raise _missing("no such segment (not yet published, or no longer in the window)")
    headers = {"Cache-Control": _SEGMENT_CACHE, **_CROSS_ORIGIN}
    return web.Response(body=body, content_type="text/vtt", charset="utf-8", headers=headers)


def _text(text: str, cache: str) -> web.Response:
    headers = {"Cache-Control": cache, **_CROSS_ORIGIN}
    return web.Response(text=text, content_type=PLAYLIST_TYPE, headers=headers)


def _missing(reason: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=reason + "\n", headers={"Cache-Control": "no-store", **_CROSS_ORIGIN})
