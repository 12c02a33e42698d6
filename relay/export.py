"""Transcript export: the finals of an event as plain text, SubRip, WebVTT or JSON.

One implementation for every download: `relay export` and the viewer page's TXT/SRT/WebVTT
buttons (`relay.transcript_routes`) both come here, so a file has the same cues either way.
SubRip is written by the `srt` library and WebVTT by `webvtt-py`, the parsers the tests read
the files back with. What is exported is what a viewer of the language read
(`relay.transcript_tracks.read_by`): at an event with tracks, that language's track, its
interpretation and MT cues labelled "(interpretation) " / "(machine translation) "; else,
and without a language, the floor's finals. The rules, all applied in `layout` before
either library sees a cue:

- Text: the chosen language's translation, else (none, or a blank one) the spoken text;
  any whitespace (newlines, tabs, Unicode spaces) collapses to single spaces, so no cue
  text can hold a blank line that would end its cue early. A final whose spoken text has
  no words retracts a partial and makes no cue in any language, as on the viewer page.
- Timing: every cue spans its final's `start`..`end` (stream seconds, to the millisecond),
  in seq order, moving forward and never overlapping: a cue starting before the previous
  one ends starts when it ends (it is shifted, never dropped or merged, so every final
  keeps its cue); a cue left with no duration lasts MIN_CUE_MS. A time that is not a
  number starts where the previous cue ended; negative times count as 0 and absurd ones
  are held at MAX_TIME_MS, so any input gives a file the parsers accept.
- Lines: wrapped by `relay.linebreak.wrap_lines` into at most two lines of 42 characters.
  One cue per final wins over the line limit: a translation too long for 2 × 42 gets two
  longer lines rather than a third line or a second cue.
- Speakers: a final's `speaker` (who had the floor) puts WebVTT cues in a voice span,
  `<v Name>` (the name escaped like cue text), and a `[Name]` line before the first cue of
  each speaker's turn in SRT and TXT; JSON records carry it as `speaker`.
- Markup: text stays text. WebVTT escapes `&`, `<` and `>` (webvtt-py writes cue text as
  given, and `<script>` would be a cue tag); that also turns a spoken `-->` into `--&gt;`,
  which could otherwise start a new cue. SubRip and TXT have no escaping: text is literal.
"""

from __future__ import annotations

import datetime
import html
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import srt
import webvtt
from webvtt.models import Timestamp

from .linebreak import MAX_LINE_CHARS, MAX_LINES, line_count, wrap_lines
from .output import caption_record
from .store import StoredFinal, TranscriptStore
from .transcript_tracks import labelled_text, read_by, track_record

Format = Literal["txt", "srt", "vtt", "json"]
FORMATS: tuple[Format, ...] = ("txt", "srt", "vtt", "json")
ORIGINAL = "original"
MIN_CUE_MS = 500
# 10 million hours: far past any event, far below what SubRip's timedelta and WebVTT's
# timestamps can hold, so a corrupt time cannot make a file its readers reject.
MAX_TIME_MS = 10_000_000 * 3_600_000


@dataclass(frozen=True, slots=True)
class Cue:
    """One final laid out for display: clamped times in ms and its text in the chosen language."""

    seq: int
    start_ms: int
    end_ms: int
    text: str
    speaker: str = ""  # who had the floor ("" unknown)
    new_speaker: bool = False  # the first cue of this speaker's turn


def export(source: TranscriptStore | Iterable[StoredFinal], fmt: Format, lang: str | None = None) -> str:
    """Render what a viewer of `lang` read in `fmt` (None or "original": the floor as spoken).

    With tracks, that is the `lang` track, each cue labelled with its source (`relay.transcript_tracks`);
    without, the floor's finals in `lang` (JSON: every final with all its translations).
    """
    finals = source.all_finals() if isinstance(source, TranscriptStore) else list(source)
    finals = read_by(finals, lang)
    if fmt == "json":
        return _json(finals)
    cues = list(layout(finals, lang))
    if fmt == "txt":
        return "".join(f"{_turn_line(cue)}[{_clock(cue.start_ms)}] {cue.text}\n" for cue in cues)
    if fmt == "srt":
        return _srt(cues)
    if fmt == "vtt":
        return _vtt(cues)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def layout(finals: Iterable[StoredFinal], lang: str | None = None) -> Iterator[Cue]:
    """Yield a cue per final with words, in seq order, in order in time and not overlapping."""
    cues = CueLayout()
    for final in sorted(finals, key=lambda stored: stored.seq):
        if not final.caption.text.split():
            continue  # a retraction, whatever its translations say
        yield cues.place(final.seq, cue_text(final, lang), final.caption.start, final.caption.end,
                         final.caption.speaker)


