"""hls.js (from npm, served locally) in Debian's headless Chromium, on a page of another origin.

`play()` opens `tests/js/pages/player.html` with a master playlist's address, lets the page pick a
subtitle language the way a viewer does in the player's menu, and returns what the page recorded:
the tracks offered, every cue of the chosen track (media times), when each was first on screen,
and where each video fragment sits on the media timeline (`stream_time` turns media times back
into the stream's own clock through them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.browser import browser_context, chromium

JS_DIR = Path(__file__).resolve().parents[1] / "js"
HLS_JS = JS_DIR / "node_modules" / "hls.js" / "dist" / "hls.min.js"


@contextlib.asynccontextmanager
async def player_site() -> AsyncIterator[str]:
    """The event's own site on another origin: the player page and hls.js (no CDN)."""
    async def hls_js(request: web.Request) -> web.FileResponse:
        return web.FileResponse(HLS_JS)

    app = web.Application()
    app.router.add_get("/hls.min.js", hls_js)
    app.router.add_static("/", JS_DIR / "pages")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def play(master_url: str, lang: str, behind_s: float, until_s: float) -> dict[str, Any]:
    """Play `master_url` `behind_s` behind live with `lang` subtitles until the video ends (or `until_s`)."""
    async with player_site() as site, chromium() as browser, browser_context(browser) as context:
        page = await context.new_page()
        await page.goto(f"{site}/player.html?src={master_url}&lang={lang}&behind={behind_s}")
        deadline = time.monotonic() + until_s
        record: dict[str, Any] = {}
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            record = await page.evaluate("window.record")
            if record["ended"] or record["errors"]:
                break
        return record


def stream_time(record: dict[str, Any], segment_start_s, media_s: float) -> float | None:
    """A media time back on the stream's clock through the video fragment it falls in (None outside
    what the player buffered); `segment_start_s(sn)` is where fragment `sn` starts on that clock."""
    for sn, (start, end) in record["fragments"].items():
        if start - 1e-3 <= media_s < end + 1e-3:
            return segment_start_s(int(sn)) + (media_s - start)
    return None
