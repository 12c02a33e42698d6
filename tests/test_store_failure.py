"""A failing transcript database (full disk, busy file) never stops captions; finals are written once it recovers."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect

from relay.hub import CaptionHub
from relay.pipeline import PipelineSettings
from relay.protocol import Frame
from relay.service import RelayService
from relay.source import SourceSettings
from relay.store import SqliteBacklog, TranscriptStore, transcript_path
from tests.test_secrets import RELAY, first_stdout_line, http_get
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


def wait_until(predicate: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
    """Poll (generously bounded) until `predicate` holds."""
    deadline = time.monotonic() + timeout_s
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


async def test_a_real_relay_keeps_captioning_while_its_database_is_locked(tmp_path: Path, live_hls) -> None:
    server = live_hls()
    proc = subprocess.Popen(
        [RELAY, "serve", server.url, "--port", "0", "--data", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    received: dict[int, str] = {}
    try:
        line = await asyncio.to_thread(first_stdout_line, proc, 180.0)
        assert "viewers open" in line, line
        url = line.split("viewers open ", 1)[1].strip().rstrip("/")
        async with connect(url.replace("http", "ws") + "/ws") as ws:
            await finals(ws, received, 1)
            locker = sqlite3.connect(transcript_path(tmp_path), isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")  # as another process would: every write of the relay fails
            await finals(ws, received, 2)
            failing = await asyncio.to_thread(relay_status, tmp_path)
            metrics = await asyncio.to_thread(http_get, url + "/metrics")
            locker.execute("ROLLBACK")
            locker.close()
            await asyncio.to_thread(wait_until, lambda: relay_status(tmp_path)["store"]["ok"], 60.0)
            await finals(ws, received, 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
    assert failing["store"]["ok"] is False and failing["store"]["pending"] >= 1
    assert "locked" in failing["store"]["error"]
    assert "relay_store_ok 0.0" in metrics.splitlines() and "relay_store_failures_total 1.0" in metrics.splitlines()
    with TranscriptStore(transcript_path(tmp_path), readonly=True) as transcript:
        stored = {final.seq: final.frame_json for final in transcript.all_finals()}
    assert list(stored) == list(range(1, len(stored) + 1))
    assert {seq: stored.get(seq) for seq in received} == received  # what viewers got, written once


async def finals(ws: ClientConnection, received: dict[int, str], count: int) -> None:
    """Read until `count` more finals (with text) arrive; keep every final's frame by seq."""
    async with asyncio.timeout(120):
        while count:
            text = str(await ws.recv())
            message = json.loads(text)
            if message["type"] == "final":
                received[message["seq"]] = text
                count -= 1 if message["text"] else 0


def relay_status(data: Path) -> dict:
    command = [RELAY, "status", "--data", str(data), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    return json.loads(result.stdout)
