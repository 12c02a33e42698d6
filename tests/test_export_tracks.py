"""Track captions in the durable transcript, and `relay export --lang L`: exactly what a viewer of L read."""

from __future__ import annotations

import datetime
import io
import json
import sqlite3
from pathlib import Path

import pytest
import srt
import webvtt

from relay.export import export
from relay.hub import CaptionHub
from relay.messages import Caption
from relay.store import SqliteBacklog, TranscriptError, TranscriptStore
from relay.tracks.model import TrackCaption

CHANNELS = [("floor", None), ("booth-en", "en"), ("booth-fr", "fr"), ("booth-es", "es")]
TRACKS = ("en", "fr", "es", "original")
FLOOR = [("en", "Good morning, everyone."), ("es", "Gracias, señora presidenta."), ("en", "Let us vote.")]
# What each track holds per passage: (source, channel, text).
PLAN = {
    "fr": [("interpretation", "booth-fr", "Bonjour à tous."), ("interpretation", "booth-fr", "Merci, madame la présidente."),
           ("mt", "floor", "Laissez-nous voter.")],
    "es": [("interpretation", "booth-es", "Buenos días a todos."), ("floor", "floor", "Gracias, señora presidenta."),
           ("interpretation", "booth-es", "Votemos.")],
    "en": [("floor", "floor", "Good morning, everyone."), ("interpretation", "booth-en", "Thank you, Madam Chair."),
           ("floor", "floor", "Let us vote.")],
}  # fmt: skip


def floor_final(n: int) -> Caption:
    lang, text = FLOOR[n]
    return Caption(kind="final", id=f"u{n}", lang=lang, text=text, start=n * 5.0, end=n * 5.0 + 3, wall=n * 5.0 + 4,
                   translations={"fr": f"fr {n}"}, mt={"fr": "apertium"})  # fmt: skip


def record_event(store: TranscriptStore) -> None:
    """Publish three passages through a hub whose backlog is the store: floor, booths, tracks."""
    backlog = SqliteBacklog(store)
    hub = CaptionHub(channels=CHANNELS, tracks=TRACKS, store=backlog, last_seq=backlog.last_seq, session=backlog.session)
    for n in range(3):
        hub.publish(floor_final(n))
        booth = PLAN["fr"][n]
        if booth[0] == "interpretation":
            hub.publish(Caption(kind="final", id=f"b{n}", lang="fr", text=booth[2], start=n * 5 + 2.0,
                                end=n * 5 + 5.5, wall=n * 5 + 6.0, channel="booth-fr"))  # fmt: skip
        for lang, rows in PLAN.items():
            source, channel, text = rows[n]
            start = n * 5.0 + (2.0 if source == "interpretation" else 0.0)
            hub.publish_track(TrackCaption(lang=lang, source=source, channel=channel, id=f"{lang}:u{n}", text=text,
                                           start=start, end=start + 3.5, covers=(f"u{n}",), floor_lang=FLOOR[n][0],
                                           mt_engine="apertium" if source == "mt" else ""))  # fmt: skip
        hub.publish_track(TrackCaption(lang="original", source="floor", channel="floor", id=f"original:u{n}",
                                       text=FLOOR[n][1], start=n * 5.0, end=n * 5.0 + 3, covers=(f"u{n}",),
                                       floor_lang=FLOOR[n][0]))  # fmt: skip
    backlog.close()


@pytest.fixture
def transcript(tmp_path: Path) -> Path:
    path = tmp_path / "transcript.sqlite3"
    with TranscriptStore(path) as store:
        record_event(store)
    return path


def test_track_rows_round_trip_with_their_seq(transcript: Path) -> None:
    with TranscriptStore(transcript, readonly=True) as store:
        rows = store.all_finals()
        assert store.last_seq() == len(rows) == 3 * 1 + 2 + 3 * 4  # floor, 2 French booth finals, 4 tracks each
        assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
        french = store.track("fr")
        assert [(row.track.source, row.track.channel, row.track.text) for row in french if row.track] == PLAN["fr"]
        assert french[2].track is not None and french[2].track.mt_engine == "apertium"
        assert json.loads(french[0].frame_json)["type"] == "track"  # the very frame viewers got
        assert [frame.seq for frame in store.frames_since(10)] == list(range(11, len(rows) + 1))


def test_export_lang_is_the_track_with_labels(transcript: Path) -> None:
    with TranscriptStore(transcript, readonly=True) as store:
        txt = export(store, "txt", "fr")
        cues = list(srt.parse(export(store, "srt", "es")))
        vtt = webvtt.from_buffer(io.StringIO(export(store, "vtt", "en")))
        records = json.loads(export(store, "json", "fr"))
    assert txt.splitlines() == [
        "[00:00:02] (interpretation) Bonjour à tous.",
        "[00:00:07] (interpretation) Merci, madame la présidente.",
        "[00:00:10] (machine translation) Laissez-nous voter.",
    ]
    assert [cue.content.replace("\n", " ") for cue in cues] == [
        "(interpretation) Buenos días a todos.", "Gracias, señora presidenta.", "(interpretation) Votemos."
    ]
    assert cues[1].start == datetime.timedelta(seconds=5.5)  # starts as the interpretation before it ends
    assert [" ".join(caption.lines) for caption in vtt] == [
        "Good morning, everyone.", "(interpretation) Thank you, Madam Chair.", "Let us vote."
    ]
    assert [(r["source"], r["source_name"], r["channel"], r["text"]) for r in records] == [
        ("interpretation", "interpretation", "booth-fr", "Bonjour à tous."),
        ("interpretation", "interpretation", "booth-fr", "Merci, madame la présidente."),
        ("mt", "machine translation", "floor", "Laissez-nous voter."),
    ]
    assert records[2]["mt_engine"] == "apertium" and records[2]["covers"] == ["u2"]


