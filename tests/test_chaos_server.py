"""A seeded fuzzing client against a running relay server while real viewers watch.

Random bytes, oversized headers, slowloris requests, malformed and invalid-UTF-8
WebSocket frames, JSON bombs on the viewer socket and on /api/: the relay stays up,
its memory stays bounded, and real viewers get every final in order with no gap.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.streams import StreamReader

from relay.control import add_control_routes
from relay.hub import CaptionHub
from relay.protocol import CLOSE_INVALID_PAYLOAD
from relay.server import ServerSettings, create_app, serve
from tests.test_control import TOKEN, StandInRelay
from tests.test_server_protocol import caption, recv_json

SEED = 20261129
IO_TIMEOUT_S = 15.0
SETTINGS = ServerSettings(max_buffer_bytes=256 * 1024, idle_timeout_s=2.0, max_viewers_per_address=0)
HANDSHAKE = (
    "GET /ws HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()

Chaos = Callable[[str, int, random.Random], Awaitable[None]]


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (fails the test if it never does)."""
    return await asyncio.wait_for(reader.read(), IO_TIMEOUT_S)


def status_of(response: bytes) -> int | None:
    """The HTTP status of a raw response, None when the server closed without one."""
    if not response.startswith(b"HTTP/1."):
        return None
    return int(response.split(b" ", 2)[1])


def close_code(data: bytes) -> int | None:
    """The code of the first close frame in server-sent WebSocket bytes."""
    stream = StreamReader()
    stream.feed_data(data)
    stream.feed_eof()
    while True:
        parser = WsFrame.parse(stream.read_exact, mask=False, max_size=None)
        try:
            next(parser)
        except StopIteration as done:
            frame: WsFrame = done.value
        except EOFError:
            return None
        else:
            return None
        if frame.opcode is Opcode.CLOSE:
            return int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None


