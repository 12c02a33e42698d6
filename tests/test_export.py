"""Transcript export, checked by real SubRip and WebVTT parsers."""

from __future__ import annotations

import dataclasses
import datetime
import html
import json
import re
from pathlib import Path

import pytest
import srt
import webvtt

from relay.export import MAX_TIME_MS, MIN_CUE_MS, export
from relay.linebreak import MAX_LINE_CHARS
from relay.messages import Caption
from relay.protocol import encode_caption
from relay.store import StoredFinal, TranscriptStore, transcript_path
from tests.test_store import fill, meeting_caption

SCRIPT = "<script>alert(1)</script>"


def stored(caption: Caption, seq: int) -> StoredFinal:
    """A final as the store returns it."""
    return StoredFinal(seq=seq, caption=caption, frame_json=encode_caption(caption, seq).text.decode(), published_at=0.0)


def meeting(count: int = 8) -> list[StoredFinal]:
    """`count` finals of the multilingual meeting (one in four says <script>)."""
    return [stored(meeting_caption(n), n) for n in range(1, count + 1)]


def seconds(delta: datetime.timedelta) -> float:
    return delta.total_seconds()


def expected_text(final: StoredFinal, lang: str | None) -> str:
    caption = final.caption
    return caption.text if lang is None else caption.translations.get(lang, caption.text)


@pytest.mark.parametrize("lang", [None, "fr"])
def test_srt_parses_with_one_cue_per_final_in_order(lang: str | None) -> None:
    finals = meeting()
    cues = list(srt.parse(export(finals, "srt", lang)))
    assert [cue.index for cue in cues] == list(range(1, len(finals) + 1))
    assert [" ".join(cue.content.split("\n")) for cue in cues] == [expected_text(f, lang) for f in finals]
    assert [seconds(cue.start) for cue in cues] == [f.caption.start for f in finals]
    assert all(cue.start < cue.end <= later.start for cue, later in zip(cues, cues[1:]))


@pytest.mark.parametrize("lang", [None, "fr"])
def test_vtt_parses_strictly_with_one_cue_per_final_in_order(lang: str | None) -> None:
    finals = meeting()
    cues = webvtt.from_string(export(finals, "vtt", lang), strict=True).captions
    assert len(cues) == len(finals)
    assert [html.unescape(" ".join(cue.raw_text.split("\n"))) for cue in cues] == [
        expected_text(final, lang) for final in finals
    ]
    times = [(cue.start_in_seconds, cue.end_in_seconds) for cue in cues]
    assert all(start < end for start, end in times)
    assert all(end <= later for (_, end), (later, _) in zip(times, times[1:]))


def test_vtt_keeps_markup_as_text() -> None:
    final = meeting(4)[3]
    text = export([final], "vtt", None)
    assert SCRIPT not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&amp; press" in text
    (cue,) = webvtt.from_string(text, strict=True).captions
    assert cue.text == cue.raw_text  # the parser found no cue tags in it
    assert SCRIPT in html.unescape(cue.text)


def test_srt_and_txt_keep_markup_literally() -> None:
    final = meeting(4)[3]
    (cue,) = srt.parse(export([final], "srt", None))
    assert SCRIPT in cue.content
    assert SCRIPT in export([final], "txt", None)


def test_french_export_uses_french_translations_and_falls_back_to_speech() -> None:
    finals = meeting(3)
    untranslated = dataclasses.replace(meeting_caption(4, kind="final"), translations={}, mt={})
    finals.append(stored(untranslated, 4))
    cues = list(srt.parse(export(finals, "srt", "fr")))
    contents = [" ".join(cue.content.split("\n")) for cue in cues]
    assert contents[0] == finals[0].caption.translations["fr"]
    assert contents[1] == "La conférence débutera dès l'arrivée du responsable."  # spoken in French
    assert contents[2] == "Mot de passe incorrect. S'il vous plaît, entrez votre numéro d'agent."
    assert contents[3] == untranslated.text
    assert export(finals, "srt", "original") == export(finals, "srt", None)


def test_cues_are_at_most_two_lines_of_42_characters() -> None:
    for cue in srt.parse(export(meeting(), "srt", None)):
        lines = cue.content.split("\n")
        assert 1 <= len(lines) <= 2
        assert all(0 < len(line) <= MAX_LINE_CHARS for line in lines)


def test_translation_too_long_for_two_lines_gets_two_wider_lines() -> None:
    final = meeting(1)[0]
    french = final.caption.translations["fr"]
    assert len(french) > 2 * MAX_LINE_CHARS + 1
    (cue,) = srt.parse(export([final], "srt", "fr"))
    lines = cue.content.split("\n")
    assert len(lines) == 2 and " ".join(lines) == french
    assert max(len(line) for line in lines) < len(french) // 2 + 10