class CueLayout:
    """The timing and turn rules of `layout`, one final at a time (live renditions lay out as they go)."""

    def __init__(self) -> None:
        self._previous_end_ms = 0
        self._previous_speaker = ""

    def place(self, seq: int, text: str, start_s: float, end_s: float, speaker: str = "") -> Cue:
        """The cue of the next final in seq order: after the previous one, never overlapping it."""
        start = _milliseconds(start_s)
        start_ms = max(start if start is not None else self._previous_end_ms, self._previous_end_ms)
        end_ms = _milliseconds(end_s)
        if end_ms is None or end_ms <= start_ms:
            end_ms = start_ms + MIN_CUE_MS
        self._previous_end_ms = end_ms
        speaker = " ".join(speaker.split())
        cue = Cue(seq=seq, start_ms=start_ms, end_ms=end_ms, text=" ".join(text.split()), speaker=speaker,
                  new_speaker=bool(speaker) and speaker != self._previous_speaker)
        self._previous_speaker = speaker
        return cue


def cue_text(final: StoredFinal, lang: str | None) -> str:
    """The final's text in `lang`, falling back to the spoken text when it has no translation."""
    if final.track is not None:
        return labelled_text(final.track)  # already in the track's language
    caption = final.caption
    if lang is None or lang == ORIGINAL or lang == caption.lang:
        return caption.text
    translated = caption.translations.get(lang, "")
    return translated if translated.split() else caption.text


def display_lines(text: str) -> list[str]:
    """Wrap into lines of ≤ 42 characters, widened only when that needs more than two lines."""
    width = max(MAX_LINE_CHARS, (len(text) - 1) // 2)  # two lines are never narrower than this
    while line_count(text, width) > MAX_LINES:
        width += 1
    return wrap_lines(text, width)


def _srt(cues: list[Cue]) -> str:
    """SubRip, numbered from 1, by `srt.compose`."""
    subtitles = [
        srt.Subtitle(
            index=number,
            start=datetime.timedelta(milliseconds=cue.start_ms),
            end=datetime.timedelta(milliseconds=cue.end_ms),
            content=_turn_line(cue) + "\n".join(display_lines(cue.text)),
        )
        for number, cue in enumerate(cues, start=1)
    ]
    # reindex=False: compose would re-sort, and silently skip cues it finds useless;
    # `layout` already orders them and every cue must reach the file.
    return srt.compose(subtitles, reindex=False)


def _vtt(cues: list[Cue]) -> str:
    """WebVTT by webvtt-py, cue text escaped so spoken markup stays text."""
    captions = [
        webvtt.Caption(start=vtt_timestamp(cue.start_ms), end=vtt_timestamp(cue.end_ms), text=vtt_lines(cue))
        for cue in cues
    ]
    return webvtt.WebVTT(captions=captions).content


def vtt_lines(cue: Cue) -> list[str]:
    """A cue's WebVTT text lines: wrapped, escaped, the first in the speaker's voice span."""
    return _voice(cue, [html.escape(line, quote=False) for line in display_lines(cue.text)])


def _turn_line(cue: Cue) -> str:
    """SRT and TXT: "[speaker]" on a line of its own before the first cue of each speaker's turn."""
    return f"[{cue.speaker}]\n" if cue.new_speaker else ""


def _voice(cue: Cue, lines: list[str]) -> list[str]:
    """WebVTT: every cue of a named speaker in a voice span, `<v Name>` (escaped: `>` would end it)."""
    if not cue.speaker or not lines:
        return lines
    return [f"<v {html.escape(cue.speaker, quote=False)}>{lines[0]}", *lines[1:]]


def vtt_timestamp(ms: int) -> str:
    """A WebVTT timestamp, as webvtt-py writes it."""
    return str(Timestamp.from_seconds(ms / 1000))


def _json(finals: list[StoredFinal]) -> str:
    """A JSON list, one a line: finals as the JSONL output writes them plus their seq, or track captions."""
    records = [
        track_record(final) if final.track is not None else {**caption_record(final.caption), "seq": final.seq}
        for final in finals
    ]
    lines = ",\n".join(json.dumps(record, ensure_ascii=False) for record in records)
    return f"[\n{lines}\n]\n" if records else "[]\n"


def _milliseconds(seconds: float) -> int | None:
    """Stream seconds as whole ms within 0..MAX_TIME_MS; None when not a number."""
    if math.isnan(seconds):
        return None
    return round(min(max(seconds, 0.0), MAX_TIME_MS / 1000) * 1000)


def _clock(ms: int) -> str:
    """HH:MM:SS of a time in ms."""
    seconds = ms // 1000
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
