"""Connection limits and a connection storm on a real server: refusals before the upgrade, real viewers miss nothing."""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from relay.hub import CaptionHub, ReplayLimits
from relay.server import SLOTS_KEY, VIEWERS_KEY, ServerSettings, create_app, serve
from relay.store import SqliteBacklog, TranscriptStore, transcript_path
from tests.test_server_protocol import TIMEOUT_S, caption, finals_until, recv_json, wait_until


async def refusal(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and body of a refused WebSocket upgrade."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=headers):
            pass
    return refused.value.response.status_code, refused.value.response.body or b""


async def test_viewers_over_the_per_address_cap_get_429_before_the_upgrade() -> None:
    hub = CaptionHub()
    settings = ServerSettings(max_viewers=100, max_viewers_per_address=3)
    async with serve(create_app(hub, settings=settings)) as base:
        url = base.replace("http://", "ws://") + "/ws"
        viewers = [await connect(url) for _ in range(3)]
        status, body = await refusal(url)
        assert (status, b"too many viewers from your address" in body) == (429, True)
        assert hub.viewer_count == 3
        await viewers.pop().close()
        await wait_until(lambda: hub.viewer_count == 2)
        async with connect(url) as again:  # a slot freed by a viewer leaving is free again
            assert (await recv_json(again))["type"] == "hello"
        for viewer in viewers:
            await viewer.close()


async def test_a_full_relay_answers_503_with_a_reason() -> None:
    hub = CaptionHub()
    settings = ServerSettings(max_viewers=4, max_viewers_per_address=0, trust_forwarded_for=True)
    async with serve(create_app(hub, settings=settings)) as base:
        url = base.replace("http://", "ws://") + "/ws"
        viewers = [await connect(url, additional_headers={"X-Forwarded-For": f"10.0.0.{n}"}) for n in range(4)]
        status, body = await refusal(url, {"X-Forwarded-For": "10.0.0.99"})
        assert status == 503 and b"relay full" in body
        for viewer in viewers:
            await viewer.close()


async def test_behind_a_trusted_proxy_viewers_are_counted_by_forwarded_address() -> None:
    hub = CaptionHub()
    settings = ServerSettings(max_viewers_per_address=2, trust_forwarded_for=True)
    async with serve(create_app(hub, settings=settings)) as base:
        url = base.replace("http://", "ws://") + "/ws"
        # The proxy appends the address it saw; what the client put before it is not trusted.
        first = [await connect(url, additional_headers={"X-Forwarded-For": f"6.6.6.{n}, 192.0.2.1"}) for n in range(2)]
        status, _ = await refusal(url, {"X-Forwarded-For": "192.0.2.1"})
        assert status == 429
        others = [await connect(url, additional_headers={"X-Forwarded-For": "198.51.100.7"}) for _ in range(2)]
        assert hub.viewer_count == 4
        for viewer in first + others:
            await viewer.close()


async def test_a_proxy_adding_its_own_forwarded_for_line_is_the_one_counted() -> None:
    """HAProxy's `option forwardfor` adds a header line after the client's instead of appending to it."""
    hub = CaptionHub()
    settings = ServerSettings(max_viewers_per_address=2, trust_forwarded_for=True)
    async with serve(create_app(hub, settings=settings)) as base:
        url = base.replace("http://", "ws://") + "/ws"

        def lines(spoofed: str) -> list[tuple[str, str]]:
            return [("X-Forwarded-For", spoofed), ("X-Forwarded-For", "192.0.2.1")]

        first = [await connect(url, additional_headers=lines(f"6.6.6.{n}")) for n in range(2)]
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers=lines("6.6.6.9")):
                pass
        assert refused.value.response.status_code == 429
        for viewer in first:
            await viewer.close()


async def test_per_address_cap_zero_means_no_cap() -> None:
    hub = CaptionHub()
    async with serve(create_app(hub, settings=ServerSettings(max_viewers_per_address=0))) as base:
        url = base.replace("http://", "ws://") + "/ws"
        viewers = [await connect(url) for _ in range(30)]
        await wait_until(lambda: hub.viewer_count == 30)
        for viewer in viewers:
            await viewer.close()