def test_newlines_collapse_and_empty_finals_make_no_cue() -> None:
    spoken = "Bonjour à tous,\n\n\nbienvenue\r\n  à la réunion."
    finals = [
        stored(dataclasses.replace(meeting_caption(1), lang="fr", text=spoken, translations={}), 1),
        stored(dataclasses.replace(meeting_caption(2), text="", translations={}), 2),
    ]
    (cue,) = srt.parse(export(finals, "srt", None))
    assert cue.content == "Bonjour à tous, bienvenue à la réunion."
    assert len(webvtt.from_string(export(finals, "vtt", None), strict=True).captions) == 1
    assert export(finals, "txt", None) == "[00:00:00] Bonjour à tous, bienvenue à la réunion.\n"


def test_overlapping_and_empty_spans_are_clamped() -> None:
    def at(n: int, start: float, end: float) -> StoredFinal:
        return stored(dataclasses.replace(meeting_caption(n), start=start, end=end), n)

    finals = [at(1, 10.0, 12.0), at(2, 11.5, 13.0), at(3, 14.0, 14.0), at(4, 13.0, 13.2)]
    spans = [(seconds(c.start), seconds(c.end)) for c in srt.parse(export(finals, "srt", None))]
    assert spans == [(10.0, 12.0), (12.0, 13.0), (14.0, 14.0 + MIN_CUE_MS / 1000), (14.5, 15.0)]


def test_txt_is_one_timed_line_per_final() -> None:
    finals = meeting(5)
    lines = export(finals, "txt", "es").splitlines()
    assert len(lines) == 5
    assert lines[1] == "[00:00:03] La conferencia empezará en cuanto llegue el responsable."
    assert all(re.fullmatch(r"\[\d\d:\d\d:\d\d\] \S.*", line) for line in lines)


def test_json_lists_the_finals_with_their_seq(tmp_path: Path) -> None:
    with TranscriptStore(transcript_path(tmp_path)) as store:
        fill(store, 5)
        records = json.loads(export(store, "json", "fr"))
    assert [record["seq"] for record in records] == [1, 2, 3, 4, 5]
    first = records[0]
    assert set(first) >= {"type", "id", "lang", "text", "start", "end", "wall", "translations", "mt", "seq"}
    assert (first["type"], first["lang"], first["text"]) == ("final", "en", meeting_caption(1).text)
    assert first["translations"]["fr"] == meeting_caption(1).translations["fr"]


def test_export_from_store_matches_export_of_its_finals(tmp_path: Path) -> None:
    with TranscriptStore(transcript_path(tmp_path)) as store:
        fill(store, 6)
        assert export(store, "vtt", "es") == export(store.all_finals(), "vtt", "es")
        assert len(list(srt.parse(export(store, "srt", "es")))) == 6


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        export(meeting(1), "docx", None)  # type: ignore[arg-type]


def test_a_spoken_arrow_cannot_start_a_cue() -> None:
    text = "Slide 3 --> slide 4, then 00:00:09.000 --> 00:00:10.000 as written."
    final = stored(dataclasses.replace(meeting_caption(1), text=text, translations={}), 1)
    (cue,) = webvtt.from_string(export([final], "vtt", None), strict=True).captions
    assert html.unescape(" ".join(cue.lines)) == text
    (subtitle,) = srt.parse(export([final], "srt", None))
    assert " ".join(subtitle.content.split("\n")) == text


def test_times_that_are_not_numbers_or_absurd_still_give_every_cue() -> None:
    def at(n: int, start: float, end: float) -> StoredFinal:
        return stored(dataclasses.replace(meeting_caption(n), start=start, end=end), n)

    nan, inf = float("nan"), float("inf")
    finals = [at(1, nan, 2.0), at(2, -5.0, nan), at(3, 1e300, inf), at(4, 4.0, -inf)]
    spans = [(seconds(c.start), seconds(c.end)) for c in srt.parse(export(finals, "srt", None))]
    held = MAX_TIME_MS / 1000
    assert spans == [(0.0, 2.0), (2.0, 2.5), (held, held + 0.5), (held + 0.5, held + 1.0)]
    assert len(webvtt.from_string(export(finals, "vtt", None), strict=True).captions) == 4


def test_a_retraction_makes_no_cue_even_with_translations_and_a_blank_translation_falls_back() -> None:
    retraction = dataclasses.replace(meeting_caption(1), text=" ", translations={"fr": "Bonjour."})
    blank = dataclasses.replace(meeting_caption(2), translations={"fr": " \n"})
    cues = list(srt.parse(export([stored(retraction, 1), stored(blank, 2)], "srt", "fr")))
    assert [" ".join(cue.content.split("\n")) for cue in cues] == [blank.text]
