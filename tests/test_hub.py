"""CaptionHub logic in isolation: numbering, backlog, replay without gap or duplicate, drops."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from relay.hub import CaptionHub, MemoryBacklog
from relay.messages import Caption, SourceState
from relay.protocol import CLOSE_TOO_SLOW, Frame, websocket_text_frame


def caption(n: int, kind: str = "final", text: str | None = None) -> Caption:
    words = text if text is not None else f"sentence {n}"
    return Caption(
        kind=kind,
        id=f"u{n}",
        lang="en",
        text=words,
        start=float(n),
        end=n + 0.9,
        wall=1_700_000_000.0 + n,
        translations={"en": words, "fr": f"phrase {n}", "es": f"frase {n}"},
        mt={"fr": "opus-mt", "es": "opus-mt"},
    )


class FakeViewer:
    """Records frames; refuses once `capacity` frames are held."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.frames: list[Frame] = []
        self.capacity = capacity
        self.dropped: tuple[int, str] | None = None
        self.writes = 0  # batches written

    def send(self, frame: Frame, *, replay: bool = False) -> bool:
        if len(self.frames) >= self.capacity and not replay:
            return False
        self.frames.append(frame)
        return True

    def send_batch(self, frames: Sequence[Frame], wire: bytes) -> bool:
        assert wire == b"".join(frame.wire for frame in frames)
        if len(self.frames) >= self.capacity:
            return False
        self.writes += 1
        self.frames.extend(frames)
        return True

    async def drained(self) -> bool:
        return self.dropped is None

    def drop(self, code: int, reason: str) -> None:
        self.dropped = (code, reason)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(frame.text) for frame in self.frames]

    def final_seqs(self) -> list[int]:
        return [m["seq"] for m in self.messages if m["type"] == "final"]


class GatedBacklog(MemoryBacklog):
    """A backlog whose reads wait for a gate, like a slow database."""

    def __init__(self, maxlen: int) -> None:
        super().__init__(maxlen)
        self.gate = asyncio.Event()
        self.reading = asyncio.Event()

    async def finals_since(self, seq: int, limit: int | None = None) -> Sequence[Frame]:
        self.reading.set()
        await self.gate.wait()
        return await super().finals_since(seq, limit)


def test_finals_get_consecutive_seqs_and_partials_the_next_one() -> None:
    hub = CaptionHub()
    assert hub.publish(caption(1, "partial")) == 1
    assert hub.publish(caption(1)) == 1
    assert hub.publish(caption(2, "partial")) == 2
    assert hub.publish(caption(2)) == 2
    assert hub.seq == 2


async def test_every_viewer_gets_the_same_encoded_frame() -> None:
    hub = CaptionHub()
    viewers = [FakeViewer() for _ in range(3)]
    for viewer in viewers:
        await hub.attach(viewer)
    hub.publish(caption(1))
    last = [viewer.frames[-1] for viewer in viewers]
    assert all(frame is last[0] for frame in last)
    assert last[0].wire == websocket_text_frame(last[0].text)


async def test_hello_comes_first_with_languages_and_current_seq() -> None:
    hub = CaptionHub(languages=("en", "fr"))
    hub.publish(caption(1))
    viewer = FakeViewer()
    await hub.attach(viewer)
    hello = viewer.messages[0]
    assert hello["type"] == "hello"
    assert hello["languages"] == ["en", "fr"]
    assert hello["seq"] == 1
    assert hello["session"] == hub.session


async def test_new_viewer_gets_the_bounded_backlog() -> None:
    hub = CaptionHub(backlog=3)
    for n in range(1, 6):
        hub.publish(caption(n))
    viewer = FakeViewer()
    await hub.attach(viewer)
    assert viewer.final_seqs() == [3, 4, 5]


async def test_resume_sends_only_finals_after_since() -> None:
    hub = CaptionHub()
    for n in range(1, 6):
        hub.publish(caption(n))
    viewer = FakeViewer()
    await hub.attach(viewer, since=3, session=hub.session)
    assert viewer.messages[0]["resumed"] is True
    assert viewer.final_seqs() == [4, 5]


async def test_since_from_another_session_gets_the_whole_backlog() -> None:
    hub = CaptionHub()
    for n in range(1, 4):
        hub.publish(caption(n))
    viewer = FakeViewer()
    await hub.attach(viewer, since=2, session="someone-else")
    assert viewer.messages[0]["resumed"] is False
    assert viewer.final_seqs() == [1, 2, 3]


async def test_publishes_racing_a_slow_replay_are_neither_lost_nor_doubled() -> None:
    backlog = GatedBacklog(100)
    hub = CaptionHub(backlog=1, store=backlog)  # memory holds final 3 only: 2 is read from the store
    for n in range(1, 4):
        hub.publish(caption(n))
    viewer = FakeViewer()
    attaching = asyncio.create_task(hub.attach(viewer, since=1))
    await asyncio.wait_for(backlog.reading.wait(), 5)
    hub.publish(caption(4, "partial"))
    hub.publish(caption(4))  # lands in the backlog too: must not be sent twice
    hub.publish(caption(5, "partial"))
    backlog.gate.set()
    await asyncio.wait_for(attaching, 5)
    hub.publish(caption(5))
    assert viewer.final_seqs() == [2, 3, 4, 5]
    kinds = [(m["type"], m.get("seq")) for m in viewer.messages[1:]]
    assert kinds == [("final", 2), ("final", 3), ("partial", 4), ("final", 4), ("partial", 5), ("final", 5)]


