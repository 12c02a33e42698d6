"""Playwright helper: Debian's headless Chromium, and a running relay to point it at."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from playwright.async_api import Browser, BrowserContext, async_playwright

from relay.hub import CaptionHub
from relay.server import ServerSettings, create_app, serve

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium_path() -> str | None:
    """The system Chromium (never a downloaded one): $RELAY_CHROMIUM or /usr/bin/chromium."""
    candidate = os.environ.get("RELAY_CHROMIUM", "/usr/bin/chromium")
    return candidate if Path(candidate).exists() else shutil.which("chromium")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Launch headless Chromium for the duration of the block."""
    path = chromium_path()
    if path is None:
        raise RuntimeError("no Chromium found: install Debian's chromium package")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def browser_context(browser: Browser, **options: object) -> AsyncIterator[BrowserContext]:
    """A fresh context (own localStorage) that accepts downloads."""
    context = await browser.new_context(accept_downloads=True, **options)  # type: ignore[arg-type]
    try:
        yield context
    finally:
        await context.close()


@dataclass(frozen=True, slots=True)
class Relay:
    """A relay under test: its hub and base URL."""

    hub: CaptionHub
    url: str


@contextlib.asynccontextmanager
async def running_relay(hub: CaptionHub, port: int = 0, settings: ServerSettings | None = None) -> AsyncIterator[Relay]:
    """Serve `hub` on 127.0.0.1:`port` (0: any free port)."""
    async with serve(create_app(hub, settings=settings), "127.0.0.1", port, shutdown_timeout_s=5.0) as url:
        yield Relay(hub=hub, url=url)
