"""One hub for an interpreted event: booth channels and language tracks over a real server, websockets viewers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from relay.hub import CaptionHub
from relay.messages import Caption
from relay.server import ServerSettings, create_app, serve
from relay.store import SqliteBacklog, TranscriptStore
from relay.tracks.model import TrackCaption

TIMEOUT_S = 10.0
CHANNELS = [("floor", None), ("booth-en", "en"), ("booth-fr", "fr"), ("booth-es", "es")]
TRACKS = ("en", "fr", "es", "original")


def final(n: int, channel: str = "floor", lang: str = "en", kind: str = "final") -> Caption:
    return Caption(kind=kind, id=f"u{n}", lang=lang, text=f"{channel} says {n}", start=float(n), end=n + 0.8,
                   wall=100.0 + n, channel=channel)  # fmt: skip


def track(n: int, lang: str, source: str, channel: str = "floor") -> TrackCaption:
    return TrackCaption(lang=lang, source=source, channel=channel, id=f"{lang}:u{n}", text=f"{lang} words {n}",
                        start=float(n), end=n + 0.8, covers=(f"u{n}",), floor_lang="en",
                        mt_engine="apertium" if source == "mt" else "")  # fmt: skip


def event_hub(**options: Any) -> CaptionHub:
    return CaptionHub(channels=CHANNELS, tracks=TRACKS, **options)


@contextlib.asynccontextmanager
async def running(hub: CaptionHub) -> AsyncIterator[str]:
    settings = ServerSettings(close_timeout_s=5.0)
    async with serve(create_app(hub, settings=settings), "127.0.0.1", 0, shutdown_timeout_s=5.0) as url:
        yield url.replace("http://", "ws://") + "/ws"


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
    return message


async def numbered_until(ws: ClientConnection, last_seq: int) -> list[dict[str, Any]]:
    """Messages with a seq of their own (finals and tracks) up to `last_seq`."""
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["seq"] < last_seq:
        msg = await recv_json(ws)
        if msg["type"] in ("final", "track"):
            seen.append(msg)
    return seen


def publish_passage(hub: CaptionHub, n: int) -> None:
    """A floor final in English, the French booth's final, then the three tracks and original."""
    hub.publish(final(n))
    hub.publish(final(n, "booth-fr", "fr"))
    hub.publish_track(track(n, "en", "floor"))
    hub.publish_track(track(n, "fr", "interpretation", "booth-fr"))
    hub.publish_track(track(n, "es", "mt"))
    hub.publish_track(track(n, "original", "floor"))


async def test_hello_lists_channels_and_tracks() -> None:
    hub = event_hub()
    hub.source_state("connected")
    hub.source_state("reconnecting", channel="booth-es")
    async with running(hub) as url, connect(url) as ws:
        hello = await recv_json(ws)
    assert hello["protocol"] == 2
    assert hello["channel"] == "floor"
    assert hello["channels"] == [
        {"name": "floor", "lang": None, "state": "connected"},
        {"name": "booth-en", "lang": "en", "state": "connecting"},
        {"name": "booth-fr", "lang": "fr", "state": "connecting"},
        {"name": "booth-es", "lang": "es", "state": "reconnecting"},
    ]
    assert hello["tracks"] == ["en", "fr", "es", "original"]
    assert hello["source"] == {"state": "connected", "label": "floor"}


async def test_track_messages_are_numbered_with_finals_live_and_replayed() -> None:
    hub = event_hub()
    async with running(hub) as url:
        async with connect(url) as live:
            await recv_json(live)
            hub.publish(final(1, "booth-fr", "fr", kind="partial"))  # a partial: no seq of its own
            publish_passage(hub, 1)
            got = await numbered_until(live, 6)
        assert [m["seq"] for m in got] == [1, 2, 3, 4, 5, 6]
        assert [(m["type"], m.get("channel")) for m in got[:2]] == [("final", "floor"), ("final", "booth-fr")]
        fr = got[3]
        assert fr == {**fr, "type": "track", "lang": "fr", "source": "interpretation", "channel": "booth-fr",
                      "id": "fr:u1", "text": "fr words 1", "covers": ["u1"], "floor_lang": "en", "mt_engine": ""}
        assert got[4]["source"] == "mt" and got[4]["mt_engine"] == "apertium"
        assert isinstance(fr["sent"], float)
        async with connect(url) as later:  # a first visit replays tracks with the finals
            hello = await recv_json(later)
            assert hello["seq"] == 6
            replayed = await numbered_until(later, 6)
        assert [m["text"] for m in replayed] == [m["text"] for m in got]


async def test_resume_with_since_gets_the_missed_tracks_once() -> None:
    hub = event_hub()
    async with running(hub) as url:
        async with connect(url) as ws:
            hello = await recv_json(ws)
            publish_passage(hub, 1)
            first = await numbered_until(ws, 6)
        publish_passage(hub, 2)  # missed while away
        async with connect(f"{url}?since=4&session={hello['session']}") as ws:
            resumed = await recv_json(ws)
            publish_passage(hub, 3)
            rest = await numbered_until(ws, 18)
    assert resumed["resumed"] is True and resumed["since"] == 4
    assert [m["seq"] for m in rest] == list(range(5, 19))
    assert [m["id"] for m in rest if m["type"] == "track" and m["lang"] == "fr"] == ["fr:u2", "fr:u3"]
    assert first[4]["id"] == "es:u1"