async def test_restarted_hub_numbers_on_and_keeps_the_session() -> None:
    backlog = MemoryBacklog(100)
    first = CaptionHub(store=backlog)
    for n in range(1, 4):
        first.publish(caption(n))
    second = CaptionHub(store=backlog, last_seq=first.seq, session=first.session)
    assert second.publish(caption(4)) == 4
    viewer = FakeViewer()
    await second.attach(viewer, since=2, session=first.session)
    assert viewer.messages[0]["resumed"] is True
    assert viewer.final_seqs() == [3, 4]


async def test_full_viewer_is_dropped_and_others_keep_receiving() -> None:
    hub = CaptionHub()
    slow, fast = FakeViewer(capacity=3), FakeViewer()
    await hub.attach(slow)
    await hub.attach(fast)
    for n in range(1, 6):
        hub.publish(caption(n))
    assert slow.dropped is not None and slow.dropped[0] == CLOSE_TOO_SLOW
    assert hub.viewer_count == 1
    assert fast.final_seqs() == [1, 2, 3, 4, 5]


async def test_viewer_replaying_too_long_is_dropped() -> None:
    backlog = GatedBacklog(10)
    hub = CaptionHub(backlog=1, store=backlog, max_pending=2)
    for n in range(1, 3):
        hub.publish(caption(n))
    viewer = FakeViewer()
    attaching = asyncio.create_task(hub.attach(viewer, since=0))
    await asyncio.wait_for(backlog.reading.wait(), 5)
    for n in range(3, 6):
        hub.publish(caption(n))
    backlog.gate.set()
    await asyncio.wait_for(attaching, 5)
    assert viewer.dropped is not None
    assert hub.viewer_count == 0


async def test_detached_viewer_gets_nothing_more() -> None:
    hub = CaptionHub()
    viewer = FakeViewer()
    await hub.attach(viewer)
    hub.detach(viewer)
    hub.publish(caption(1))
    assert viewer.final_seqs() == []


async def test_source_state_and_end_reach_viewers_and_later_hellos() -> None:
    hub = CaptionHub()
    viewer = FakeViewer()
    await hub.attach(viewer)
    hub.source_state(SourceState.RECONNECTING)
    hub.end_session("meeting closed")
    status, end = viewer.messages[-2:]
    assert status == {"type": "status", "channel": "floor", "state": "reconnecting", "label": "floor"}
    assert end["type"] == "end" and end["reason"] == "meeting closed"
    late = FakeViewer()
    await hub.attach(late)
    assert late.messages[0]["source"]["state"] == "reconnecting"
    assert late.messages[0]["ended"] == "meeting closed"


def test_caption_for_another_channel_is_refused() -> None:
    hub = CaptionHub(channel="floor")
    other = Caption(kind="final", id="x", lang="en", text="hi", start=0, end=1, wall=0, channel="booth-fr")
    with pytest.raises(ValueError):
        hub.publish(other)


async def test_caption_message_carries_caption_fields() -> None:
    hub = CaptionHub()
    viewer = FakeViewer()
    await hub.attach(viewer)
    hub.publish(caption(7, text='<img src=x onerror=alert(1)> "quoted"'))
    msg = viewer.messages[-1]
    assert msg["text"] == '<img src=x onerror=alert(1)> "quoted"'
    assert msg["translations"]["fr"] == "phrase 7"
    assert msg["mt"] == {"fr": "opus-mt", "es": "opus-mt"}
    assert (msg["start"], msg["end"], msg["wall"], msg["lang"]) == (7.0, 7.9, 1_700_000_007.0, "en")


def test_an_edge_hub_delivers_a_read_in_one_write_per_viewer_each_final_once() -> None:
    from relay.protocol import encode_caption

    source = CaptionHub()  # the relay's numbering
    partial, final = (lambda n: encode_caption(caption(n, "partial"), n)), (lambda n: encode_caption(caption(n), n))
    frames = [partial(1), final(1), final(2), final(3), partial(4), final(4)]
    edge = CaptionHub()
    fast, full = FakeViewer(), FakeViewer(capacity=0)
    asyncio.run(edge.attach(fast))
    asyncio.run(edge.attach(full))
    fast.frames.clear()
    edge.deliver_batch(frames[:3])
    edge.deliver_batch(frames[2:])  # final 2 again (a read overlapping the last): delivered once
    assert fast.writes == 2
    assert [(m["type"], m["seq"]) for m in fast.messages] == [
        ("partial", 1), ("final", 1), ("final", 2), ("final", 3), ("partial", 4), ("final", 4)]
    assert edge.seq == 4 and full.dropped is not None and full.dropped[0] == CLOSE_TOO_SLOW
    late = FakeViewer()
    asyncio.run(edge.attach(late))  # a replay from the edge's ring: the finals it delivered
    assert [m["seq"] for m in late.messages if m["type"] == "final"] == [1, 2, 3, 4]
    assert source.seq == 0
