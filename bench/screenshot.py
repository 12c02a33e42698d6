"""docs/viewer.png from a real run: what a viewer who picked Français sees.

    python -m bench.screenshot [--out docs/viewer.png] [--finals 8]

Starts `relay serve demo/meeting.flac --realtime` (Whisper base, Apertium, a temporary data
directory), opens the viewer page in Debian's headless Chromium through Playwright, picks
Français in the language menu, waits until the transcript holds `--finals` finals machine
translated into French by Apertium (the meeting opens in English), and takes the screenshot.
Nothing in the picture is edited: it is the relay's own Whisper and Apertium output.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

from bench.relay_run import start_relay, stop_relay

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo" / "meeting.flac"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1100, "height": 720}
TRANSLATED_FINALS = '#transcript-list li .mt[title^="Machine translation (apertium"]'  # en↔fr: "apertium+apertium"


async def shoot(url: str, out: Path, finals: int, timeout_s: float) -> str:
    """Pick French on the viewer page, wait for `finals` Apertium finals, save the screenshot."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport=VIEWPORT)
            await page.goto(url + "/")
            await page.select_option("#lang", "fr")
            translated = page.locator(TRANSLATED_FINALS)
            async with asyncio.timeout(timeout_s):  # polled: the page's CSP rightly forbids eval
                while await translated.count() < finals:
                    await asyncio.sleep(0.5)
            await page.screenshot(path=str(out))
            return await page.inner_text("#transcript-list")
        finally:
            await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "viewer.png")
    parser.add_argument("--finals", type=int, default=8, help="French finals from Apertium to wait for")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_relay(Path(tmp) / "data", DEMO)
        try:
            shown = asyncio.run(shoot(url, args.out, args.finals, timeout_s=180.0))
        finally:
            stop_relay(proc)
    print(f"{args.out}: the transcript pane showed\n{shown}")


if __name__ == "__main__":
    main()
