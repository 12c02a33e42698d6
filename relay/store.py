"""Durable transcript: every final caption in SQLite (WAL), and a hub backlog on top of it.

What is stored: every numbered frame the hub published, in one `seq`: the finals of
every channel (floor and booths) in `finals`, and the language tracks' captions
(`type: "track"`) in `tracks`. A seq is in exactly one of the two tables.

Schema (version 2) and its migration from version 1: `relay.transcript_schema`.

Durability: WAL with `synchronous=NORMAL` (the default). A commit write(2)s the
transaction to the WAL without fsync, so a final whose `append` returned survives
kill -9 of the process, and the database is never corrupted. A power cut or kernel
crash may lose the finals the kernel had not yet written back (seconds, up to its
30 s writeback delay; checkpoints fsync). `synchronous=FULL` fsyncs the WAL on every
commit and survives power loss too, at 5-10x the cost per final (bench/store.py).
One relay process writes a transcript; others (`relay export`) may read it meanwhile.

Threads: one writer connection behind a lock (any thread may append), one reader
connection per thread: in WAL mode readers never wait for the writer.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .messages import Caption
from .pending import PendingFinals
from .protocol import Frame, track_from_message, websocket_text_frame
from .tracks.model import TrackCaption
from .transcript_schema import (
    COLUMNS, INSERT, INSERT_TRACK, MIGRATABLE, SCHEMA_VERSION, TRACK_COLUMNS, StoredFinal, TranscriptError,
    caption_row, create_or_migrate, stored_final, stored_track, track_row,
)  # fmt: skip

_LOGGER = logging.getLogger(__name__)

TRANSCRIPT_FILE = "transcript.sqlite3"
# A checkpoint (WAL copied into the database, fsynced) takes 10-100 ms here. SQLite would
# run it inside the commit crossing 1000 WAL pages, i.e. in `append` on the event loop;
# instead the writer never checkpoints and a thread does, every CHECKPOINT_EVERY finals.
CHECKPOINT_EVERY = 500
WRITE_BUSY_TIMEOUT_MS = 100

_SYNCHRONOUS = ("NORMAL", "FULL")


@dataclass(frozen=True, slots=True)
class TranscriptMeta:
    """What the transcript records about its event."""

    schema_version: int
    session: str
    started_at: float


def transcript_path(data_dir: Path) -> Path:
    """Where the transcript lives in a data directory."""
    return data_dir / TRANSCRIPT_FILE


def stored_frame(seq: int, frame_json: str) -> Frame:
    """Rebuild the hub's frame of a stored final: byte for byte what was sent live."""
    text = frame_json.encode()
    return Frame(text=text, wire=websocket_text_frame(text), seq=seq, final=True)


