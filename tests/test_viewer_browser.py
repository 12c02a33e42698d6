"""The viewer page in real headless Chromium against a real relay on port 0."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Dialog, Page, Route, expect

from relay.control import add_control_routes
from relay.export import export
from relay.hub import CaptionHub
from relay.messages import Caption, SourceState
from relay.server import create_app, serve
from relay.store import SqliteBacklog, StoredFinal, TranscriptStore, transcript_path
from relay.transcript_routes import add_transcript_routes
from tests.browser import Relay, browser_context, chromium, chromium_path, running_relay
from tests.test_control import StandInRelay

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed"),
]

XSS = "<img src=x onerror=alert(1)>"
DOCS = Path(__file__).resolve().parent.parent / "docs"


def caption(n: int, kind: str = "final", en: str | None = None, fr: str | None = None) -> Caption:
    english = en if en is not None else f"Sentence number {n}."
    return Caption(
        kind=kind,
        id=f"u{n}",
        lang="en",
        text=english,
        start=60.0 + n * 4,
        end=63.5 + n * 4,
        wall=time.time(),
        translations={"en": english, "fr": fr if fr is not None else f"Phrase numéro {n}.", "es": f"Frase {n}."},
        mt={"fr": "opus-mt-en-fr", "es": "opus-mt-en-es"},
    )


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    async with browser_context(browser, viewport={"width": 1100, "height": 760}) as ctx:
        yield ctx


@pytest_asyncio.fixture(loop_scope="module")
async def relay() -> AsyncIterator[Relay]:
    hub = CaptionHub()
    hub.source_state(SourceState.CONNECTED)
    async with running_relay(hub) as running:
        yield running


async def open_viewer(context: BrowserContext, url: str) -> Page:
    """Open the page, failing on script errors and CSP violations."""
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.problems = problems  # type: ignore[attr-defined]
    await page.goto(url)
    await expect(page.locator("#status")).to_have_attribute("data-state", re.compile("live|source"))
    return page


async def test_page_shows_partials_then_finals_in_place(context: BrowserContext, relay: Relay) -> None:
    page = await open_viewer(context, relay.url + "/?lang=en")
    relay.hub.publish(caption(1, "partial", en="Good morning every"))
    partial = page.locator("#live-lines .line.partial")
    await expect(partial).to_have_text("Good morning every")
    relay.hub.publish(caption(1, en="Good morning everyone."))
    await expect(page.locator("#live-lines .line.final")).to_have_text("Good morning everyone.")
    await expect(partial).to_have_count(0)
    await expect(page.locator("#transcript-list li")).to_have_count(1)
    assert page.problems == []  # type: ignore[attr-defined]


async def test_language_switch_rerenders_labels_mt_and_is_remembered(context: BrowserContext, relay: Relay) -> None:
    page = await open_viewer(context, relay.url + "/")
    await page.select_option("#lang", "en")
    relay.hub.publish(caption(1, en="Welcome.", fr="Bienvenue."))
    line = page.locator("#live-lines .line").last
    await expect(line).to_have_text("Welcome.")
    await page.select_option("#lang", "fr")
    await expect(line.locator(".text")).to_have_text("Bienvenue.")
    label = line.locator(".mt")
    await expect(label).to_have_attribute("data-label", "machine translation")
    shown = await label.evaluate("el => getComputedStyle(el, '::before').content")
    assert shown == '"machine translation"'
    await expect(line).to_have_attribute("lang", "fr")
    await page.select_option("#lang", "orig")
    await expect(line).to_have_text("Welcome.")
    await page.select_option("#lang", "fr")
    await page.reload()
    await expect(page.locator("#lang")).to_have_value("fr")
    await expect(page.locator("#transcript-list li .text")).to_have_text(["Bienvenue."])


async def test_reconnect_after_restart_on_same_port_resumes_without_gap(context: BrowserContext) -> None:
    hub = CaptionHub()
    async with running_relay(hub) as first:
        page = await open_viewer(context, first.url + "/?lang=en")
        for n in range(1, 4):
            hub.publish(caption(n))
        await expect(page.locator("#transcript-list li")).to_have_count(3)
    await expect(page.locator("#status")).to_have_attribute("data-state", re.compile("waiting|connecting"))
    for n in range(4, 6):
        hub.publish(caption(n))  # missed while the server is down
    async with running_relay(hub, port=urlsplit(first.url).port or 0):
        await expect(page.locator("#status")).to_have_attribute("data-state", re.compile("live|source"), timeout=15_000)
        hub.publish(caption(6))
        items = page.locator("#transcript-list li")
        await expect(items).to_have_count(6)
        seqs = [await item.get_attribute("data-seq") for item in await items.all()]
    assert seqs == ["1", "2", "3", "4", "5", "6"]


async def test_overlay_is_transparent_and_shows_the_last_two_lines(context: BrowserContext, relay: Relay) -> None:
    page = await open_viewer(context, relay.url + "/?overlay=1&lang=fr")
    for n in range(1, 5):
        relay.hub.publish(caption(n))
    lines = page.locator("#live-lines .line")
    await expect(lines).to_have_count(2)
    await expect(lines.locator(".text")).to_have_text(["Phrase numéro 3.", "Phrase numéro 4."])
    await expect(page.locator(".toolbar")).to_be_hidden()
    await expect(page.locator(".transcript")).to_be_hidden()
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgba(0, 0, 0, 0)"


async def test_html_in_captions_is_shown_as_text_and_never_runs(context: BrowserContext, relay: Relay) -> None:
    page = await open_viewer(context, relay.url + "/?lang=fr")
    dialogs: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)
    relay.hub.publish(caption(1, "partial", en=XSS, fr=XSS))
    relay.hub.publish(caption(1, en=XSS, fr=f"{XSS} <script>alert(2)</script>"))
    await expect(page.locator("#live-lines .line .text")).to_have_text(f"{XSS} <script>alert(2)</script>")
    await expect(page.locator("#transcript-list li .text")).to_have_text(f"{XSS} <script>alert(2)</script>")
    await page.wait_for_timeout(300)  # give a (wrongly) injected onerror handler time to fire
    assert await page.locator("img, main script").count() == 0
    assert dialogs == []


async def test_the_speakers_name_is_shown_when_the_floor_changes_hands(context: BrowserContext, relay: Relay) -> None:
    page = await open_viewer(context, relay.url + "/?lang=fr")
    rtl = "السيدة ليلى حداد"
    for n, speaker in ((1, "Ana Pérez, Chile"), (2, "Ana Pérez, Chile"), (3, XSS), (4, rtl)):
        relay.hub.publish(dataclasses.replace(caption(n), speaker=speaker))
    items = page.locator("#transcript-list li")
    await expect(items).to_have_count(7)  # three names (Ana once for her two captions) and four captions
    await expect(page.locator("#transcript-list li.speaker")).to_have_text(["Ana Pérez, Chile", XSS, rtl])
    classes = [await items.nth(i).get_attribute("class") or "" for i in range(7)]
    assert ["speaker" in c for c in classes] == [True, False, False, True, False, True, False]
    assert await page.locator("main img").count() == 0
    assert page.problems == []  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def durable_relay(data_dir: Path, viewer_key: str = "") -> AsyncIterator[tuple[Relay, TranscriptStore]]:
    """A relay whose finals go to a real SQLite transcript, with the download routes mounted."""
    with TranscriptStore(transcript_path(data_dir)) as store:
        backlog = SqliteBacklog(store)
        hub = CaptionHub(store=backlog, last_seq=backlog.last_seq, session=backlog.session)
        hub.source_state(SourceState.CONNECTED)
        app = create_app(hub)
        if viewer_key:
            add_control_routes(app, StandInRelay(), "operator-secret", viewer_key)
        add_transcript_routes(app, store)
        try:
            async with serve(app, "127.0.0.1", 0, shutdown_timeout_s=5.0) as url:
                yield Relay(hub=hub, url=url), store
        finally:
            backlog.close()


async def download(page: Page, fmt: str, target_dir: Path) -> tuple[str, str]:
    """Click a download link; return the suggested file name and the file's text."""
    async with page.expect_download() as info:
        await page.click(f"a[data-format={fmt}]")
    download = await info.value
    target = target_dir / download.suggested_filename
    await download.save_as(target)
    return download.suggested_filename, target.read_text(encoding="utf-8")


