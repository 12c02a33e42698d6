"""The viewer page in real Chromium when a source ends but the session goes on."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, expect

from relay.messages import SourceState
from tests.browser import Relay, chromium_path
from tests.test_viewer_browser import browser, caption, context, open_viewer, relay  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed"),
]

ENDED_TEXT = "The livestream has ended; waiting for the next"


async def test_an_ended_source_is_shown_and_the_next_one_captioned(context: BrowserContext, relay: Relay) -> None:
    page = await open_viewer(context, relay.url + "/")
    relay.hub.source_state(SourceState.ENDED)
    status = page.locator("#status")
    await expect(status).to_contain_text(ENDED_TEXT)
    await expect(status).not_to_have_attribute("data-state", "ended")
    late = await open_viewer(context, relay.url + "/")  # told by its hello
    await expect(late.locator("#status")).to_contain_text(ENDED_TEXT)
    relay.hub.source_state(SourceState.CONNECTED)
    relay.hub.publish(caption(41, en="The next stream has begun."))
    for viewer in (page, late):
        await expect(viewer.locator("#status")).to_have_attribute("data-state", "live")
        await expect(viewer.locator("#transcript-list")).to_contain_text("The next stream has begun.")
