"""The viewer page with language tracks, in real headless Chromium against a real relay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, expect

from relay.hub import CaptionHub
from relay.messages import Caption, SourceState
from relay.tracks.model import TrackCaption
from tests.browser import Relay, browser_context, chromium, chromium_path, running_relay
from tests.test_viewer_browser import XSS, open_viewer

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed"),
]

CHANNELS = [("floor", None), ("booth-en", "en"), ("booth-fr", "fr"), ("booth-es", "es")]


def said(n: int, channel: str, lang: str, text: str, kind: str = "final") -> Caption:
    return Caption(kind=kind, id=f"u{n}", lang=lang, text=text, start=n * 5.0, end=n * 5.0 + 3, wall=n * 5.0 + 4,
                   channel=channel)  # fmt: skip


def track(n: int, lang: str, source: str, channel: str, text: str, floor_lang: str = "en") -> TrackCaption:
    return TrackCaption(lang=lang, source=source, channel=channel, id=f"{lang}:u{n}", text=text, start=n * 5.0,
                        end=n * 5.0 + 3, covers=(f"u{n}",), floor_lang=floor_lang,
                        mt_engine="apertium" if source == "mt" else "")  # fmt: skip


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
    hub = CaptionHub(channels=CHANNELS, tracks=("en", "fr", "es", "original"))
    for name, _ in CHANNELS:
        hub.source_state(SourceState.CONNECTED, channel=name)
    async with running_relay(hub) as running:
        yield running


async def test_french_shows_the_booth_then_labelled_mt(context: BrowserContext, relay: Relay) -> None:
    hub = relay.hub
    page = await open_viewer(context, relay.url + "/")
    await page.select_option("#lang", "fr")
    lines = page.locator("#live-lines .line")
    # The floor speaks English: French viewers see the French booth's partial, not the floor's.
    hub.publish(said(1, "floor", "en", "Good morning, every", "partial"))
    hub.publish(said(1, "booth-fr", "fr", "Bonjour à", "partial"))
    await expect(page.locator("#live-lines .line.partial")).to_have_text("Bonjour à")
    hub.publish(said(1, "floor", "en", "Good morning, everyone."))
    hub.publish(said(1, "booth-fr", "fr", "Bonjour à tous."))
    hub.publish_track(track(1, "en", "floor", "floor", "Good morning, everyone."))
    hub.publish_track(track(1, "fr", "interpretation", "booth-fr", "Bonjour à tous."))
    hub.publish_track(track(1, "es", "mt", "floor", "Buenos días a todos."))
    final = page.locator("#live-lines .line.final")
    await expect(final.locator(".text")).to_have_text(["Bonjour à tous."])
    await expect(page.locator("#live-lines .line.partial")).to_have_count(0)
    label = final.locator(".source")
    await expect(label).to_have_attribute("data-label", "interpretation")
    shown = await label.evaluate("el => getComputedStyle(el, '::before').content")
    assert shown == '"interpretation"'
    await expect(final).to_have_attribute("data-source", "interpretation")
    await expect(final).to_have_attribute("lang", "fr")
    # The French booth stays silent (dropout): machine translation, labelled.
    hub.publish(said(2, "floor", "en", "We now vote."))
    hub.publish_track(track(2, "fr", "mt", "floor", "Nous votons maintenant."))
    second = final.nth(1)
    await expect(second.locator(".text")).to_have_text("Nous votons maintenant.")
    await expect(second.locator(".mt")).to_have_attribute("data-label", "machine translation")
    await expect(second.locator(".mt")).to_have_attribute("title", "Machine translation (apertium)")
    items = page.locator("#transcript-list li")
    await expect(items.locator(".text")).to_have_text(["Bonjour à tous.", "Nous votons maintenant."])
    await expect(items.nth(0).locator(".source")).to_have_attribute("data-label", "interpretation")
    await expect(items.nth(1).locator(".mt")).to_have_attribute("data-label", "machine translation")
    # Switching language shows that language's track: English had the speaker's own words.
    await page.select_option("#lang", "en")
    await expect(items.locator(".text")).to_have_text(["Good morning, everyone."])
    await expect(items.locator(".source")).to_have_attribute("data-label", "speaker")
    await expect(lines.locator(".text")).to_have_text(["Good morning, everyone."])
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    assert page.problems == []  # type: ignore[attr-defined]


async def test_floor_speaking_french_is_not_doubled_by_a_relaying_booth(context: BrowserContext, relay: Relay) -> None:
    hub = relay.hub
    page = await open_viewer(context, relay.url + "/?lang=fr")
    hub.publish(said(3, "floor", "fr", "Mesdames et", "partial"))
    hub.publish(said(3, "booth-fr", "fr", "Mesdames", "partial"))  # the booth relays the floor audio
    partial = page.locator("#live-lines .line.partial")
    await expect(partial).to_have_text("Mesdames et")
    await expect(partial).to_have_attribute("data-key", "floor/u3")
    hub.publish(said(3, "floor", "fr", "Mesdames et messieurs."))
    hub.publish_track(track(3, "fr", "floor", "floor", "Mesdames et messieurs.", floor_lang="fr"))
    hub.publish_track(track(3, "original", "floor", "floor", XSS, floor_lang="fr"))
    await expect(page.locator("#live-lines .line.final").last.locator(".text")).to_have_text("Mesdames et messieurs.")
    await expect(partial).to_have_count(0)
    await page.select_option("#lang", "orig")  # the original track: no labels, markup stays text
    last = page.locator("#transcript-list li").last
    await expect(last.locator(".text")).to_have_text(XSS)
    await expect(last.locator(".source, .mt")).to_have_count(0)
    assert await page.locator("#transcript-list img").count() == 0


async def test_a_booth_down_tells_its_viewers_mt_meanwhile(context: BrowserContext, relay: Relay) -> None:
    page = await open_viewer(context, relay.url + "/?lang=es")
    relay.hub.source_state(SourceState.RECONNECTING, channel="booth-es")
    status = page.locator("#status")
    await expect(status).to_have_text("Live — interpretation unavailable; machine translation meanwhile")
    await page.select_option("#lang", "fr")
    await expect(status).to_have_text("Live")
    relay.hub.source_state(SourceState.CONNECTED, channel="booth-es")


async def test_download_in_french_is_the_labelled_french_track(context: BrowserContext, tmp_path) -> None:
    import srt

    from relay.server import create_app, serve
    from relay.store import SqliteBacklog, TranscriptStore
    from relay.transcript_routes import add_transcript_routes

    with TranscriptStore(tmp_path / "transcript.sqlite3") as store:
        backlog = SqliteBacklog(store)
        hub = CaptionHub(channels=CHANNELS, tracks=("en", "fr", "es", "original"), store=backlog,
                         last_seq=backlog.last_seq, session=backlog.session)  # fmt: skip
        hub.source_state(SourceState.CONNECTED)
        app = create_app(hub)
        add_transcript_routes(app, store)
        async with serve(app, "127.0.0.1", 0, shutdown_timeout_s=2.0) as url:
            page = await open_viewer(context, url + "/?lang=fr")
            hub.publish(said(1, "floor", "en", "Good morning."))
            hub.publish_track(track(1, "fr", "interpretation", "booth-fr", "Bonjour."))
            hub.publish_track(track(2, "fr", "mt", "floor", "Votons."))
            await expect(page.locator("#transcript-list li")).to_have_count(2)
            async with page.expect_download() as info:
                await page.click("a[data-format=srt]")
            download = await info.value
            body = Path(await download.path()).read_text(encoding="utf-8")
        backlog.close()
    assert [cue.content for cue in srt.parse(body)] == ["(interpretation) Bonjour.", "(machine translation) Votons."]


async def test_a_language_without_a_track_shows_the_floor_translated_never_a_booth(context: BrowserContext) -> None:
    hub = CaptionHub(channels=CHANNELS, tracks=("en", "fr", "original"))
    hub.source_state(SourceState.CONNECTED)
    async with running_relay(hub) as relay:
        page = await open_viewer(context, relay.url + "/?lang=es")
        hub.publish(said(1, "booth-es", "es", "Buenos días.", "partial"))
        hub.publish(said(1, "booth-es", "es", "Buenos días."))
        floor = said(2, "floor", "en", "Good morning.")
        hub.publish(Caption(**{**{f: getattr(floor, f) for f in floor.__slots__}, "translations": {"es": "Buen día."},
                               "mt": {"es": "apertium"}}))  # fmt: skip
        hub.publish_track(track(2, "fr", "mt", "floor", "Bonjour."))
        items = page.locator("#transcript-list li")
        await expect(items.locator(".text")).to_have_text(["Buen día."])
        await expect(items.locator(".mt")).to_have_count(1)
        await page.select_option("#lang", "fr")
        await expect(items.locator(".text")).to_have_text(["Bonjour."])
        assert page.problems == []  # type: ignore[attr-defined]


async def test_the_interpreted_event_in_french_reads_as_the_composer_decided(context: BrowserContext) -> None:
    import json

    from relay.tracks import TrackComposer
    from tests.test_tracks import BOOTHS, EVENT_JSON, LANGS, event_script, expected

    if not EVENT_JSON.is_file():
        pytest.skip("no interpreted event data")
    event = json.loads(EVENT_JSON.read_text())
    hub = CaptionHub(channels=CHANNELS, tracks=(*LANGS, "original"))
    hub.source_state(SourceState.CONNECTED)
    composer = TrackComposer(LANGS, BOOTHS)
    for wall, _, item in sorted(event_script(event).items, key=lambda entry: (entry[0], entry[1])):
        if isinstance(item, Caption):
            hub.publish(item)
        for caption in composer.feed(item, wall):
            hub.publish_track(caption)
    names = {"floor": "speaker", "interpretation": "interpretation", "mt": "machine translation"}
    async with running_relay(hub) as relay:
        page = await open_viewer(context, relay.url + "/?lang=fr")
        items = page.locator("#transcript-list li")
        for lang in ("fr", "en"):  # English: the English booth drops out for two passages
            await page.select_option("#lang", lang)
            want = expected(event, lang)
            await expect(items).to_have_count(len(want))
            texts = await items.locator(".text").all_text_contents()
            labels = [await item.locator(".source, .mt").get_attribute("data-label") for item in await items.all()]
            assert [(label, " ".join(text.split())) for label, text in zip(labels, texts)] == [
                (names[source], " ".join(text.split())) for source, text, _ in want
            ]
            assert "interpretation" in labels
    assert labels.count("machine translation") == len(event["dropout"]["utterances"])