async def raw_exchange(host: str, port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(payload)
        await writer.drain()
        return await read_all(reader)
    finally:
        writer.close()


async def random_bytes(host: str, port: int, rng: random.Random) -> None:
    response = await raw_exchange(host, port, rng.randbytes(rng.randint(1, 8192)))
    assert status_of(response) in (None, 400, 404, 405, 413, 414, 431)


async def oversized_header(host: str, port: int, rng: random.Random) -> None:
    big = "a" * rng.randint(9000, 100_000)
    response = await raw_exchange(host, port, f"GET / HTTP/1.1\r\nHost: relay\r\nX-Big: {big}\r\n\r\n".encode())
    assert status_of(response) in (None, 400, 431)


async def too_many_headers(host: str, port: int, rng: random.Random) -> None:
    headers = "".join(f"X-{n}: {rng.random()}\r\n" for n in range(rng.randint(200, 600)))
    response = await raw_exchange(host, port, f"GET /ws HTTP/1.1\r\nHost: relay\r\n{headers}\r\n".encode())
    assert status_of(response) in (None, 400, 431)


async def slowloris(host: str, port: int, rng: random.Random) -> None:
    """A request trickled in and never finished: the server closes it after its idle timeout."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for piece in (b"GET / HTTP/1.1\r\n", b"Host: relay\r\n", b"X-Slow: ", rng.randbytes(3).hex().encode()):
            writer.write(piece)
            await asyncio.sleep(rng.uniform(0.05, 0.3))
        data = await read_all(reader)
        assert data == b"" or status_of(data) in (400, 408)
    finally:
        writer.close()


async def upgraded(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(HANDSHAKE)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT_S)
    assert status_of(head) == 101
    return reader, writer


def malformed_frame(rng: random.Random) -> bytes:
    """A client frame the server must refuse: unmasked, reserved bits or opcode, bad control frames, noise."""
    kind = rng.randrange(6)
    if kind == 0:  # unmasked (aiohttp tolerates that) and not JSON (the relay does not)
        return WsFrame(Opcode.TEXT, rng.randbytes(8).hex().encode()).serialize(mask=False, extensions=[])
    if kind == 1:
        return bytes([0x80 | 0x40 | 0x1, 0x80 | 2]) + rng.randbytes(4) + b"{}"  # RSV1 without an extension
    if kind == 2:
        return bytes([0x80 | rng.choice([0x3, 0x4, 0x5, 0xB, 0xF]), 0x80]) + rng.randbytes(4)  # reserved opcode
    if kind == 3:
        return bytes([0x80 | 0x9, 0x80 | 126]) + (200).to_bytes(2, "big") + rng.randbytes(204)  # ping > 125 bytes
    if kind == 4:
        return bytes([0x80 | 0x1, 0x80 | 127]) + (2**63 - 1).to_bytes(8, "big") + rng.randbytes(4)  # 8 EiB claim
    return bytes([0x80 | 0x0, 0x80 | 1]) + rng.randbytes(5)  # continuation with nothing to continue


async def malformed_websocket_frame(host: str, port: int, rng: random.Random) -> None:
    reader, writer = await upgraded(host, port)
    try:
        writer.write(malformed_frame(rng))
        await writer.drain()
        data = await read_all(reader)  # the server closes this connection, and only this one
        assert close_code(data) in (None, 1002, 1003, 1007, 1009)
    finally:
        writer.close()


async def invalid_utf8_text(host: str, port: int, rng: random.Random) -> None:
    reader, writer = await upgraded(host, port)
    try:
        bad = rng.choice([b"\xff\xfe", b'{"a":"\xc3\x28"}', b"\xed\xa0\x80", rng.randbytes(3) + b"\x80\x80"])
        writer.write(WsFrame(Opcode.TEXT, bad).serialize(mask=True, extensions=[]))
        await writer.drain()
        assert close_code(await read_all(reader)) == CLOSE_INVALID_PAYLOAD
    finally:
        writer.close()


async def viewer_json_bomb(host: str, port: int, rng: random.Random) -> None:
    depth = rng.randint(1500, 2040)  # under the 4 KiB message cap, deeper than Python's parser goes
    async with connect(f"ws://{host}:{port}/ws", max_queue=None) as ws:
        await ws.send("[" * depth + "]" * depth)
        try:
            while True:
                await asyncio.wait_for(ws.recv(), IO_TIMEOUT_S)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == CLOSE_INVALID_PAYLOAD


async def api_json_bomb(host: str, port: int, rng: random.Random) -> None:
    depth = rng.randint(1000, 2000)
    bodies = [
        ('{"url": ' + "[" * depth + "]" * depth + "}").encode(),
        b'{"url": 1e999999}',
        b'{"url": "' + b"a" * 5000 + b'"}',
        b'{"url": "\\ud800"' + b" " * rng.randint(0, 100),
        rng.randbytes(rng.randint(1, 4000)),
    ]
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        for body in bodies:
            async with session.post(f"http://{host}:{port}/api/source", data=body, headers=auth) as response:
                assert response.status in (400, 413), (response.status, body[:40])
                assert "error" in await response.json()
        wrong = {"Authorization": "Bearer x"}
        async with session.post(f"http://{host}:{port}/api/source", data=bodies[0], headers=wrong) as response:
            assert response.status == 401


CHAOS: list[Chaos] = [
    random_bytes, oversized_header, too_many_headers, slowloris, malformed_websocket_frame,
    invalid_utf8_text, viewer_json_bomb, api_json_bomb,
]  # fmt: skip


async def run_chaos(url: str, rounds: int, rng: random.Random, workers: int = 12) -> list[str]:
    """Run `rounds` randomly chosen attacks, `workers` at a time; return their names in order."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 0
    plan = [(rng.choice(CHAOS), rng.randrange(1 << 30)) for _ in range(rounds)]
    queue = iter(plan)

    async def worker() -> None:
        for attack, seed in queue:
            await attack(host, port, random.Random(seed))

    await asyncio.gather(*(worker() for _ in range(workers)))
    return [attack.__name__ for attack, _ in plan]


async def finals_until_end(ws: ClientConnection) -> list[int]:
    seqs: list[int] = []
    while (msg := await recv_json(ws))["type"] != "end":
        if msg["type"] == "final":
            seqs.append(msg["seq"])
    return seqs


async def test_relay_survives_a_fuzzing_client_and_real_viewers_miss_nothing() -> None:
    rng = random.Random(SEED)
    hub = CaptionHub()
    relay = StandInRelay()
    app = create_app(hub, settings=SETTINGS)
    add_control_routes(app, relay, TOKEN)
    process = psutil.Process()
    async with serve(app) as url:
        real = [await connect(url.replace("http://", "ws://") + "/ws", max_queue=None) for _ in range(3)]
        for ws in real:
            await recv_json(ws)
        readers = [asyncio.create_task(finals_until_end(ws)) for ws in real]
        stop = asyncio.Event()

        async def publisher() -> int:
            n = 0
            while not stop.is_set():
                n += 1
                hub.publish(caption(n, "partial", size=rng.randint(0, 300)))
                hub.publish(caption(n, size=rng.randint(0, 300)))
                await asyncio.sleep(0.01)
            hub.end_session("chaos over")
            return n

        feeding = asyncio.create_task(publisher())
        await asyncio.wait_for(run_chaos(url, 24, rng), 120)  # warm-up: allocator and caches settle
        rss_before = process.memory_info().rss
        names = await asyncio.wait_for(run_chaos(url, 160, rng), 120)
        rss_after = process.memory_info().rss
        stop.set()
        last = await asyncio.wait_for(feeding, 30)
        results = await asyncio.wait_for(asyncio.gather(*readers), 30)
        async with aiohttp.ClientSession() as session, session.get(url + "/healthz") as health:
            assert health.status == 200
        async with connect(url.replace("http://", "ws://") + "/ws") as late:
            assert (await recv_json(late))["type"] == "hello"
        for ws in real:
            await ws.close()
    assert set(names) == {attack.__name__ for attack in CHAOS}  # every kind of attack ran
    assert last > 50
    for seqs in results:
        assert seqs == list(range(1, last + 1))  # every final, in order, no gap, no duplicate
    assert relay.sources == [] and relay.stops == 0
    assert rss_after - rss_before < 64 * 1024 * 1024
    assert hub.viewer_count == 0