class TranscriptStore:
    """The finals of one channel in an SQLite database in WAL mode."""

    def __init__(self, path: Path, *, synchronous: str = "NORMAL", readonly: bool = False) -> None:
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {_SYNCHRONOUS}, got {synchronous!r}")
        if readonly and not path.is_file():
            raise TranscriptError(f"no transcript at {path}")
        self.path = path
        self.readonly = readonly
        self._lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._checkpoints = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="relay-checkpoint")
        self._writer = None if readonly else self._open_writer(synchronous)
        self.meta = self._read_meta()
        self._last_seq = self._query_last_seq()
        _LOGGER.info("Transcript %s: %d finals, session %s", path, self._last_seq, self.meta.session)

    def _connect(self) -> sqlite3.Connection:
        """A new connection, closed by `close()` whichever thread it serves."""
        uri = f"{self.path.resolve().as_uri()}?mode={'ro' if self.readonly else 'rwc'}"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 5000")
        with self._lock:
            if self._closed:
                conn.close()
                raise TranscriptError(f"transcript {self.path} is closed")
            self._connections.append(conn)
        return conn

    def _open_writer(self, synchronous: str) -> sqlite3.Connection:
        """Open the writer: WAL mode, the sync level, the schema and the event's meta."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise TranscriptError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        create_or_migrate(conn, self.path)
        # Appends run on the event loop: a database another process keeps busy must fail them
        # fast (SqliteBacklog keeps the final and retries off the loop), not stall captions 5 s.
        conn.execute(f"PRAGMA busy_timeout = {WRITE_BUSY_TIMEOUT_MS}")
        return conn

    def _reader(self) -> sqlite3.Connection:
        """This thread's reading connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def _read_meta(self) -> TranscriptMeta:
        """Read and check the meta table."""
        try:
            values = dict(self._reader().execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as error:
            raise TranscriptError(f"{self.path} is not a relay transcript: {error}") from error
        version = values.get("schema_version")
        if version != str(SCHEMA_VERSION) and not (self.readonly and version in MIGRATABLE):
            raise TranscriptError(f"{self.path}: schema {version}, expected {SCHEMA_VERSION}")
        found = self._reader().execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tracks'")
        self._has_tracks = found.fetchone() is not None
        return TranscriptMeta(int(version or 0), values["session"], float(values["started_at"]))

    def _query_last_seq(self) -> int:
        """The highest stored seq (channel final or track caption), 0 when empty."""
        sql = "SELECT max(seq) FROM finals"
        if self._has_tracks:
            sql = "SELECT max(m) FROM (SELECT max(seq) AS m FROM finals UNION ALL SELECT max(seq) FROM tracks)"
        return int(self._reader().execute(sql).fetchone()[0] or 0)

    def append(
        self, seq: int, caption: Caption | TrackCaption, frame_json: str, published_at: float | None = None
    ) -> None:
        """Commit final or track caption `seq`; the same one again is a no-op, a gap or a different one raises."""
        if self._writer is None:
            raise TranscriptError(f"transcript {self.path} is read-only")
        when = time.time() if published_at is None else published_at
        if isinstance(caption, TrackCaption):
            sql, row = INSERT_TRACK, track_row(seq, caption, frame_json, when)
        elif not caption.is_final:
            raise ValueError(f"only finals are stored, got a {caption.kind}")
        else:
            sql, row = INSERT, caption_row(seq, caption, frame_json, when)
        with self._lock:
            last = self._last_seq
            if seq == last + 1:
                self._writer.execute(sql, row)  # autocommit: committed when this returns
                self._last_seq = seq
        if seq == last + 1:
            if seq % CHECKPOINT_EVERY == 0:
                self._checkpoints.submit(self.checkpoint)
        elif 1 <= seq <= last:
            self._check_duplicate(seq, frame_json)
        else:
            raise TranscriptError(f"final {seq} would leave a gap after {last}")

    def _check_duplicate(self, seq: int, frame_json: str) -> None:
        """Accept the very same final stored again, refuse a different one."""
        sql = "SELECT frame FROM finals WHERE seq = ?"
        if self._has_tracks:
            sql += " UNION ALL SELECT frame FROM tracks WHERE seq = ?"
        stored = self._reader().execute(sql, (seq,) * sql.count("?")).fetchone()
        if stored is None or stored[0] != frame_json:
            raise TranscriptError(f"final {seq} is already stored with different content")
        _LOGGER.debug("Final %d already stored", seq)

    def checkpoint(self) -> None:
        """Copy committed WAL pages into the database without blocking the writer."""
        busy, wal_pages, copied = self._reader().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        _LOGGER.debug("Checkpoint: %d of %d WAL pages copied (busy %d)", copied, wal_pages, busy)

    def last_seq(self) -> int:
        """The seq of the last stored final (0 when empty): the hub resumes numbering after it."""
        return self._last_seq if self._writer is not None else self._query_last_seq()

    def finals_since(self, seq: int, limit: int | None = None) -> list[StoredFinal]:
        """Stored finals and track captions with seq > `seq`, oldest first, at most `limit`."""
        count = -1 if limit is None else limit
        sql = f"SELECT {COLUMNS} FROM finals WHERE seq > ? ORDER BY seq LIMIT ?"
        finals = [stored_final(row) for row in self._reader().execute(sql, (seq, count)).fetchall()]
        if not self._has_tracks:
            return finals
        sql = f"SELECT {TRACK_COLUMNS} FROM tracks WHERE seq > ? ORDER BY seq LIMIT ?"
        tracks = [stored_track(row) for row in self._reader().execute(sql, (seq, count)).fetchall()]
        merged = sorted([*finals, *tracks], key=lambda stored: stored.seq)
        return merged if limit is None else merged[:limit]

    def frames_since(self, seq: int, limit: int | None = None) -> list[Frame]:
        """The frames of finals and track captions with seq > `seq`, oldest first: replay without decoding."""
        sql = "SELECT seq, frame FROM finals WHERE seq > ?"
        if self._has_tracks:
            sql += " UNION ALL SELECT seq, frame FROM tracks WHERE seq > ?"
        params = (*(seq,) * sql.count("?"), -1 if limit is None else limit)
        rows = self._reader().execute(f"{sql} ORDER BY seq LIMIT ?", params).fetchall()
        return [stored_frame(row_seq, frame_json) for row_seq, frame_json in rows]

    def all_finals(self, lang: str | None = None) -> list[StoredFinal]:
        """The whole transcript in order (track rows included); with `lang`, only the channel finals spoken in it."""
        if lang is None:
            return self.finals_since(0)
        sql = f"SELECT {COLUMNS} FROM finals WHERE lang = ? ORDER BY seq"
        return [stored_final(row) for row in self._reader().execute(sql, (lang,)).fetchall()]

    def track(self, lang: str) -> list[StoredFinal]:
        """The captions of one language track, in order (empty for a transcript without tracks)."""
        if not self._has_tracks:
            return []
        sql = f"SELECT {TRACK_COLUMNS} FROM tracks WHERE track_lang = ? ORDER BY seq"
        return [stored_track(row) for row in self._reader().execute(sql, (lang,)).fetchall()]

    def write_rows(self, statements: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
        """Commit statements on other tables than the finals (the HLS segments), in one transaction."""
        if self._writer is None:
            raise TranscriptError(f"transcript {self.path} is read-only")
        with self._lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    self._writer.execute(sql, params)
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    def read_rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query on this thread's reading connection."""
        return self._reader().execute(sql, params).fetchall()

    def journal_mode(self) -> str:
        """The database's journal mode ("wal")."""
        return str(self._reader().execute("PRAGMA journal_mode").fetchone()[0]).lower()

    def close(self) -> None:
        """Wait for a running checkpoint, then close every connection; safe to call twice."""
        self._checkpoints.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._closed, connections, self._connections = True, self._connections, []
        for conn in connections:
            conn.close()

    def __enter__(self) -> TranscriptStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def caption_from_message(message: Mapping[str, Any]) -> Caption:
    """Rebuild a caption from its wire form (`relay.protocol.caption_message`)."""
    return Caption(
        kind=message["type"], id=message["id"], lang=message["lang"], text=message["text"],
        start=message["start"], end=message["end"], wall=message["wall"], channel=message["channel"],
        translations=message.get("translations", {}), mt=message.get("mt", {}), mt_ms=message.get("mt_ms"),
        speaker=message.get("speaker", ""),
    )  # fmt: skip


class SqliteBacklog:
    """The hub's durable `FinalsBacklog` over a `TranscriptStore`.

    `append` writes through synchronously (tens of µs with synchronous=NORMAL), so a final
    is committed before `CaptionHub.publish` delivers it. The hub serves replays from its
    own memory ring of recent finals; this backlog is read only for resumes from further
    back, on a thread it owns. A read holds at most `max_replay` finals: a viewer resuming
    from further back gets the latest `max_replay`. `recent` finals may also be kept in
    memory here (off by default: the hub's ring already holds them).

    A failing database (disk full, locked, read-only) never stops the captions: the final
    stays in memory, in order with those after it, and a thread of this backlog writes
    them as soon as the database takes them again (at once when a new final arrives, or
    every `retry_s`). Until then the memory tail keeps every unwritten final for replay.
    """

    def __init__(self, store: TranscriptStore, recent: int = 0, max_replay: int = 2000, retry_s: float = 2.0) -> None:
        self.store = store
        self._recent = recent
        self._max_replay = max(recent, max_replay)
        # The last `recent` finals and every final not yet written; only the event loop touches it.
        self._tail = collections.deque(self.latest(recent))
        self._last_appended = store.last_seq()
        self._reads = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="relay-transcript")
        self._pending = PendingFinals(self._store_append, retry_s)

    def latest(self, count: int) -> list[Frame]:
        """The last `count` stored finals, oldest first (a synchronous read, for start-up)."""
        if count <= 0:
            return []
        return self.store.frames_since(max(0, self.store.last_seq() - count))

    @property
    def last_seq(self) -> int:
        """Seq of the last final appended (written or still in memory): the hub numbers on from it."""
        return self._last_appended

    @property
    def session(self) -> str:
        """The event's session id, kept across restarts so viewers resume."""
        return self.store.meta.session

    @property
    def store_ok(self) -> bool:
        """False while finals wait in memory for a failing database."""
        return self._pending.count == 0

    @property
    def store_pending(self) -> int:
        """Finals published but not yet written to the database."""
        return self._pending.count

    @property
    def store_failures(self) -> int:
        """Times the database started failing, since start."""
        return self._pending.failures

    @property
    def store_error(self) -> str | None:
        """The database's last error while finals wait, else None."""
        return self._pending.error

    def append(self, frame: Frame) -> None:
        """Commit a final to the store (or keep it for a retry if the store fails), and in the memory tail."""
        if frame.seq is None or not frame.final:
            raise ValueError("only finals with a seq go to the transcript")
        if frame.seq <= self._last_appended:
            if frame.seq <= self.store.last_seq():
                self._store_append(frame)  # the same final again is a no-op, a different one raises
            return
        if frame.seq != self._last_appended + 1:
            raise TranscriptError(f"final {frame.seq} would leave a gap after {self._last_appended}")
        self._pending.write(frame)
        self._last_appended = frame.seq
        self._tail.append(frame)
        written = self.store.last_seq()
        while len(self._tail) > self._recent and (self._tail[0].seq or 0) <= written:
            self._tail.popleft()

    def _store_append(self, frame: Frame) -> None:
        """Write one final (any thread); raises sqlite3.Error when the database fails."""
        assert frame.seq is not None
        caption, sent = frame.item, frame.sent
        if caption is None:  # a frame read back: its caption only in its JSON
            message = json.loads(frame.text)
            caption = track_from_message(message) if message.get("type") == "track" else caption_from_message(message)
            sent = message.get("sent")
        # Publication time from the frame: a final written late by a retry keeps when it was sent.
        self.store.append(frame.seq, caption, frame.text.decode(), sent)

    async def finals_since(self, seq: int, limit: int | None = None) -> Sequence[Frame]:
        """Finals after `seq`: the next `limit`, or without a limit the latest `max_replay` at most."""
        last = self.last_seq
        if seq >= last:
            return []
        if limit is None:
            seq = max(seq, last - self._max_replay)
        limit = self._max_replay if limit is None else min(limit, self._max_replay)
        first = self._tail[0].seq if self._tail else None
        if first is not None and seq >= first - 1:
            return list(itertools.islice(self._tail, seq - first + 1, seq - first + 1 + limit))
        loop = asyncio.get_running_loop()
        stored = await loop.run_in_executor(self._reads, self.store.frames_since, seq, limit)
        read_to = (stored[-1].seq or seq) if stored else seq
        unwritten = [frame for frame in self._tail if (frame.seq or 0) > read_to]
        return (stored + unwritten)[:limit]

    def close(self) -> None:
        """Write what is still unwritten if the store allows, stop the threads; the store stays open."""
        self._pending.close()
        self._reads.shutdown(wait=True, cancel_futures=True)

    def __len__(self) -> int:
        return len(self._tail)