async def test_downloads_are_the_server_export_in_the_chosen_language(context: BrowserContext, tmp_path: Path) -> None:
    async with durable_relay(tmp_path) as (relay, store):
        page = await open_viewer(context, relay.url + "/?lang=fr")
        relay.hub.publish(caption(1, fr="Bonjour à tous."))
        relay.hub.publish(caption(2, fr="Les <balises> & co."))
        relay.hub.publish(caption(3, en="", fr=""))  # retracts a partial: no cue
        long = "Une phrase assez longue pour tenir sur deux lignes de sous-titres, pas une de plus."
        relay.hub.publish(dataclasses.replace(caption(4, fr=long), start=70.0))  # starts before caption 2 ends
        await expect(page.locator("#transcript-list li")).to_have_count(3)
        files = {}
        for fmt in ("srt", "vtt", "txt"):
            name, files[fmt] = await download(page, fmt, tmp_path)
            assert name.endswith(f"-fr.{fmt}")
            assert files[fmt] == export(store, fmt, "fr")  # type: ignore[arg-type]
        assert "00:01:08.000 --> 00:01:11.500\nLes &lt;balises&gt; &amp; co.\n" in files["vtt"]
        assert "3\n00:01:11,500 --> 00:01:19,500\nUne phrase assez longue pour tenir sur deux\nlignes" in files["srt"]
        assert files["txt"].splitlines()[1] == "[00:01:08] Les <balises> & co."
        await page.select_option("#lang", "es")
        name, text = await download(page, "srt", tmp_path)
        assert name.endswith("-es.srt") and text == export(store, "srt", "es")
        assert page.problems == []  # type: ignore[attr-defined]  # no CSP violation


