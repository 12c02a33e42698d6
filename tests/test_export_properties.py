"""Property tests of the transcript export: any text, any times give files the strict parsers accept.

Each generated transcript is exported and read back with `srt.parse` (which raises on anything it
cannot read) and webvtt-py in strict mode; every final with words in it must come back as one
cue, in order, with its words, as plain text, timed forward and never overlapping.
"""

from __future__ import annotations

import html
import re

import srt
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.export import export
from relay.linebreak import MAX_LINE_CHARS, MAX_LINES, fits
from relay.messages import Caption
from relay.store import StoredFinal
from tests.strategies import caption_text

SETTINGS = settings(max_examples=120, deadline=None)
LANGS = ("en", "fr", "es")
TIMES = st.one_of(
    st.floats(min_value=0.0, max_value=10_000.0),  # an ordinary event
    st.floats(allow_nan=True, allow_infinity=True),  # anything at all
    st.sampled_from([0.0, 0.0005, 0.0015, 59.9995, 3599.9999, 360_000.0, -1.0]),  # rounding edges
)


@st.composite
def finals(draw: st.DrawFn) -> list[StoredFinal]:
    """A transcript: finals in seq order with any text, translations and times."""
    count = draw(st.integers(min_value=0, max_value=12))
    out = []
    for seq in range(1, count + 1):
        lang = draw(st.sampled_from((*LANGS, "de")))
        translations = draw(st.dictionaries(st.sampled_from(LANGS), caption_text(max_pieces=20), max_size=3))
        text = draw(caption_text(max_pieces=20))
        caption = Caption(
            "final", f"u{seq}", lang, text, draw(TIMES), draw(TIMES), 0.0,
            translations={**translations, lang: text}, mt={},
        )  # fmt: skip
        out.append(StoredFinal(seq=seq, caption=caption, frame_json="{}", published_at=0.0))
    return out


VIEWER_LANGS = st.sampled_from((None, "original", *LANGS))


def expected(transcript: list[StoredFinal], lang: str | None) -> list[str]:
    """The text of every final that should make a cue, whitespace collapsed.

    Finals whose spoken text has words make a cue: the translation into `lang` if it has
    words, else the spoken text.
    """
    texts = []
    for final in transcript:
        caption = final.caption
        translated = caption.translations.get(lang or "", "") if lang not in (None, "original") else ""
        text = translated if translated.split() else caption.text
        if caption.text.split():
            texts.append(" ".join(text.split()))
    return texts


def joined(lines: str) -> str:
    return " ".join(lines.split("\n"))


def assert_timed_forward(spans: list[tuple[float, float]]) -> None:
    assert all(0 <= start < end for start, end in spans)
    assert all(end <= later for (_, end), (later, _) in zip(spans, spans[1:]))


def assert_laid_out(text: str, lines: list[str]) -> None:
    """At most two lines; each within 42 characters (or one long word) when the text fits two such lines."""
    assert 1 <= len(lines) <= MAX_LINES and all(lines)
    if fits(text):
        assert all(len(line) <= MAX_LINE_CHARS or " " not in line for line in lines)


@SETTINGS
@given(finals(), VIEWER_LANGS)
def test_srt_parses_with_every_cue(transcript: list[StoredFinal], lang: str | None) -> None:
    cues = list(srt.parse(export(transcript, "srt", lang)))
    texts = expected(transcript, lang)
    assert [joined(cue.content) for cue in cues] == texts
    assert [cue.index for cue in cues] == list(range(1, len(texts) + 1))
    assert_timed_forward([(cue.start.total_seconds(), cue.end.total_seconds()) for cue in cues])
    for cue, text in zip(cues, texts):
        assert_laid_out(text, cue.content.split("\n"))


@SETTINGS
@given(finals(), VIEWER_LANGS)
def test_webvtt_parses_strictly_with_every_cue_as_plain_text(transcript: list[StoredFinal], lang: str | None) -> None:
    content = export(transcript, "vtt", lang)
    cues = webvtt.from_string(content, strict=True).captions
    texts = expected(transcript, lang)
    assert [html.unescape(joined(cue.raw_text)) for cue in cues] == texts
    assert all(cue.text == cue.raw_text for cue in cues)  # no cue tags: markup stays text
    assert_timed_forward([(cue.start_time.in_milliseconds() / 1000, cue.end_time.in_milliseconds() / 1000) for cue in cues])
    for cue, text in zip(cues, texts):
        assert_laid_out(text, [html.unescape(line) for line in cue.lines])


@SETTINGS
@given(finals(), VIEWER_LANGS)
def test_txt_has_one_timed_line_per_cue(transcript: list[StoredFinal], lang: str | None) -> None:
    lines = export(transcript, "txt", lang).splitlines()
    assert [re.sub(r"^\[\d{2,}:\d\d:\d\d\] ", "", line) for line in lines] == expected(transcript, lang)
    assert all(re.match(r"\[\d{2,}:\d\d:\d\d\] \S", line) for line in lines)
