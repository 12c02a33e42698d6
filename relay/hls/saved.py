"""The published HLS segments in the transcript database, so a restarted relay serves the same files.

A segment is immutable once listed (CDNs and players keep it), so a relay that carries on an
event must neither close a published sequence number again nor forget the window it listed.
Each closed segment is committed with its presentation's state (off the event loop); a relay
starting on the same source takes the presentation up where it was. A database that fails
costs only that: the segments are served from memory, and the failure is logged once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from typing import Any

from relay.hls.packager import ClosedSegment, SegmentSpan
from relay.hls.window import WINDOW_MAX_S, HlsWindow
from relay.store import TranscriptError, TranscriptStore

_LOGGER = logging.getLogger(__name__)

_SAVE_PRESENTATION = (
    "INSERT INTO hls_presentations (id, source_key, state, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at"
)
_SAVE_SEGMENT = (
    "INSERT OR REPLACE INTO hls_segments (presentation, sn, start_s, duration_s, cc, program_date_time, bodies) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class SavedSegments:
    """Reads and writes one relay's HLS presentations in its transcript (any thread)."""

    def __init__(self, store: TranscriptStore) -> None:
        self._store = store
        self._failing = False

    def save(self, window: HlsWindow, source_key: str, segment: ClosedSegment | None = None) -> None:
        """Commit the window's state, and a newly closed segment with it."""
        state = {k: v for k, v in window.state().items() if k != "segments"}
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (_SAVE_PRESENTATION, (window.presentation, source_key, json.dumps(state), time.time()))
        ]
        if segment is not None:
            span = segment.span
            bodies = json.dumps({lang: body.decode() for lang, body in segment.bodies.items()}, ensure_ascii=False)
            statements.append((_SAVE_SEGMENT, (window.presentation, span.sn, span.start_s, span.duration_s,
                                               span.cc, span.program_date_time, bodies)))
        try:
            self._store.write_rows(statements)
        except (sqlite3.Error, TranscriptError) as exc:
            if not self._failing:
                _LOGGER.warning("HLS segments not saved (%s): served from memory; a restart would lose them", exc)
            self._failing = True
            return
        if self._failing:
            _LOGGER.info("HLS segments saved again")
        self._failing = False

    def load(self, source_key: str) -> HlsWindow | None:
        """The latest presentation of `source_key` that had not ended, with its window, or None."""
        try:
            rows = self._store.read_rows(
                "SELECT id, state FROM hls_presentations WHERE source_key = ? ORDER BY updated_at DESC LIMIT 1",
                (source_key,))
            if not rows:
                return None
            presentation, state_json = rows[0]
            state = json.loads(state_json)
            if state.get("ended"):
                return None
            segments = self._store.read_rows(
                "SELECT sn, start_s, duration_s, cc, program_date_time, bodies FROM hls_segments "
                "WHERE presentation = ? ORDER BY sn DESC LIMIT ?", (presentation, int(WINDOW_MAX_S)))
        except (sqlite3.Error, TranscriptError, ValueError) as exc:
            _LOGGER.warning("HLS segments of the last run not read (%s): a new presentation starts", exc)
            return None
        window = HlsWindow.from_state({**state, "segments": []}, {})
        for sn, start_s, duration_s, cc, pdt, bodies in reversed(segments):
            files = {lang: text.encode() for lang, text in json.loads(bodies).items()}
            window.add(ClosedSegment(SegmentSpan(sn, start_s, duration_s, cc, pdt), files))
        return window