async def test_downloads_of_a_private_event_carry_the_viewer_key(context: BrowserContext, tmp_path: Path) -> None:
    async with durable_relay(tmp_path, viewer_key="k3y") as (relay, store):
        page = await open_viewer(context, relay.url + "/?key=k3y")
        relay.hub.publish(caption(1, fr="Bonjour à tous."))
        await expect(page.locator("#transcript-list li")).to_have_count(1)
        _, text = await download(page, "vtt", tmp_path)
        assert text == export(store, "vtt", "en")
        assert "k3y" not in page.url


async def test_delay_holds_captions_back(context: BrowserContext, relay: Relay) -> None:
    page = await open_viewer(context, relay.url + "/?lang=en&delay=2")
    await expect(page.locator("#status")).to_contain_text("2 s delay")
    relay.hub.publish(caption(1, en="Later."))
    await page.wait_for_timeout(1000)
    await expect(page.locator("#live-lines .line")).to_have_count(0)
    await expect(page.locator("#live-lines .line")).to_have_text("Later.", timeout=5000)


async def test_source_status_and_session_end_are_shown(context: BrowserContext, relay: Relay) -> None:
    page = await open_viewer(context, relay.url + "/")
    relay.hub.source_state(SourceState.RECONNECTING)
    await expect(page.locator("#status")).to_contain_text("stream reconnecting")
    relay.hub.end_session("thanks for watching")
    await expect(page.locator("#status")).to_have_text("Session ended")


CONTRAST_JS = """
() => {
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => {
    const [r, g, b] = rgb(c).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const bg = getComputedStyle(document.querySelector('.live')).backgroundColor;
  const pageBg = getComputedStyle(document.body).backgroundColor;
  const color = (sel, pseudo) => getComputedStyle(document.querySelector(sel), pseudo).color;
  return {
    final: ratio(color('.line.final .text'), bg),
    partial: ratio(color('.line.partial .text'), bg),
    mt: ratio(color('.line .mt', '::before'), bg),
    status: ratio(color('#status'), pageBg),
    time: ratio(color('#transcript-list time'), pageBg),
  };
}
"""


@pytest.mark.parametrize("theme", ["dark", "light", "contrast"])
async def test_themes_meet_wcag_aa_contrast(context: BrowserContext, relay: Relay, theme: str) -> None:
    page = await open_viewer(context, relay.url + "/?lang=fr")
    await page.locator("details.settings summary").click()
    await page.select_option("#theme", theme)
    relay.hub.publish(caption(1))
    relay.hub.publish(caption(2, "partial"))
    await expect(page.locator("#live-lines .line.partial")).to_have_count(1)
    await page.click("#size-up")
    ratios = await page.evaluate(CONTRAST_JS)
    assert min(ratios.values()) >= 4.5, ratios
    assert page.problems == []  # type: ignore[attr-defined]  # no CSP violation from theme or size changes


async def test_phone_layout_has_no_sideways_scrolling(browser: Browser, relay: Relay) -> None:
    async with browser_context(browser, viewport={"width": 390, "height": 844}, is_mobile=True) as phone:
        page = await open_viewer(phone, relay.url + "/")
        relay.hub.publish(caption(1, en="A fairly long caption that has to wrap over several lines on a phone."))
        await expect(page.locator("#live-lines .line")).to_have_count(1)
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0


# (spoken language, English, French): a bilingual meeting, so some French captions are original.
REALISTIC = [
    (
        "en",
        "Good morning everyone, and welcome to the annual general meeting of the cooperative.",
        "Bonjour à tous et bienvenue à l'assemblée générale annuelle de la coopérative.",
    ),
    (
        "en",
        "Before we start, a few practical notes about today's agenda.",
        "Avant de commencer, quelques remarques pratiques sur l'ordre du jour.",
    ),
    (
        "fr",
        "Thank you. The first item is the approval of last year's minutes.",
        "Merci. Le premier point est l'approbation du procès-verbal de l'an dernier.",
    ),
    (
        "en",
        "Questions can be sent through the chat at any time during the meeting.",
        "Les questions peuvent être envoyées par le chat à tout moment de la réunion.",
    ),
]


