"""A failing transcript database (full disk, busy file) never stops captions; finals are written once it recovers."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from relay.hub import CaptionHub
from relay.pipeline import PipelineSettings
from relay.protocol import Frame
from relay.service import RelayService
from relay.source import SourceSettings
from relay.store import SqliteBacklog, TranscriptStore, transcript_path
from tests.test_store import RecordingViewer, meeting_caption

TIMEOUT_S = 10.0


def limit_pages(store: TranscriptStore, pages: int | None) -> None:
    """Cap the database at `pages` (None: its current size), as a full disk would; a large cap lifts it."""
    with store._lock:  # the writer connection is the store's; SQLite's own limit makes the failure real
        writer = store._writer
        assert writer is not None
        if pages is None:
            pages = writer.execute("PRAGMA page_count").fetchone()[0]
        writer.execute(f"PRAGMA max_page_count = {pages}")


def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll (generously bounded) until `predicate` holds."""
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def publish_until_the_store_fails(hub: CaptionHub, backlog: SqliteBacklog, first: int) -> int:
    """Publish finals from `first` until one is refused by the database; return the next number."""
    n = first
    while backlog.store_ok:
        assert n < first + 500, "the database never filled up"
        hub.publish(meeting_caption(n))
        n += 1
    return n


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TranscriptStore]:
    with TranscriptStore(transcript_path(tmp_path)) as opened:
        yield opened


def sent_finals(viewer: RecordingViewer) -> list[Frame]:
    return [frame for frame in viewer.frames if frame.final]


async def test_captions_flow_while_the_database_is_full_and_are_written_once_it_recovers(store) -> None:
    backlog = SqliteBacklog(store, retry_s=60.0)  # the retry here is the next final's, not the timer's
    hub = CaptionHub(store=backlog)
    viewer = RecordingViewer()
    await hub.attach(viewer)
    for n in range(1, 4):
        hub.publish(meeting_caption(n))
    limit_pages(store, None)
    n = publish_until_the_store_fails(hub, backlog, 4)
    for _ in range(5):
        hub.publish(meeting_caption(n, kind="partial"))
        hub.publish(meeting_caption(n))
        n += 1
    last = n - 1
    assert [frame.seq for frame in sent_finals(viewer)] == list(range(1, last + 1))
    assert hub.seq == last
    assert not backlog.store_ok and backlog.store_pending >= 6
    assert "full" in (backlog.store_error or "")
    assert store.last_seq() == last - backlog.store_pending
    limit_pages(store, 1_000_000)
    hub.publish(meeting_caption(n))
    wait_until(lambda: backlog.store_ok)
    assert (backlog.store_pending, backlog.store_error, backlog.store_failures) == (0, None, 1)
    assert [final.seq for final in store.all_finals()] == list(range(1, n + 1))
    assert [final.frame_json.encode() for final in store.all_finals()] == [f.text for f in sent_finals(viewer)]
    backlog.close()


async def test_waiting_finals_are_retried_on_a_timer_without_new_finals(store) -> None:
    backlog = SqliteBacklog(store, retry_s=0.05)
    hub = CaptionHub(store=backlog)
    limit_pages(store, None)
    n = publish_until_the_store_fails(hub, backlog, 1)
    limit_pages(store, 1_000_000)
    wait_until(lambda: backlog.store_ok)
    assert [final.seq for final in store.all_finals()] == list(range(1, n))
    backlog.close()


async def test_replay_includes_finals_not_yet_written(store) -> None:
    backlog = SqliteBacklog(store, recent=4, max_replay=1000, retry_s=60.0)
    hub = CaptionHub(store=backlog)
    watcher = RecordingViewer()
    await hub.attach(watcher)
    for n in range(1, 11):
        hub.publish(meeting_caption(n))
    limit_pages(store, None)
    n = publish_until_the_store_fails(hub, backlog, 11)
    for _ in range(8):  # more unwritten finals than the memory tail's usual size
        hub.publish(meeting_caption(n))
        n += 1
    assert backlog.store_pending > 4
    sent = sent_finals(watcher)
    for since in (0, 3, store.last_seq() - 1, n - 3):
        late = RecordingViewer()
        await asyncio.wait_for(hub.attach(late, since=since, session=hub.session), TIMEOUT_S)
        assert sent_finals(late) == sent[since:], since
    limit_pages(store, 1_000_000)
    backlog.close()
    assert [final.seq for final in store.all_finals()] == list(range(1, n))


async def test_a_failing_database_is_logged_once_and_its_recovery_once(store, caplog) -> None:
    caplog.set_level(logging.INFO)
    backlog = SqliteBacklog(store, retry_s=0.01)
    hub = CaptionHub(store=backlog)
    limit_pages(store, None)
    n = publish_until_the_store_fails(hub, backlog, 1)
    for _ in range(20):
        hub.publish(meeting_caption(n))
        n += 1
        await asyncio.sleep(0.01)  # let the timer retry (and fail) meanwhile
    limit_pages(store, 1_000_000)
    wait_until(lambda: backlog.store_ok)
    backlog.close()
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelname for r in records] == ["ERROR", "WARNING"]
    assert "failing" in records[0].getMessage() and "works again" in records[1].getMessage()


async def test_status_and_metrics_show_a_busy_database_and_its_recovery(tmp_path: Path) -> None:
    service = RelayService(PipelineSettings(source=SourceSettings(url="unused.flac")), data_dir=tmp_path)
    service.hub.publish(meeting_caption(1))
    assert service.status()["store"] == {"durable": True, "ok": True, "pending": 0, "error": None}
    other = sqlite3.connect(transcript_path(tmp_path), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock: the relay's writes fail
    for n in range(2, 6):
        service.hub.publish(meeting_caption(n))
    status = service.status()["store"]
    assert (status["ok"], status["pending"]) == (False, 4) and "locked" in status["error"]
    metrics = service.metrics.render()
    for line in ("relay_store_ok 0.0", "relay_store_pending_finals 4.0", "relay_store_failures_total 1.0"):
        assert line in metrics.splitlines(), line
    assert service.hub.seq == 5
    other.execute("ROLLBACK")
    other.close()
    await asyncio.to_thread(wait_until, lambda: service.status()["store"]["ok"])
    assert "relay_store_pending_finals 0.0" in service.metrics.render().splitlines()
    service.close()
    with TranscriptStore(transcript_path(tmp_path), readonly=True) as reopened:
        assert [final.seq for final in reopened.all_finals()] == [1, 2, 3, 4, 5]