def test_export_without_lang_is_the_floor_as_spoken(transcript: Path) -> None:
    with TranscriptStore(transcript, readonly=True) as store:
        for lang in (None, "original"):
            assert [line.split("] ", 1)[1] for line in export(store, "txt", lang).splitlines()] == [t for _, t in FLOOR]
        records = json.loads(export(store, "json"))
        unknown = export(store, "txt", "de")  # no such track: the floor's finals, as before tracks
    assert [(r["id"], r["lang"], r["translations"]["fr"]) for r in records] == [("u0", "en", "fr 0"), ("u1", "es", "fr 1"), ("u2", "en", "fr 2")]
    assert len(unknown.splitlines()) == 3


def make_version_1(path: Path) -> None:
    """Turn a transcript into what a relay of schema 1 wrote: no tracks table, no HLS tables."""
    with sqlite3.connect(path) as conn:
        for table in ("tracks", "hls_presentations", "hls_segments"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.close()


def test_version_1_transcript_exports_as_before_and_is_migrated_by_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with TranscriptStore(path) as store:
        for n in range(3):
            store.append(n + 1, floor_final(n), json.dumps({"seq": n + 1}))
    make_version_1(path)
    with TranscriptStore(path, readonly=True) as old:
        assert old.meta.schema_version == 1
        assert old.track("fr") == []
        assert export(old, "txt", "fr").splitlines() == ["[00:00:00] fr 0", "[00:00:05] fr 1", "[00:00:10] fr 2"]
    with TranscriptStore(path) as migrated:  # a relay resuming the event upgrades the file in place
        assert migrated.meta.schema_version == 3 and migrated.last_seq() == 3
        migrated.append(4, TrackCaption("fr", "mt", "floor", "fr:u3", "Encore.", 20.0, 21.0, ("u3",), "en", "apertium"), "{}")
        assert [row.seq for row in migrated.all_finals()] == [1, 2, 3, 4]
    with TranscriptStore(path, readonly=True) as reread:
        assert export(reread, "txt", "fr").splitlines() == ["[00:00:20] (machine translation) Encore."]


def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    TranscriptStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    conn.close()
    for readonly in (False, True):
        with pytest.raises(TranscriptError, match="schema 4"):
            TranscriptStore(path, readonly=readonly)


def test_a_different_track_caption_under_a_stored_seq_is_refused(transcript: Path) -> None:
    with TranscriptStore(transcript) as store:
        row = store.track("fr")[0]
        assert row.track is not None
        store.append(row.seq, row.track, row.frame_json)  # the same again: a no-op
        with pytest.raises(TranscriptError, match="different content"):
            store.append(row.seq, row.track, row.frame_json.replace("Bonjour", "Salut"))


async def test_track_frames_wait_for_a_full_database_and_are_written_in_order(tmp_path: Path) -> None:
    from tests.test_store import RecordingViewer
    from tests.test_store_failure import limit_pages, wait_until

    with TranscriptStore(tmp_path / "t.sqlite3") as store:
        backlog = SqliteBacklog(store, recent=2, retry_s=60.0)
        hub = CaptionHub(channels=CHANNELS, tracks=TRACKS, store=backlog, backlog=2)
        limit_pages(store, None)
        n = 0
        while backlog.store_ok:  # fill the database with track captions until one is refused
            assert n < 500, "the database never filled up"
            hub.publish_track(TrackCaption("fr", "mt", "floor", f"fr:u{n}", f"Phrase {n} " + "x" * 200, n, n + 1.0,
                                           (f"u{n}",), "en", "apertium"))  # fmt: skip
            n += 1
        hub.publish(floor_final(0))
        viewer = RecordingViewer()
        await hub.attach(viewer, since=0, session=hub.session)  # replayed from the store and the unwritten tail
        assert [frame.seq for frame in viewer.frames if frame.final] == list(range(1, n + 2))
        assert backlog.store_pending >= 2 and store.last_seq() == n + 1 - backlog.store_pending
        limit_pages(store, 1_000_000)
        hub.publish_track(TrackCaption("fr", "mt", "floor", "fr:last", "Fin.", 900.0, 901.0, (), "en", "apertium"))
        wait_until(lambda: backlog.store_ok)
        rows = store.all_finals()
        assert [row.seq for row in rows] == list(range(1, n + 3))
        assert [row.track is None for row in rows] == [False] * n + [True, False]
        assert [row.frame_json.encode() for row in rows] == [frame.text for frame in viewer.frames if frame.final]
        backlog.close()


async def test_viewer_download_route_serves_the_track(transcript: Path) -> None:
    import aiohttp

    from relay.server import create_app, serve
    from relay.transcript_routes import add_transcript_routes

    app = create_app(CaptionHub())
    add_transcript_routes(app, transcript)
    async with serve(app, "127.0.0.1", 0, shutdown_timeout_s=2.0) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/transcript.srt?lang=fr") as response:
            assert response.status == 200
            french = await response.text()
        async with session.get(f"{url}/transcript.txt?lang=orig") as response:
            original = await response.text()
    with TranscriptStore(transcript, readonly=True) as store:
        assert french == export(store, "srt", "fr")
    assert [cue.content for cue in srt.parse(french)][2] == "(machine translation) Laissez-nous voter."
    assert [line.split("] ", 1)[1] for line in original.splitlines()] == [text for _, text in FLOOR]