def spoken(n: int, lang: str, en: str, fr: str, kind: str = "final") -> Caption:
    """A caption spoken in `lang`, machine translated into the other languages."""
    texts = {"en": en, "fr": fr, "es": f"[es] {en}"}
    return Caption(
        kind=kind,
        id=f"r{n}",
        lang=lang,
        text=texts[lang],
        start=600.0 + n * 5,
        end=604.5 + n * 5,
        wall=time.time(),
        translations=texts,
        mt={other: "opus-mt" for other in texts if other != lang},
    )


async def test_screenshot_with_realistic_captions(browser: Browser, relay: Relay, tmp_path: Path) -> None:
    """Render a realistic page; RELAY_UPDATE_SCREENSHOT=1 saves it as docs/viewer.png."""
    async with browser_context(browser, viewport={"width": 1100, "height": 720}, color_scheme="dark") as ctx:
        page = await open_viewer(ctx, relay.url + "/?lang=fr")
        for n, (lang, en, fr) in enumerate(REALISTIC, start=1):
            relay.hub.publish(spoken(n, lang, en, fr))
        partial = spoken(5, "en", "So let's move on to the vote on the", "Passons donc au vote sur le", "partial")
        relay.hub.publish(partial)
        await expect(page.locator("#live-lines .line.final .mt")).to_have_count(2)
        await expect(page.locator("#live-lines .line.partial")).to_have_count(1)
        shot = tmp_path / "viewer.png"
        await page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("RELAY_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, DOCS / "viewer.png")


async def test_an_empty_final_withdraws_its_partial(context: BrowserContext, relay: Relay) -> None:
    page = await open_viewer(context, relay.url + "/?lang=en")
    relay.hub.publish(caption(7, "partial", en="Thank you"))
    await expect(page.locator("#live-lines .line.partial")).to_have_text("Thank you")
    relay.hub.publish(caption(7, en=""))
    await expect(page.locator("#live-lines .line")).to_have_count(0)
    await expect(page.locator("#transcript-list li")).to_have_count(0)


CHROMIUM_TRACK_JS = """
async (vtt) => {
  const video = document.createElement("video");
  const track = document.createElement("track");
  track.src = "http://relay.test/captions.vtt";
  track.default = true;
  video.append(track);
  document.body.append(video);
  track.track.mode = "hidden";
  await new Promise((resolve, reject) => { track.onload = resolve; track.onerror = reject; });
  return Array.from(track.track.cues, (cue) => ({
    start: cue.startTime, end: cue.endTime, text: cue.getCueAsHTML().textContent, html: cue.getCueAsHTML().childElementCount,
  }));
}
"""


async def test_chromium_reads_every_cue_of_the_webvtt_export_as_plain_text(context: BrowserContext) -> None:
    """Chromium's own WebVTT parser, the one viewers' video players use, reads the export as intended."""
    texts = [
        "<script>alert(1)</script> & <b>bold</b> &amp; &lt;",
        "Slide 3 --> slide 4",
        "Line one\n\nline two\r\nNOTE this\n00:00:01.000 --> 00:00:02.000",
        "Une phrase assez longue pour tenir sur deux lignes de sous-titres, pas une de plus.",
    ]
    finals = [
        StoredFinal(seq=n, caption=dataclasses.replace(caption(n, en=text), start=10.0 + n, end=10.5 + 2 * n), frame_json="{}", published_at=0.0)
        for n, text in enumerate(texts, start=1)
    ]
    vtt = export(finals, "vtt", "en")
    page = await context.new_page()

    async def serve_test_files(route: Route) -> None:
        if route.request.url.endswith(".vtt"):
            await route.fulfill(body=vtt.encode(), content_type="text/vtt; charset=utf-8")
        else:
            await route.fulfill(body="<!doctype html><title>track</title>", content_type="text/html")

    await page.route("http://relay.test/**", serve_test_files)
    await page.goto("http://relay.test/")
    cues = await page.evaluate(CHROMIUM_TRACK_JS, vtt)
    assert [" ".join(cue["text"].split()) for cue in cues] == [" ".join(text.split()) for text in texts]
    assert all(cue["html"] == 0 for cue in cues)  # no element: markup stayed text
    assert all(a["end"] <= b["start"] for a, b in zip(cues, cues[1:]))
