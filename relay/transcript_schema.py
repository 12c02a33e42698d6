"""The transcript's SQLite schema (version 3), its migration from versions 1 and 2, and its rows.

Version 1 had only `finals`. Version 2 adds `tracks`: the language tracks' captions, in
the same `seq` as the finals (a seq is in exactly one of the two tables). Version 3 adds
`hls_presentations` and `hls_segments`: the HLS subtitle segments published (immutable once
listed, so a restarted relay serves the very same files). A writer opening an older file
migrates it in place (adds the tables, sets the version; no final is touched); a reader takes
it as it is. A version this code does not know is refused with a clear error.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .messages import Caption
from .tracks.model import TrackCaption

_LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION = 3
MIGRATABLE = ("1", "2")  # versions a writer upgrades in place (by adding the tables they lack)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS finals (
    seq INTEGER PRIMARY KEY, caption_id TEXT NOT NULL, channel TEXT NOT NULL,
    lang TEXT NOT NULL, text TEXT NOT NULL, translations TEXT NOT NULL, mt TEXT NOT NULL,
    mt_ms REAL, start_s REAL NOT NULL, end_s REAL NOT NULL, wall_s REAL NOT NULL,
    published_at REAL NOT NULL, frame TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tracks (
    seq INTEGER PRIMARY KEY, track_lang TEXT NOT NULL, source TEXT NOT NULL, channel TEXT NOT NULL,
    caption_id TEXT NOT NULL, text TEXT NOT NULL, start_s REAL NOT NULL, end_s REAL NOT NULL,
    covers TEXT NOT NULL, floor_lang TEXT NOT NULL, mt_engine TEXT NOT NULL,
    published_at REAL NOT NULL, frame TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tracks_by_lang ON tracks (track_lang, seq);
CREATE TABLE IF NOT EXISTS hls_presentations (
    id TEXT PRIMARY KEY, source_key TEXT NOT NULL, state TEXT NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS hls_segments (
    presentation TEXT NOT NULL, sn INTEGER NOT NULL, start_s REAL NOT NULL, duration_s REAL NOT NULL,
    cc INTEGER NOT NULL, program_date_time TEXT, bodies TEXT NOT NULL, PRIMARY KEY (presentation, sn)
);
"""
COLUMNS = "seq, caption_id, channel, lang, text, translations, mt, mt_ms, start_s, end_s, wall_s, published_at, frame"
INSERT = f"INSERT INTO finals ({COLUMNS}) VALUES ({', '.join('?' * 13)})"
TRACK_COLUMNS = (
    "seq, track_lang, source, channel, caption_id, text, start_s, end_s, covers, floor_lang, mt_engine, "
    "published_at, frame"
)
INSERT_TRACK = f"INSERT INTO tracks ({TRACK_COLUMNS}) VALUES ({', '.join('?' * 13)})"


class TranscriptError(RuntimeError):
    """The transcript refuses this final (a gap, a different final under a stored seq) or file."""


@dataclass(frozen=True, slots=True)
class StoredFinal:
    """One final as stored: its seq, the caption, and the exact JSON frame viewers got.

    For a track row, `track` is the track caption and `caption` a final caption of the
    same words (`lang`: the track's language, or the floor's for "original"), so code that
    knows only captions lays it out unchanged.
    """

    seq: int
    caption: Caption
    frame_json: str
    published_at: float
    track: TrackCaption | None = None


def create_or_migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema and the event's meta, or migrate a version-1 file; refuse unknown versions."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if found is not None and found[0] != str(SCHEMA_VERSION) and found[0] not in MIGRATABLE:
        conn.execute("ROLLBACK")
        raise TranscriptError(f"{path}: schema {found[0]}, this relay reads {SCHEMA_VERSION} (and migrates 1)")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    meta = {"schema_version": str(SCHEMA_VERSION), "session": secrets.token_hex(8), "started_at": repr(time.time())}
    conn.executemany("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", meta.items())
    if found is not None and found[0] != str(SCHEMA_VERSION):
        _LOGGER.info("Transcript %s: schema %s migrated to %d", path, found[0], SCHEMA_VERSION)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
    conn.execute("COMMIT")


def caption_row(seq: int, caption: Caption, frame_json: str, published_at: float) -> tuple[Any, ...]:
    """The `finals` row of a final caption (in COLUMNS order)."""
    return (
        seq, caption.id, caption.channel, caption.lang, caption.text,
        _dumps(caption.translations), _dumps(caption.mt), caption.mt_ms,
        caption.start, caption.end, caption.wall, published_at, frame_json,
    )  # fmt: skip


def _dumps(mapping: Mapping[str, str]) -> str:
    """Compact JSON of a mapping, non-ASCII kept."""
    return json.dumps(dict(mapping), ensure_ascii=False, separators=(",", ":"))


def stored_final(row: tuple[Any, ...]) -> StoredFinal:
    """Turn a `finals` row (in COLUMNS order) into a StoredFinal."""
    seq, caption_id, channel, lang, text, translations, mt, mt_ms, start, end, wall, published_at, frame = row
    caption = Caption(
        kind="final", id=caption_id, lang=lang, text=text, start=start, end=end, wall=wall,
        channel=channel, translations=json.loads(translations), mt=json.loads(mt), mt_ms=mt_ms,
        speaker=speaker_in(frame),
    )  # fmt: skip
    return StoredFinal(seq=seq, caption=caption, frame_json=frame, published_at=published_at)


def speaker_in(frame_json: str) -> str:
    """The speaker a stored frame names ("" if none): the frame viewers got is the record of it."""
    if '"speaker"' not in frame_json:
        return ""
    return str(json.loads(frame_json).get("speaker", ""))


def track_row(seq: int, track: TrackCaption, frame_json: str, published_at: float) -> tuple[Any, ...]:
    """The `tracks` row of a track caption (in TRACK_COLUMNS order)."""
    return (
        seq, track.lang, track.source, track.channel, track.id, track.text, track.start, track.end,
        _dumps_list(track.covers), track.floor_lang, track.mt_engine, published_at, frame_json,
    )  # fmt: skip


def stored_track(row: tuple[Any, ...]) -> StoredFinal:
    """Turn a `tracks` row (in TRACK_COLUMNS order) into a StoredFinal with its track caption."""
    seq, lang, source, channel, caption_id, text, start, end, covers, floor_lang, mt_engine, published_at, frame = row
    track = TrackCaption(
        lang=lang, source=source, channel=channel, id=caption_id, text=text, start=start, end=end,
        covers=tuple(json.loads(covers)), floor_lang=floor_lang, mt_engine=mt_engine, speaker=speaker_in(frame),
    )  # fmt: skip
    caption = Caption(
        kind="final", id=caption_id, lang=floor_lang if lang == "original" else lang, text=text,
        start=start, end=end, wall=0.0, channel=channel, speaker=track.speaker,
    )  # fmt: skip
    return StoredFinal(seq=seq, caption=caption, frame_json=frame, published_at=published_at, track=track)


def _dumps_list(items: Sequence[str]) -> str:
    """Compact JSON of a list of strings."""
    return json.dumps(list(items), ensure_ascii=False, separators=(",", ":"))
