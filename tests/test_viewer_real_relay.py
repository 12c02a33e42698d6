"""The viewer page in headless Chromium on a whole relay (`relay serve`: Whisper, Apertium, hub)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser import browser_context, chromium, chromium_path
from tests.conftest import SPEECH_DIR

pytestmark = pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed")

RELAY = str(Path(sys.executable).with_name("relay"))


@pytest.fixture
def french_relay(tmp_path):
    clip = SPEECH_DIR / "clips" / "fr-ast-conf-getconfno.flac"
    proc = subprocess.Popen(
        [RELAY, "serve", str(clip), "--realtime", "--port", "0", "--data", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "viewers open" in line, line
        yield line.split("viewers open ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(20)


async def test_real_captions_reach_the_page_translated_and_labelled(french_relay):
    async with chromium() as browser, browser_context(browser) as context:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(french_relay + "?lang=en")
        final = page.locator("#live-lines .line.final").first
        await expect(final).to_be_visible(timeout=30_000)
        english = (await final.locator(".text").inner_text()).lower()
        assert "conference" in english or "number" in english
        await expect(final.locator(".mt")).to_have_attribute("data-label", "machine translation")
        await page.select_option("#lang", "orig")
        await expect(final.locator(".text")).to_contain_text("conférence")
        await expect(final.locator(".mt")).to_have_count(0)
        assert errors == []


async def test_the_download_from_a_real_relay_is_its_relay_export(french_relay, tmp_path):
    """`relay serve` mounts the downloads: the page's SRT is what `relay export` writes."""
    async with chromium() as browser, browser_context(browser) as context:
        page = await context.new_page()
        await page.goto(french_relay + "?lang=es")
        # The file ends: the relay waits for a next source ("The livestream has ended; waiting
        # for the next"), its transcript complete; a stopped relay would say "Session ended".
        await expect(page.locator("#status")).to_have_text(re.compile("ended"), timeout=60_000)
        async with page.expect_download() as info:
            await page.click("a[data-format=srt]")
        download = await info.value
        target = tmp_path / "download" / download.suggested_filename
        await download.save_as(target)
    exported = subprocess.run(
        [RELAY, "export", "--data", str(tmp_path), "--format", "srt", "--lang", "es"],
        capture_output=True, timeout=60, check=True,
    ).stdout.decode("utf-8")  # fmt: skip
    assert download.suggested_filename.endswith("-es.srt")
    assert "conferencia" in exported.lower()
    assert target.read_text(encoding="utf-8") == exported
