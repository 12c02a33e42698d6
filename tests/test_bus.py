"""The event on Redis Streams with a real redis-server: publisher → stream → edge hub, outages included."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis.asyncio import Redis

from relay.bus.feed import RedisBacklog, recent_finals
from relay.bus.publisher import RedisPublisher
from relay.bus.stream import EventMeta, frames_key
from relay.edge import start_edge
from relay.hub import CaptionHub, MemoryBacklog
from relay.messages import Caption
from relay.protocol import Frame
from tests.support.redis_server import RedisServer

EVENT = "bus-test"


class RecordingViewer:
    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.batches: list[int] = []  # frames per send_batch

    def send(self, frame: Frame, *, replay: bool = False) -> bool:
        self.messages.append(json.loads(frame.text))
        return True

    def send_batch(self, frames: list[Frame], wire: bytes) -> bool:
        self.batches.append(len(frames))
        return all(self.send(frame) for frame in frames)

    async def drained(self) -> bool:
        return True

    def drop(self, code: int, reason: str) -> None:
        raise AssertionError(f"dropped: {code} {reason}")

    def finals(self) -> list[tuple[int, str]]:
        return [(m["seq"], m["text"]) for m in self.messages if m["type"] == "final"]


def caption(n: int, kind: str = "final") -> Caption:
    return Caption(kind=kind, id=f"u{n}", lang="en", text=f"sentence {n} <b>&", start=n, end=n + 1.0, wall=n + 1.5)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


async def until(check, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


class Relay:
    """The transcribing relay's hub with its durable finals and a publisher."""

    def __init__(self, url: str) -> None:
        self.finals = MemoryBacklog(100_000)  # the relay's durable finals (SqliteBacklog in the relay)
        self.hub = CaptionHub(store=self.finals, channels=[("floor", None)])
        meta = EventMeta(self.hub.session, list(self.hub.channels.items()), self.hub.tracks, self.hub.languages,
                         self.hub.label, self.hub.states)
        self.redis = Redis.from_url(url, socket_timeout=5)
        self.publisher = RedisPublisher(self.redis, EVENT, meta, self.finals, url)
        self.hub.taps.append(self.publisher.offer)
        self.task = asyncio.create_task(self.publisher.run())

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.redis.aclose()


async def test_an_edge_delivers_the_relays_frames_in_order_and_resumes_from_redis(redis_server):
    relay = Relay(redis_server.url)
    for n in range(1, 6):
        relay.hub.publish(caption(n, "partial"))
        relay.hub.publish(caption(n))
    await until(lambda: relay.publisher.stream_seq == 5 and not relay.publisher.queued)
    edge_redis = Redis.from_url(redis_server.url, socket_timeout=10)
    edge = await start_edge(edge_redis, EVENT, "test")
    hub = edge.ref.hub
    assert hub.session == relay.hub.session and hub.seq == 5
    reading = asyncio.create_task(edge.follow())
    viewer = RecordingViewer()
    await hub.attach(viewer)
    for n in range(6, 9):
        relay.hub.publish(caption(n, "partial"))
        relay.hub.publish(caption(n))
    await until(lambda: hub.seq == 8)
    assert viewer.finals() == [(n, f"sentence {n} <b>&") for n in range(1, 9)]
    partials = [m["seq"] for m in viewer.messages if m["type"] == "partial"]
    assert partials == [6, 7, 8]  # live ones, each before its final
    # A far resume is one XRANGE: the edge's ring is bypassed by asking its backlog directly.
    far = await RedisBacklog(edge_redis, frames_key(EVENT, hub.session), [], edge.counters).finals_since(2, 3)
    assert [f.seq for f in far] == [3, 4, 5]
    reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)
    await edge_redis.aclose()
    await relay.close()


@pytest.mark.parametrize("wiped", [False, True], ids=["with its data", "without its data"])
async def test_redis_killed_and_back_loses_and_doubles_nothing(redis_server, wiped):
    relay = Relay(redis_server.url)
    relay.hub.publish(caption(1))
    await until(lambda: relay.publisher.stream_seq == 1 and not relay.publisher.queued)
    edge_redis = Redis.from_url(redis_server.url, socket_timeout=10)
    edge = await start_edge(edge_redis, EVENT, "test")
    hub, feed = edge.current.hub, edge.current.feed
    reading = asyncio.create_task(edge.follow())
    viewer = RecordingViewer()
    await hub.attach(viewer)
    redis_server.kill()
    for n in range(2, 5):  # captioned while Redis is down
        relay.hub.publish(caption(n, "partial"))
        relay.hub.publish(caption(n))
    await until(lambda: not feed.connected and not relay.publisher.connected)
    assert any(m["type"] == "status" and m["state"] == "reconnecting" for m in viewer.messages)
    redis_server.start(wipe=wiped)
    relay.hub.publish(caption(5))
    await until(lambda: hub.seq == 5, 20)
    assert viewer.finals() == [(n, f"sentence {n} <b>&") for n in range(1, 6)]
    statuses = [m["state"] for m in viewer.messages if m["type"] == "status"]
    assert feed.connected and statuses[-1] != "reconnecting", statuses  # told it is back
    stream = frames_key(EVENT, relay.hub.session)
    finals, _, _ = await recent_finals(edge_redis, stream)
    assert [f.seq for f in finals] == ([1, 2, 3, 4, 5])  # republished from the relay's finals if wiped
    assert relay.publisher.republished >= (4 if wiped else 3)  # the finals Redis missed
    reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)
    await edge_redis.aclose()
    await relay.close()


