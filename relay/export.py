"""Transcript export: the finals of an event as plain text, SubRip, WebVTT or JSON.

Cue timing: every cue spans its final's `start`..`end` (stream seconds, to the
millisecond), kept in order and never overlapping: a cue starting before the previous
one ends starts when it ends; a cue left with no duration lasts MIN_CUE_MS. Finals with
empty text (retracted partials) make no cue or line; JSON keeps every final as stored.

Cue text: the chosen language's translation, else the spoken text; whitespace and
newlines collapsed, then wrapped by `relay.linebreak.wrap_lines` into lines of at most
42 characters. One cue per final wins over the two-line limit: a translation too long
for 2 × 42 gets two longer lines rather than a third line or a second cue.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from .linebreak import MAX_LINE_CHARS, MAX_LINES, line_count, wrap_lines
from .output import caption_record
from .store import StoredFinal, TranscriptStore
from .transcript_tracks import labelled_text, read_by, track_record

Format = Literal["txt", "srt", "vtt", "json"]
FORMATS: tuple[Format, ...] = ("txt", "srt", "vtt", "json")
ORIGINAL = "original"
MIN_CUE_MS = 500


@dataclass(frozen=True, slots=True)
class Cue:
    """One final laid out for display: clamped times in ms and its text in the chosen language."""

    seq: int
    start_ms: int
    end_ms: int
    text: str


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
        return "".join(f"[{_clock(cue.start_ms)}] {cue.text}\n" for cue in cues)
    if fmt == "srt":
        return "\n".join(_srt_cue(number, cue) for number, cue in enumerate(cues, start=1))
    if fmt == "vtt":
        return "WEBVTT\n\n" + "\n".join(_vtt_cue(cue) for cue in cues)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def layout(finals: Iterable[StoredFinal], lang: str | None = None) -> Iterator[Cue]:
    """Yield a cue per non-empty final, in seq order, in order in time and not overlapping."""
    previous_end_ms = 0
    for final in sorted(finals, key=lambda stored: stored.seq):
        text = " ".join(cue_text(final, lang).split())
        if not text:
            continue
        start_ms = max(round(final.caption.start * 1000), previous_end_ms)
        end_ms = round(final.caption.end * 1000)
        if end_ms <= start_ms:
            end_ms = start_ms + MIN_CUE_MS
        previous_end_ms = end_ms
        yield Cue(seq=final.seq, start_ms=start_ms, end_ms=end_ms, text=text)


def cue_text(final: StoredFinal, lang: str | None) -> str:
    """The final's text in `lang`, falling back to the spoken text when it has no translation."""
    if final.track is not None:
        return labelled_text(final.track)  # already in the track's language
    caption = final.caption
    if lang is None or lang == ORIGINAL or lang == caption.lang:
        return caption.text
    return caption.translations.get(lang) or caption.text


def display_lines(text: str) -> list[str]:
    """Wrap into lines of ≤ 42 characters, widened only when that needs more than two lines."""
    width = max(MAX_LINE_CHARS, (len(text) - 1) // 2)  # two lines are never narrower than this
    while line_count(text, width) > MAX_LINES:
        width += 1
    return wrap_lines(text, width)


def _srt_cue(number: int, cue: Cue) -> str:
    """A SubRip cue: number, times with a comma, text lines, blank line."""
    times = f"{_timestamp(cue.start_ms, ',')} --> {_timestamp(cue.end_ms, ',')}"
    return "\n".join([str(number), times, *display_lines(cue.text)]) + "\n"


def _vtt_cue(cue: Cue) -> str:
    """A WebVTT cue; `&`, `<`, `>` escaped so spoken markup stays text."""
    times = f"{_timestamp(cue.start_ms, '.')} --> {_timestamp(cue.end_ms, '.')}"
    lines = [html.escape(line, quote=False) for line in display_lines(cue.text)]
    return "\n".join([times, *lines]) + "\n"


def _json(finals: list[StoredFinal]) -> str:
    """A JSON list, one a line: finals as the JSONL output writes them plus their seq, or track captions."""
    records = [
        track_record(final) if final.track is not None else {**caption_record(final.caption), "seq": final.seq}
        for final in finals
    ]
    lines = ",\n".join(json.dumps(record, ensure_ascii=False) for record in records)
    return f"[\n{lines}\n]\n" if records else "[]\n"


def _timestamp(ms: int, separator: str) -> str:
    """HH:MM:SS<separator>mmm."""
    seconds, millis = divmod(ms, 1000)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{separator}{millis:03d}"


def _clock(ms: int) -> str:
    """HH:MM:SS of a time in ms."""
    seconds = ms // 1000
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