async def test_resume_from_the_durable_transcript_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "transcript.sqlite3"
    with TranscriptStore(path) as store:
        backlog = SqliteBacklog(store)
        hub = event_hub(store=backlog, last_seq=backlog.last_seq, session=backlog.session)
        publish_passage(hub, 1)
        publish_passage(hub, 2)
        backlog.close()
    with TranscriptStore(path) as store:  # a restarted relay numbers on; a viewer resumes from the store
        backlog = SqliteBacklog(store)
        hub = event_hub(store=backlog, last_seq=backlog.last_seq, session=backlog.session, backlog=2)
        assert hub.seq == 12
        publish_passage(hub, 3)
        async with running(hub) as url, connect(f"{url}?since=3&session={backlog.session}") as ws:
            assert (await recv_json(ws))["resumed"] is True
            got = await numbered_until(ws, 18)
        backlog.close()
        assert hub.store_reads == 1  # older than the 2-frame ring: read from the database
    assert [m["seq"] for m in got] == list(range(4, 19))
    assert [m["text"] for m in got if m["type"] == "track" and m["lang"] == "es"] == ["es words 1", "es words 2", "es words 3"]


async def test_booth_status_is_told_under_the_channel_name() -> None:
    hub = event_hub(label="Main hall")
    async with running(hub) as url, connect(url) as ws:
        await recv_json(ws)
        hub.source_state("reconnecting", channel="booth-fr")
        hub.source_state("connected")
        booth, floor = await recv_json(ws), await recv_json(ws)
    assert booth == {"type": "status", "channel": "booth-fr", "state": "reconnecting", "label": "booth-fr"}
    assert floor == {"type": "status", "channel": "floor", "state": "connected", "label": "Main hall"}


def test_unknown_channels_and_tracks_are_refused() -> None:
    hub = event_hub()
    with pytest.raises(ValueError, match="booth-de"):
        hub.publish(final(1, "booth-de", "de"))
    with pytest.raises(ValueError, match="'de'"):
        hub.publish_track(track(1, "de", "mt"))
    with pytest.raises(ValueError, match="booth-de"):
        hub.source_state("connected", channel="booth-de")
    with pytest.raises(ValueError, match="unique"):
        CaptionHub(channels=[("floor", None), ("floor", "fr")])
    assert hub.seq == 0


async def test_single_channel_event_with_tracks() -> None:
    """No booths: the floor's finals and MT tracks for the other languages, the floor's own words for its own."""
    hub = CaptionHub(tracks=TRACKS)
    async with running(hub) as url, connect(url) as ws:
        hello = await recv_json(ws)
        hub.publish(final(1))
        hub.publish_track(track(1, "en", "floor"))
        hub.publish_track(track(1, "fr", "mt"))
        got = await numbered_until(ws, 3)
    assert hello["channels"] == [{"name": "floor", "lang": None, "state": "connecting"}]
    assert [(m["type"], m.get("source")) for m in got] == [("final", None), ("track", "floor"), ("track", "mt")]


async def test_watch_lang_fr_prints_the_french_track_with_labels() -> None:
    import io

    from relay.watch import watch

    hub = event_hub()
    out = io.StringIO()
    async with running(hub) as url:
        publish_passage(hub, 1)  # replayed on connect
        watcher = asyncio.create_task(watch(url.removesuffix("/ws"), "fr", out))
        while hub.viewer_count == 0:
            await asyncio.sleep(0.05)
        hub.publish(final(2, lang="fr"))
        hub.publish_track(TrackCaption("fr", "floor", "floor", "fr:u2", "Le plancher parle.", 2.0, 2.8, ("u2",), "fr"))
        hub.publish_track(TrackCaption("fr", "mt", "floor", "fr:u3", "Traduit.", 3.0, 3.8, ("u3",), "en", "apertium"))
        hub.end_session("done")
        assert await asyncio.wait_for(watcher, TIMEOUT_S) == 0
    assert out.getvalue() == "(interpretation) fr words 1\nLe plancher parle.\n(machine translation) Traduit.\n"


async def test_watch_lang_without_a_track_prints_the_floor_translated_not_the_booths() -> None:
    import io

    from relay.watch import watch

    hub = CaptionHub(channels=CHANNELS, tracks=("fr", "original"))
    out = io.StringIO()
    async with running(hub) as url:
        watcher = asyncio.create_task(watch(url.removesuffix("/ws"), "es", out))
        while hub.viewer_count == 0:
            await asyncio.sleep(0.05)
        hub.publish(final(1, "booth-es", "es"))
        hub.publish(Caption(kind="final", id="u2", lang="en", text="Hello.", start=2.0, end=3.0, wall=4.0,
                            translations={"es": "Hola."}, mt={"es": "apertium"}))  # fmt: skip
        hub.end_session("done")
        assert await asyncio.wait_for(watcher, TIMEOUT_S) == 0
    assert out.getvalue() == "Hola.\n"
