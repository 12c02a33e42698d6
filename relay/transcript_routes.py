"""Viewer downloads: `GET /transcript.{txt,srt,vtt}?lang=fr`, the event's transcript as a file.

The viewer page links here instead of composing files in JavaScript, so a download and
`relay export` are the same file (`relay.export` holds the rules). Files come from the
durable transcript, not from what one viewer happened to receive: a viewer who joined late
still gets the whole event. Reads run on one thread this module owns, never on the event
loop; a rendered file is kept per format and language until the next final arrives, so a
crowd downloading at the end of an event costs one render, not one per viewer.

On a private event the route sits behind the viewer key like `/` and `/ws`
(`relay.control` guards every path outside /api/ and /healthz, /metrics).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from .export import ORIGINAL, Format, export
from .store import TranscriptError, TranscriptStore

_LOGGER = logging.getLogger(__name__)

VIEWER_FORMATS: tuple[Format, ...] = ("txt", "srt", "vtt")
MEDIA_TYPES = {"txt": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}
# "orig" is the viewer page's name for the spoken language, "original" the CLI's.
_ORIGINAL_NAMES = ("", "orig", ORIGINAL)
_LANG_RE = re.compile(r"^[a-z]{2,3}$")
_CACHED_FILES = 12  # 3 formats x (en, fr, es, original)


class TranscriptFiles:
    """Renders transcript files from a store on a thread of its own, caching the latest."""

    def __init__(self, store: TranscriptStore) -> None:
        self.store = store
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="relay-export")
        self._latest: dict[tuple[str, str | None], tuple[int, bytes]] = {}  # touched on that thread only

    async def render(self, fmt: Format, lang: str | None) -> bytes:
        """The transcript as `fmt` in `lang` (None: as spoken), UTF-8."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._render, fmt, lang)

    def _render(self, fmt: Format, lang: str | None) -> bytes:
        """Render unless the transcript has not grown since the last render of this file."""
        last_seq = self.store.last_seq()
        cached = self._latest.get((fmt, lang))
        if cached is not None and cached[0] == last_seq:
            return cached[1]
        finals = self.store.finals_since(0, limit=last_seq)  # exactly the finals last_seq counts
        # "replace": a lone surrogate in stored text costs one character, not the download.
        body = export(finals, fmt, lang).encode("utf-8", errors="replace")
        self._latest.pop((fmt, lang), None)
        self._latest[(fmt, lang)] = (last_seq, body)
        if len(self._latest) > _CACHED_FILES:  # any lang=xyz is accepted: keep the cache bounded
            del self._latest[next(iter(self._latest))]
        return body

    @property
    def cached_files(self) -> int:
        """How many rendered files are kept."""
        return len(self._latest)

    def close(self) -> None:
        """Stop the thread (after a render in progress); the store is its owner's to close."""
        self._thread.shutdown(wait=True, cancel_futures=True)


FILES_KEY = web.AppKey("transcript_files", TranscriptFiles)


def add_transcript_routes(app: web.Application, source: TranscriptStore | Path) -> None:
    """Serve /transcript.{txt,srt,vtt} from `source`: an open store, or a transcript path opened read-only."""
    app.router.add_get("/transcript.{fmt:txt|srt|vtt}", _download)
    app.cleanup_ctx.append(functools.partial(_files, source=source))


async def _files(app: web.Application, source: TranscriptStore | Path) -> AsyncIterator[None]:
    """Own the files' thread (and the read-only store, when given a path) for the app's lifetime."""
    owned = None
    if isinstance(source, Path):
        owned = await asyncio.to_thread(TranscriptStore, source, readonly=True)
    app[FILES_KEY] = TranscriptFiles(owned if owned is not None else source)
    try:
        yield
    finally:
        app[FILES_KEY].close()
        if owned is not None:
            owned.close()


def viewer_lang(value: str | None) -> str | None:
    """The `lang` query parameter as export takes it: None for the spoken language."""
    value = (value or "").strip().lower()
    if value in _ORIGINAL_NAMES:
        return None
    if not _LANG_RE.match(value):
        raise ValueError(f"lang must be a language code such as en, fr, es, or orig; got {value[:20]!r}")
    return value


async def _download(request: web.Request) -> web.Response:
    """The transcript as an attachment, in the format of the path and the language asked."""
    fmt: Format = request.match_info["fmt"]  # type: ignore[assignment]
    try:
        lang = viewer_lang(request.query.get("lang"))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    files = request.app[FILES_KEY]
    try:
        body = await files.render(fmt, lang)
    except (TranscriptError, sqlite3.Error) as exc:
        _LOGGER.warning("Transcript download failed: %s", exc)
        raise web.HTTPServiceUnavailable(text="the transcript cannot be read right now; try again") from None
    name = f"captions-{_stamp(files.store.meta.started_at)}-{lang or ORIGINAL}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    return web.Response(body=body, content_type=MEDIA_TYPES[fmt], charset="utf-8", headers=headers)


def _stamp(epoch_s: float) -> str:
    """The event's start, UTC, as YYYYMMDD-HHMM for file names."""
    return time.strftime("%Y%m%d-%H%M", time.gmtime(epoch_s))
