"""Speaker names: set by the operator on the stream's timeline, carried by finals, tracks and every export."""

from __future__ import annotations

import html
import json

import aiohttp
import pytest
import srt
import webvtt

from relay.control import add_control_routes
from relay.export import export
from relay.messages import Caption
from relay.pipeline import PipelineSettings
from relay.server import create_app, serve
from relay.service import RelayService
from relay.source import SourceSettings
from relay.speakers import AgendaEntry, SpeakerError, SpeakerLog, checked_name, load_agenda
from relay.store import TranscriptStore, transcript_path
from relay.tracks import TrackCaption

TOKEN = "operator-token-for-tests"
NAMES = [
    "H.E. Ms. Ana Pérez, Minister for Foreign Affairs, Chile",
    'Mr. Jean "JJ" Dupont <b>&amp; Co</b> --> <script>alert(1)</script>',
    "السيدة ليلى حداد، وزيرة الخارجية",  # right-to-left
]


def test_a_change_applies_to_speech_that_began_after_it() -> None:
    log = SpeakerLog()
    assert log.at(5.0) == ""
    log.set("Ana", 10.0)
    log.set("Ben", 20.0)
    assert [log.at(t) for t in (9.9, 10.0, 19.9, 20.0, 99.0)] == ["", "Ana", "Ana", "Ben", "Ben"]
    log.set("Cy", 15.0)  # a change never rewrites the past: the timeline only moves forward
    assert log.at(19.9) == "Ana" and log.at(20.0) == "Cy" and log.current == "Cy"
    log.set("", 30.0)
    assert log.at(31.0) == "" and log.at(25.0) == "Cy"


def test_names_are_trimmed_and_bounded() -> None:
    assert checked_name("  Ana \t Pérez  ") == "Ana Pérez"
    assert checked_name(NAMES[2]) == NAMES[2]
    with pytest.raises(SpeakerError):
        checked_name("Ana\x00Pérez")
    with pytest.raises(SpeakerError):
        checked_name("x" * 201)


def test_the_agenda_is_read_and_stepped_through(tmp_path) -> None:
    agenda = tmp_path / "agenda.csv"
    agenda.write_text('\ufeffname,affiliation,language\n"Pérez, Ana","Minister, Chile",es\nJean Dupont,,fr\n\n',
                      encoding="utf-8")
    entries = load_agenda(agenda)
    assert entries == [AgendaEntry("Pérez, Ana", "Minister, Chile", "es"), AgendaEntry("Jean Dupont", "", "fr")]
    log = SpeakerLog(entries)
    assert log.next(1.0) == "Pérez, Ana, Minister, Chile"
    assert log.next(2.0) == "Jean Dupont"
    with pytest.raises(SpeakerError, match="all been called"):
        log.next(3.0)
    with pytest.raises(SpeakerError, match="no agenda"):
        SpeakerLog().next(1.0)
    empty = tmp_path / "empty.csv"
    empty.write_text("name,affiliation,language\n")
    with pytest.raises(SpeakerError, match="names no speaker"):
        load_agenda(empty)
    with pytest.raises(SpeakerError, match="cannot read"):
        load_agenda(tmp_path / "missing.csv")


def final(n: int, start: float, text: str, channel: str = "floor", lang: str = "en") -> Caption:
    return Caption(kind="final", id=f"u{n}", lang=lang, text=text, start=start, end=start + 3.0, wall=start + 4.0,
                   channel=channel, translations={"fr": f"fr {text}"}, mt={"fr": "apertium"})  # fmt: skip


@pytest.fixture
def service(tmp_path):
    relay = RelayService(PipelineSettings(source=SourceSettings(url="unused.flac")), data_dir=tmp_path)
    yield relay
    relay.close()


async def test_finals_and_tracks_carry_who_had_the_floor_into_every_export(service, tmp_path) -> None:
    service.speakers.set(NAMES[0], 0.0)
    await service.caption(final(1, 1.0, "Good morning."))
    service.speakers.set(NAMES[1], 10.0)  # while the next sentence (begun at 8 s) is still decoding
    await service.caption(final(2, 8.0, "Thank you."))
    await service.caption(final(3, 11.0, "Next point."))
    service.speakers.set(NAMES[2], 20.0)
    # a French caption of sentence 3 that starts after the change (as a booth's would): still the
    # floor's speaker of sentence 3, the passage it covers
    await service.track(TrackCaption("fr", "mt", "floor", "fr:u3", "Point suivant.", 21.0, 24.0, ("u3",), "en"))
    await service.caption(final(4, 22.0, "<script>alert(1)</script>"))
    with TranscriptStore(transcript_path(tmp_path), readonly=True) as store:
        finals = store.all_finals()
    floor = [f for f in finals if f.track is None]
    assert [f.caption.speaker for f in floor] == [NAMES[0], NAMES[0], NAMES[1], NAMES[2]]
    track = next(f for f in finals if f.track is not None)
    assert track.track.speaker == NAMES[1] and json.loads(track.frame_json)["speaker"] == NAMES[1]
    assert [json.loads(f.frame_json)["speaker"] for f in floor] == [NAMES[0], NAMES[0], NAMES[1], NAMES[2]]

    records = json.loads(export(floor, "json"))
    assert [r["speaker"] for r in records] == [NAMES[0], NAMES[0], NAMES[1], NAMES[2]]
    vtt = export(floor, "vtt")
    cues = webvtt.from_string(vtt)
    # the annotation as a player reads it (character references resolved), markup never a tag
    assert [html.unescape(c.voice) for c in cues] == [NAMES[0], NAMES[0], NAMES[1], NAMES[2]]
    assert [html.unescape(c.text) for c in cues] == ["Good morning.", "Thank you.", "Next point.",
                                                     "<script>alert(1)</script>"]
    assert "<script>" not in vtt and "-->" not in vtt.split("\n\n", 2)[-1].replace(" --> ", "")
    subtitles = list(srt.parse(export(floor, "srt")))
    assert [s.content.split("\n") for s in subtitles] == [
        [f"[{NAMES[0]}]", "Good morning."], ["Thank you."], [f"[{NAMES[1]}]", "Next point."],
        [f"[{NAMES[2]}]", "<script>alert(1)</script>"]]  # fmt: skip
    txt = export(floor, "txt").splitlines()
    assert txt[0] == f"[{NAMES[0]}]" and txt[3] == f"[{NAMES[1]}]" and txt[5] == f"[{NAMES[2]}]"
    assert len(txt) == 7