async def test_a_stalled_redis_is_told_to_edge_viewers_and_costs_no_final(redis_server):
    import signal

    from relay.edge import redis_client

    relay = Relay(redis_server.url)
    relay.hub.publish(caption(1))
    await until(lambda: relay.publisher.stream_seq == 1 and not relay.publisher.queued)
    edge_redis = redis_client(redis_server.url)
    edge = await start_edge(edge_redis, EVENT, "test")
    hub, feed = edge.current.hub, edge.current.feed
    reading = asyncio.create_task(edge.follow())
    viewer = RecordingViewer()
    await hub.attach(viewer)
    redis_server.proc.send_signal(signal.SIGSTOP)  # alive, connected, silent
    try:
        await until(lambda: not feed.connected, 20)  # noticed within BLOCK + grace, not frozen
        assert [m["state"] for m in viewer.messages if m["type"] == "status"][-1] == "reconnecting"
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
    relay.hub.publish(caption(2))
    await until(lambda: hub.seq == 2, 30)
    assert viewer.finals() == [(1, "sentence 1 <b>&"), (2, "sentence 2 <b>&")]
    assert [m["state"] for m in viewer.messages if m["type"] == "status"][-1] != "reconnecting"
    reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)
    await edge_redis.aclose()
    await relay.close()


class ClosableViewer(RecordingViewer):
    """A viewer whose connection the edge may close (recorded, not an error)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed: tuple[int, str] | None = None

    def drop(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_an_edge_follows_the_event_into_a_new_session_without_restart(redis_server):
    first = Relay(redis_server.url)
    first.hub.publish(caption(1))
    await until(lambda: first.publisher.stream_seq == 1 and not first.publisher.queued)
    edge_redis = Redis.from_url(redis_server.url, socket_timeout=10)
    edge = await start_edge(edge_redis, EVENT, "test")
    following = asyncio.create_task(edge.follow())
    early = ClosableViewer()
    await edge.ref.hub.attach(early)
    first.hub.publish(caption(2))
    first.hub.end_session("operator stop")
    await until(lambda: any(m["type"] == "end" for m in early.messages))
    await first.close()
    second = Relay(redis_server.url)  # a relay started with --new-event: another session, seq from 1
    assert second.hub.session != first.hub.session
    second.hub.publish(caption(11))
    await until(lambda: edge.ref.hub.session == second.hub.session, 20)
    assert early.closed is not None and early.closed[0] == 1012  # told to reconnect into the new session
    assert early.finals() == [(1, "sentence 1 <b>&"), (2, "sentence 2 <b>&")]
    late = ClosableViewer()
    await edge.ref.hub.attach(late, since=2, session=first.hub.session)  # resumes from the old session
    second.hub.publish(caption(12))
    await until(lambda: len(late.finals()) == 2)
    hello = late.messages[0]
    assert hello["type"] == "hello" and hello["session"] == second.hub.session and not hello["resumed"]
    assert late.finals() == [(1, "sentence 11 <b>&"), (2, "sentence 12 <b>&")]
    assert late.closed is None and not any(m["type"] == "end" for m in late.messages)
    following.cancel()
    await asyncio.gather(following, return_exceptions=True)
    await edge_redis.aclose()
    await second.close()


async def test_a_relay_gone_silent_is_told_to_edge_viewers_and_its_return_too(redis_server, monkeypatch):
    from relay.bus import feed as feed_module

    monkeypatch.setattr(feed_module, "RELAY_SILENT_S", 4.0)  # 10 s in service; shorter here
    relay = Relay(redis_server.url)
    relay.hub.source_state("connected")
    relay.hub.publish(caption(1))
    await until(lambda: relay.publisher.stream_seq == 1 and not relay.publisher.queued)
    edge_redis = Redis.from_url(redis_server.url, socket_timeout=10)
    edge = await start_edge(edge_redis, EVENT, "test")
    following = asyncio.create_task(edge.follow())
    viewer = RecordingViewer()
    await edge.ref.hub.attach(viewer)
    await asyncio.sleep(6)  # a quiet room: the relay's heartbeat keeps the edge calm
    assert not edge.current.feed.relay_silent
    assert [m["state"] for m in viewer.messages if m["type"] == "status"] == []
    relay.task.cancel()  # the relay dies without a word (no end)
    await asyncio.gather(relay.task, return_exceptions=True)
    await until(lambda: edge.current.feed.relay_silent, 20)
    assert [m["state"] for m in viewer.messages if m["type"] == "status"] == ["reconnecting"]
    relay.task = asyncio.create_task(relay.publisher.run())  # the relay is back (same session)
    relay.hub.publish(caption(2))
    await until(lambda: edge.ref.hub.seq == 2 and not edge.current.feed.relay_silent, 20)
    assert [m["state"] for m in viewer.messages if m["type"] == "status"][-1] == "connected"
    assert viewer.finals() == [(1, "sentence 1 <b>&"), (2, "sentence 2 <b>&")]
    following.cancel()
    await asyncio.gather(following, return_exceptions=True)
    await edge_redis.aclose()
    await relay.close()