async def finals_until_end(ws: ClientConnection) -> list[int]:
    """The seqs of the finals received before the session's end message."""
    seqs: list[int] = []
    while (msg := await recv_json(ws))["type"] != "end":
        if msg["type"] == "final":
            seqs.append(msg["seq"])
    return seqs


async def storm(url: str, total: int, workers: int, rng: random.Random) -> dict[str, int]:
    """Open and drop `total` viewer connections as fast as `workers` concurrent loops can."""
    outcomes = {"hello": 0, "refused": 0}
    remaining = iter(range(total))

    async def worker(seed: int) -> None:
        local = random.Random(seed)
        for _ in remaining:
            try:
                ws = await connect(url, open_timeout=TIMEOUT_S, max_queue=None)  # reads all: the close is prompt
            except InvalidStatus:
                outcomes["refused"] += 1
                continue
            if local.random() < 0.5:
                ws.transport.abort()  # dropped without a close handshake
                outcomes["hello"] += 1
                continue
            try:
                if (await recv_json(ws))["type"] == "hello":
                    outcomes["hello"] += 1
            except ConnectionClosed:
                pass
            await ws.close()

    await asyncio.gather(*(worker(rng.randrange(1 << 30)) for _ in range(workers)))
    return outcomes


async def test_connection_storm_leaves_real_viewers_complete_and_the_database_unread(tmp_path: Path) -> None:
    rng = random.Random(20261129)
    with TranscriptStore(transcript_path(tmp_path)) as store:
        backlog = SqliteBacklog(store)
        hub = CaptionHub(backlog=100, store=backlog)  # a first visit gets the last 100 finals
        for n in range(1, 801):
            hub.publish(caption(n, size=200))
        app = create_app(hub)
        async with serve(app) as base:
            url = base.replace("http://", "ws://") + "/ws"
            real = [await connect(url) for _ in range(3)]
            for ws in real:
                await recv_json(ws)
            readers = [asyncio.create_task(finals_until_end(ws)) for ws in real]
            stop = asyncio.Event()

            async def publisher() -> int:
                n = 800
                while not stop.is_set():
                    n += 1
                    hub.publish(caption(n, "partial"))
                    hub.publish(caption(n))
                    await asyncio.sleep(0.005)
                hub.end_session("storm over")
                return n

            feeding = asyncio.create_task(publisher())
            outcomes = await asyncio.wait_for(storm(url, 2000, 32, rng), 120)
            stop.set()
            last = await asyncio.wait_for(feeding, 60)
            results = await asyncio.wait_for(asyncio.gather(*readers), 60)
            await wait_until(lambda: hub.viewer_count == 3)
            assert app[SLOTS_KEY].total == 3
            for ws in real:
                await ws.close()
        backlog.close()
    assert outcomes == {"hello": 2000, "refused": 0}
    assert last > 850  # captions flowed during the storm
    for seqs in results:
        assert seqs == list(range(701, last + 1))  # the recent 100, then every final: in order, no gap, no duplicate
    assert hub.store_reads == 0  # 2,000 first visits served from memory


async def test_replay_to_a_slow_reader_waits_for_its_buffer_to_drain() -> None:
    hub = CaptionHub(replay=ReplayLimits(replay_bytes=32 * 1024 * 1024))
    for n in range(1, 501):
        hub.publish(caption(n, size=30_000))  # a 15 MB replay: more than the kernel's socket buffers hold
    settings = ServerSettings(max_buffer_bytes=64 * 1024)
    app = create_app(hub, settings=settings)
    async with serve(app) as base:
        parts = urlsplit(base)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        async with connect(base.replace("http://", "ws://") + "/ws", sock=sock, max_queue=1) as ws:
            await recv_json(ws)  # then stop reading: the client's queue fills, then the sockets
            await wait_until(lambda: len(app[VIEWERS_KEY]) == 1)
            (viewer,) = app[VIEWERS_KEY]
            unsent = viewer._transport.get_write_buffer_size  # the server side of this viewer
            await wait_until(lambda: unsent() > 32 * 1024)
            await asyncio.sleep(0.2)  # room to overfill, if it were going to
            assert unsent() <= 64 * 1024 + 31 * 1024  # the limit plus one frame, not the whole replay
            assert hub.viewer_count == 1  # waiting, not dropped
            assert await finals_until(ws, 500) == list(range(1, 501))
