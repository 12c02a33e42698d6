"""Replays in the hub: from the memory ring, bounded in count and bytes, shared reads, written as the viewer drains."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Sequence
from pathlib import Path

from relay.hub import CaptionHub, MemoryBacklog, ReplayLimits
from relay.protocol import Frame
from relay.store import SqliteBacklog, TranscriptStore, transcript_path
from tests.test_hub import FakeViewer, caption


class CountingBacklog(MemoryBacklog):
    """A durable backlog stand-in that counts reads and can hold them at a gate."""

    def __init__(self, maxlen: int) -> None:
        super().__init__(maxlen)
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def finals_since(self, seq: int, limit: int | None = None) -> Sequence[Frame]:
        self.reads += 1
        await self.gate.wait()
        return await super().finals_since(seq, limit)


class DrainingViewer(FakeViewer):
    """Models a socket buffer: `drained()` waits while more than `limit` bytes are unsent."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.unsent = 0
        self.most_unsent = 0
        self.room = asyncio.Event()

    def send(self, frame: Frame, *, replay: bool = False) -> bool:
        self.unsent += len(frame.wire)
        self.most_unsent = max(self.most_unsent, self.unsent)
        return super().send(frame, replay=replay)

    async def drained(self) -> bool:
        while self.unsent > self.limit:
            self.room.clear()
            await self.room.wait()
        return True

    def read_all(self) -> None:
        self.unsent = 0
        self.room.set()


async def test_first_visit_is_served_from_memory_even_with_a_long_durable_transcript(tmp_path: Path) -> None:
    with TranscriptStore(transcript_path(tmp_path)) as store:
        backlog = SqliteBacklog(store)
        hub = CaptionHub(backlog=500, store=backlog)
        for n in range(1, 2001):
            hub.publish(caption(n))
        viewers = [FakeViewer() for _ in range(50)]
        await asyncio.gather(*(hub.attach(viewer) for viewer in viewers))
        backlog.close()
    assert hub.store_reads == 0
    assert all(viewer.final_seqs() == list(range(1501, 2001)) for viewer in viewers)


async def test_restarted_hub_replays_from_memory_seeded_from_the_store(tmp_path: Path) -> None:
    path = transcript_path(tmp_path)
    with TranscriptStore(path) as store:
        first = CaptionHub(store=SqliteBacklog(store))
        for n in range(1, 31):
            first.publish(caption(n))
    with TranscriptStore(path) as store:
        backlog = SqliteBacklog(store)
        second = CaptionHub(store=backlog, last_seq=backlog.last_seq, session=backlog.session)
        viewer = FakeViewer()
        await second.attach(viewer, since=25, session=backlog.session)
        backlog.close()
    assert viewer.final_seqs() == [26, 27, 28, 29, 30]
    assert second.store_reads == 0


async def test_concurrent_resumes_from_far_back_share_one_read() -> None:
    store = CountingBacklog(5000)
    hub = CaptionHub(backlog=100, store=store)
    for n in range(1, 1001):
        hub.publish(caption(n))
    store.gate.clear()
    viewers = [FakeViewer() for _ in range(40)]
    attaching = [asyncio.create_task(hub.attach(viewer, since=10, session=hub.session)) for viewer in viewers]
    await asyncio.sleep(0)  # every attach is now waiting on the one read
    store.gate.set()
    await asyncio.wait_for(asyncio.gather(*attaching), 5)
    assert store.reads == 1
    assert all(viewer.final_seqs() == list(range(11, 1001)) for viewer in viewers)


async def test_resume_from_beyond_the_resume_limit_gets_the_latest_and_shows_the_gap() -> None:
    store = CountingBacklog(5000)
    hub = CaptionHub(backlog=50, store=store, replay=ReplayLimits(resume_finals=300))
    for n in range(1, 1001):
        hub.publish(caption(n))
    viewer = FakeViewer()
    await hub.attach(viewer, since=5, session=hub.session)
    assert viewer.final_seqs() == list(range(701, 1001))


async def test_replay_is_bounded_in_bytes_keeping_the_newest() -> None:
    hub = CaptionHub(backlog=500, replay=ReplayLimits(replay_bytes=20_000))
    for n in range(1, 501):
        hub.publish(caption(n, text="x" * 900))
    viewer = FakeViewer()
    await hub.attach(viewer)
    seqs = viewer.final_seqs()
    replayed = sum(len(frame.wire) for frame in viewer.frames if frame.final)
    assert seqs == list(range(seqs[0], 501)) and 5 < len(seqs) < 30
    assert replayed <= 20_000


async def test_replay_is_written_as_the_viewer_drains_and_live_captions_follow_without_gap() -> None:
    hub = CaptionHub(backlog=500)
    for n in range(1, 301):
        hub.publish(caption(n, text="y" * 500))
    viewer = DrainingViewer(limit=8_000)
    attaching = asyncio.create_task(hub.attach(viewer))
    sent_before_reading = []
    for n in range(301, 321):
        await asyncio.sleep(0)
        sent_before_reading.append(len(viewer.frames))
        hub.publish(caption(n, "partial"))
        hub.publish(caption(n))
    assert max(sent_before_reading) < 20  # stuck at the buffer limit, not all 300 written
    assert viewer.most_unsent <= 8_000 + 2_000  # the limit plus one frame
    while not attaching.done():
        viewer.read_all()
        await asyncio.sleep(0)
    hub.publish(caption(321))
    assert viewer.final_seqs() == list(range(1, 322))
    messages = [json.loads(frame.text) for frame in viewer.frames[1:]]
    assert [m["seq"] for m in messages] == sorted(m["seq"] for m in messages)


def test_documented_replay_sizes_are_the_code_defaults() -> None:
    docs = Path(__file__).resolve().parent.parent
    protocol, readme = (docs / "docs" / "protocol.md").read_text(), (docs / "README.md").read_text()
    ring = inspect.signature(CaptionHub).parameters["backlog"].default
    limits = ReplayLimits()
    for text in (protocol, readme):
        assert f"last {ring} finals" in text
        assert f"{limits.resume_finals:,} at most" in text
        assert f"{limits.replay_bytes // (1024 * 1024)} MiB" in text
