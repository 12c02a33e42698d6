"""Which stored rows a viewer of one language read, and how a track caption is labelled.

A transcript of an event with tracks holds the finals of every channel (floor and booths)
and each language track's captions, all in one `seq`. A viewer of L read the L track, so
`relay export --lang L` (and the page's downloads) is that track, each cue saying where its
words came from. Without a language (or "original") the export is the floor as spoken. A
transcript without track rows (single-channel events recorded before tracks) exports as
it always did: the floor's finals with their translations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .store import StoredFinal
from .tracks.model import FLOOR, ORIGINAL, TrackCaption, labelled

SOURCE_NAMES = {"floor": "floor", "interpretation": "interpretation", "mt": "machine translation"}


def read_by(finals: Iterable[StoredFinal], lang: str | None) -> list[StoredFinal]:
    """The rows a viewer of `lang` read, in seq order: its track, else the floor's finals."""
    rows = sorted(finals, key=lambda stored: stored.seq)
    channel_finals = [row for row in rows if row.track is None]
    has_tracks = len(channel_finals) < len(rows)
    floor = [row for row in channel_finals if row.caption.channel == FLOOR]
    if not floor and not has_tracks:
        floor = channel_finals  # an old single-channel transcript under another channel name
    if lang is None or lang == ORIGINAL:
        return floor
    track = [row for row in rows if row.track is not None and row.track.lang == lang]
    return track or floor


def labelled_text(track: TrackCaption) -> str:
    """The caption's words, after "(interpretation) " or "(machine translation) " when they are not the speaker's."""
    return labelled(track.source, track.text)


def track_record(final: StoredFinal) -> dict[str, Any]:
    """The JSON export of one track caption: its words, where they came from, what they cover."""
    track = final.track
    assert track is not None
    record = {
        "type": "track", "seq": final.seq, "lang": track.lang, "source": track.source,
        "source_name": SOURCE_NAMES.get(track.source, track.source), "channel": track.channel,
        "id": track.id, "text": track.text, "start": track.start, "end": track.end,
        "covers": list(track.covers), "floor_lang": track.floor_lang, "mt_engine": track.mt_engine,
    }  # fmt: skip
    if track.speaker:
        record["speaker"] = track.speaker
    return record