async def test_without_speakers_nothing_changes(service, tmp_path) -> None:
    await service.caption(final(1, 1.0, "Good morning."))
    with TranscriptStore(transcript_path(tmp_path), readonly=True) as store:
        finals = store.all_finals()
    assert "speaker" not in json.loads(finals[0].frame_json)
    assert export(finals, "txt") == "[00:00:01] Good morning.\n"
    assert "<v" not in export(finals, "vtt")


async def test_the_speaker_api_names_the_speaker_and_refuses_bad_input(tmp_path) -> None:
    agenda = [AgendaEntry("Ana Pérez", "Chile")]
    relay = RelayService(PipelineSettings(source=SourceSettings(url="unused.flac")), data_dir=tmp_path, agenda=agenda)
    app = create_app(relay.hub)
    add_control_routes(app, relay, TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with serve(app) as url, aiohttp.ClientSession() as session:
            async def post(body, headers=auth):
                async with session.post(url + "/api/speaker", data=body, headers=headers) as response:
                    return response.status, await response.json()

            assert (await post(json.dumps({"name": "Mallory"}), {}))[0] == 401
            assert (await post(json.dumps({"name": "Ana\x1b[2JEvil"})))[0] == 400  # a terminal escape
            assert (await post("[[[[")) [0] == 400
            assert (await post(json.dumps({"name": 7})))[0] == 400
            status, body = await post(json.dumps({"next": True}))
            assert status == 200 and body["speaker"] == "Ana Pérez, Chile"
            status, body = await post(json.dumps({"next": True}))
            assert status == 409 and "all been called" in body["error"]
            status, body = await post(json.dumps({"name": NAMES[2]}))
            assert status == 200 and body["speaker"] == NAMES[2]
            assert relay.status()["speaker"] == NAMES[2] and relay.speakers.current == NAMES[2]
    finally:
        relay.close()


def test_bad_names_and_agenda_entries_are_refused_at_the_start(tmp_path) -> None:
    for name in ("\u200b\u200b", "Ana \u202eoreP"):  # invisible; reorders what follows
        with pytest.raises(SpeakerError):
            checked_name(name)
    agenda = tmp_path / "agenda.csv"
    agenda.write_text(f"{'N' * 150},{'A' * 100},en\n", encoding="utf-8")
    with pytest.raises(SpeakerError, match="speaker 1"):  # name and affiliation together are too long
        load_agenda(agenda)


async def test_a_continued_event_keeps_its_speaker_and_its_place_in_the_agenda(tmp_path) -> None:
    agenda = [AgendaEntry("Ana"), AgendaEntry("Ben"), AgendaEntry("Cy")]
    settings = PipelineSettings(source=SourceSettings(url="unused.flac"))
    first = RelayService(settings, data_dir=tmp_path, agenda=agenda)
    first.set_speaker(None)
    first.set_speaker(None)  # Ben has the floor
    await first.caption(final(1, 1.0, "Thank you."))
    first.close()
    again = RelayService(settings, data_dir=tmp_path, agenda=agenda)
    try:
        assert again.speakers.current == "Ben"
        assert again.set_speaker(None)["speaker"] == "Cy"  # not Ana again
    finally:
        again.close()


async def test_a_track_of_a_passage_nobody_was_named_for_carries_no_name(service) -> None:
    await service.caption(final(1, 5.0, "Before anyone was named."))
    service.speakers.set("Ana", 10.0)
    await service.track(TrackCaption("fr", "mt", "floor", "fr:u1", "Avant.", 11.0, 12.0, ("u1",), "en"))
    assert "speaker" not in service.hub._ring.latest(1)[0].text.decode()


async def test_a_null_name_is_refused_not_taken_for_next(tmp_path) -> None:
    relay = RelayService(PipelineSettings(source=SourceSettings(url="unused.flac")), data_dir=tmp_path,
                         agenda=[AgendaEntry("Ana")])
    app = create_app(relay.hub)
    add_control_routes(app, relay, TOKEN)
    try:
        async with serve(app) as url, aiohttp.ClientSession() as session:
            async with session.post(url + "/api/speaker", data=json.dumps({"name": None}),
                                    headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                assert response.status == 400
        assert relay.speakers.current == ""
    finally:
        relay.close()
