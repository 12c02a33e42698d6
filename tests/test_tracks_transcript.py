"""The real track composer on the interpreted event's timings (event.json), through a real hub into the
durable transcript: `relay export --lang L` is each language's track, labelled, each passage once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relay.export import export
from relay.hub import CaptionHub
from relay.messages import Caption
from relay.store import SqliteBacklog, TranscriptStore
from relay.tracks import TrackComposer
from tests.test_tracks import BOOTHS, EVENT_JSON, LANGS, event_script, expected

pytestmark = pytest.mark.skipif(not EVENT_JSON.is_file(), reason="no interpreted event data")
LABELS = {"floor": "", "interpretation": "(interpretation) ", "mt": "(machine translation) "}


def one_line(text: str) -> str:
    """Text as export lays it out: whitespace collapsed."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def event() -> dict:
    return json.loads(EVENT_JSON.read_text())


@pytest.fixture(scope="module")
def transcript(event: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every channel final and every track caption of the event, as a relay would publish and store them."""
    path = tmp_path_factory.mktemp("event") / "transcript.sqlite3"
    composer = TrackComposer(LANGS, BOOTHS)
    with TranscriptStore(path) as store:
        backlog = SqliteBacklog(store)
        hub = CaptionHub(channels=[("floor", None), *BOOTHS.items()], tracks=(*LANGS, "original"), store=backlog)
        for wall, _, item in sorted(event_script(event).items, key=lambda entry: (entry[0], entry[1])):
            if isinstance(item, Caption):
                hub.publish(item)
            for track in composer.feed(item, wall):
                hub.publish_track(track)
        backlog.close()
    return path


@pytest.mark.parametrize("lang", LANGS)
def test_export_of_each_language_is_its_track_once_per_passage(event: dict, transcript: Path, lang: str) -> None:
    with TranscriptStore(transcript, readonly=True) as store:
        lines = export(store, "txt", lang).splitlines()
        records = json.loads(export(store, "json", lang))
    want = expected(event, lang)
    assert [line.split("] ", 1)[1] for line in lines] == [LABELS[source] + one_line(text) for source, text, _ in want]
    assert [(r["source"], r["text"], tuple(r["covers"])) for r in records] == want
    booth = f"booth-{lang}"
    assert {r["channel"] for r in records if r["source"] == "interpretation"} == {booth}
    assert {r["channel"] for r in records if r["source"] != "interpretation"} == {"floor"}


def test_the_relaying_booth_duplicates_nothing_in_spanish(event: dict, transcript: Path) -> None:
    relayed = {b["text"] for b in event["booths"]["es"] if b["kind"] == "relay"}
    assert relayed
    with TranscriptStore(transcript, readonly=True) as store:
        spanish = export(store, "txt", "es")
        booth_es_finals = [row for row in store.all_finals() if row.track is None and row.caption.channel == "booth-es"]
    assert {row.caption.text for row in booth_es_finals} >= relayed  # the booth's relay finals were captioned...
    assert not [text for text in relayed if f"(interpretation) {one_line(text)}" in spanish]  # ...and never shown twice


def test_export_without_lang_is_the_floor_as_spoken(event: dict, transcript: Path) -> None:
    with TranscriptStore(transcript, readonly=True) as store:
        lines = export(store, "txt").splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [one_line(u["refs"][u["lang"]]) for u in event["utterances"]]
