"""The viewer protocol over a real server on port 0, with `websockets` clients."""

from __future__ import annotations

import asyncio
import dataclasses
import contextlib
import io
import json
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from relay.hub import CaptionHub
from relay.messages import Caption
from relay.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_INVALID_PAYLOAD,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_TOO_SLOW,
    CLOSE_UNSUPPORTED_DATA,
)
from relay.server import ServerSettings, create_app, serve
from relay.watch import watch

TIMEOUT_S = 10.0
SETTINGS = ServerSettings(max_buffer_bytes=64 * 1024, close_timeout_s=5.0)


def caption(n: int, kind: str = "final", size: int = 0) -> Caption:
    text = f"sentence {n} " + "x" * size
    return Caption(
        kind=kind,
        id=f"u{n}",
        lang="en",
        text=text,
        start=float(n),
        end=n + 0.9,
        wall=1_700_000_000.0 + n,
        translations={"en": text, "fr": f"phrase {n}", "es": f"frase {n}"},
        mt={"fr": "opus-mt", "es": "opus-mt"},
    )


@contextlib.asynccontextmanager
async def running(hub: CaptionHub, settings: ServerSettings = SETTINGS) -> AsyncIterator[str]:
    """Serve `hub` on a free port; yield the /ws URL."""
    async with serve(create_app(hub, settings=settings), "127.0.0.1", 0, shutdown_timeout_s=5.0) as url:
        yield url.replace("http://", "ws://") + "/ws"


@pytest.fixture
def hub() -> CaptionHub:
    return CaptionHub(backlog=1000)


@pytest.fixture
async def ws_url(hub: CaptionHub) -> AsyncIterator[str]:
    async with running(hub) as url:
        yield url


async def recv_json(ws: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
    return message


async def finals_until(ws: ClientConnection, last_seq: int) -> list[int]:
    """Read messages until the final numbered `last_seq`; return the final seqs seen."""
    seqs: list[int] = []
    while not seqs or seqs[-1] < last_seq:
        msg = await recv_json(ws)
        if msg["type"] == "final":
            seqs.append(msg["seq"])
    return seqs


async def wait_until(predicate: Any, timeout_s: float = TIMEOUT_S) -> None:
    """Poll a condition that has no event to await (e.g. the server-side viewer count)."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_hello_is_the_first_message(ws_url: str, hub: CaptionHub) -> None:
    hub.publish(caption(1))
    async with connect(ws_url) as ws:
        hello = await recv_json(ws)
    assert hello["type"] == "hello"
    assert hello["languages"] == ["en", "fr", "es"]
    assert hello["seq"] == 1
    assert hello["protocol"] == 2


async def test_new_viewer_receives_recent_finals_then_live_captions(ws_url: str, hub: CaptionHub) -> None:
    for n in range(1, 4):
        hub.publish(caption(n))
    async with connect(ws_url) as ws:
        await recv_json(ws)
        assert await finals_until(ws, 3) == [1, 2, 3]
        hub.publish(caption(4, "partial"))
        partial = await recv_json(ws)
    assert (partial["type"], partial["seq"], partial["translations"]["fr"]) == ("partial", 4, "phrase 4")


async def test_new_viewer_gets_a_full_backlog_with_default_limits() -> None:
    hub = CaptionHub(backlog=500)
    for n in range(1, 501):
        hub.publish(caption(n, size=600))
    async with running(hub, ServerSettings()) as url, connect(url) as ws:
        await recv_json(ws)
        assert await finals_until(ws, 500) == list(range(1, 501))


async def test_since_resumes_without_gap_or_duplicate(ws_url: str, hub: CaptionHub) -> None:
    for n in range(1, 6):
        hub.publish(caption(n))
    async with connect(ws_url) as ws:
        session = (await recv_json(ws))["session"]
        assert await finals_until(ws, 5) == [1, 2, 3, 4, 5]
    for n in range(6, 9):
        hub.publish(caption(n))  # published while the viewer is away
    async with connect(f"{ws_url}?since=5&session={session}") as ws:
        hello = await recv_json(ws)
        assert hello["resumed"] is True
        assert await finals_until(ws, 8) == [6, 7, 8]
        hub.publish(caption(9))
        assert await finals_until(ws, 9) == [9]


async def test_publishes_racing_resumes_lose_and_double_nothing(ws_url: str, hub: CaptionHub) -> None:
    last = 300

    async def publisher() -> None:
        for n in range(11, last + 1):
            hub.publish(caption(n, "partial"))
            hub.publish(caption(n))
            await asyncio.sleep(0)

    async def viewer(since: int) -> list[int]:
        async with connect(f"{ws_url}?since={since}") as ws:
            await recv_json(ws)
            return await finals_until(ws, last)

    for n in range(1, 11):
        hub.publish(caption(n))
    task = asyncio.create_task(publisher())
    results = await asyncio.wait_for(asyncio.gather(*(viewer(since) for since in range(10))), TIMEOUT_S)
    await task
    for since, seqs in zip(range(10), results):
        assert seqs == list(range(since + 1, last + 1))


async def stalled_socket(ws_url: str) -> socket.socket:
    """Open a WebSocket by hand with a tiny receive buffer, then never read."""
    parts = urlsplit(ws_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (parts.hostname, parts.port))
    request = (
        f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    return sock


async def test_stalled_viewer_is_dropped_while_others_keep_receiving(ws_url: str, hub: CaptionHub) -> None:
    stalled = await stalled_socket(ws_url)
    try:
        async with connect(ws_url) as ws:
            await recv_json(ws)
            await wait_until(lambda: hub.viewer_count == 2)
            reader = asyncio.create_task(finals_until(ws, 400))
            for n in range(1, 401):
                hub.publish(caption(n, size=4000))
                await asyncio.sleep(0.001)
            assert await asyncio.wait_for(reader, TIMEOUT_S) == list(range(1, 401))
            await wait_until(lambda: hub.viewer_count == 1)
    finally:
        stalled.close()


async def test_slow_viewer_is_closed_with_too_slow_and_resumes_with_since(ws_url: str, hub: CaptionHub) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    parts = urlsplit(ws_url)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
    seen: list[int] = []
    async with connect(ws_url, sock=sock, max_queue=1) as ws:
        session = (await recv_json(ws))["session"]
        n = 0
        while hub.viewer_count and n < 2000:  # it does not read: the hub drops it
            n += 1
            hub.publish(caption(n, size=4000))
            await asyncio.sleep(0)
        assert hub.viewer_count == 0
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                seen.append((await recv_json(ws))["seq"])
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_TOO_SLOW
    assert seen == list(range(1, len(seen) + 1))
    async with connect(f"{ws_url}?since={seen[-1]}&session={session}") as ws:
        await recv_json(ws)
        assert await finals_until(ws, n) == list(range(seen[-1] + 1, n + 1))


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("this is not json", CLOSE_INVALID_PAYLOAD),
        (b"\x00\x01binary", CLOSE_UNSUPPORTED_DATA),
        (json.dumps({"type": "x", "pad": "y" * 5000}), CLOSE_MESSAGE_TOO_BIG),
    ],
    ids=["not-json", "binary", "oversized"],
)
async def test_bad_viewer_message_closes_only_that_viewer(
    ws_url: str, hub: CaptionHub, payload: str | bytes, code: int
) -> None:
    async with connect(ws_url) as bystander, connect(ws_url) as offender:
        await recv_json(bystander)
        await recv_json(offender)
        await offender.send(payload)
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(offender)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code
        hub.publish(caption(1))
        assert await finals_until(bystander, 1) == [1]


async def test_well_formed_viewer_messages_are_ignored(ws_url: str, hub: CaptionHub) -> None:
    async with connect(ws_url) as ws:
        await recv_json(ws)
        await ws.send(json.dumps({"type": "hello", "lang": "fr"}))
        hub.publish(caption(1))
        assert await finals_until(ws, 1) == [1]


@pytest.mark.parametrize("since", ["abc", "-1", "1.5", "9" * 40, ""])
async def test_bad_since_is_refused_before_upgrade(ws_url: str, since: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{ws_url}?since={since}"):
            pass
    assert refused.value.response.status_code == 400
    assert b"since" in refused.value.response.body


async def test_shutdown_closes_viewers_with_going_away(hub: CaptionHub) -> None:
    async with running(hub) as url:
        ws = await connect(url)
        await recv_json(ws)
    with pytest.raises(ConnectionClosed) as closed:
        await recv_json(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_GOING_AWAY
    assert hub.viewer_count == 0


async def test_page_and_assets_are_served_with_strict_headers(ws_url: str) -> None:
    base = ws_url.replace("ws://", "http://").removesuffix("/ws")
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/", headers={"Host": "evil.example;script-src *"}) as hostile:
            assert "evil" not in hostile.headers["Content-Security-Policy"]
        async with session.get(base + "/") as page:
            assert page.status == 200
            assert "<title>" in await page.text()
            csp = page.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert f"connect-src 'self' ws://{urlsplit(base).netloc} " in csp
            assert page.headers["X-Content-Type-Options"] == "nosniff"
        async with session.get(base + "/assets/viewer.js") as script:
            assert script.status == 200
            assert script.content_type in ("text/javascript", "application/javascript")
        async with session.get(base + "/assets/../relay/server.py") as escape:
            assert escape.status in (403, 404)


async def test_watch_prints_finals_across_a_server_restart_until_the_session_ends(hub: CaptionHub) -> None:
    out = io.StringIO()
    for n in range(1, 3):
        hub.publish(caption(n))
    async with running(hub) as url:
        port = urlsplit(url).port or 0
        watcher = asyncio.create_task(watch(url.removesuffix("/ws"), "fr", out))
        await wait_until(lambda: out.getvalue().count("\n") == 2)
    hub.publish(caption(3))  # while the server is down
    async with serve(create_app(hub, settings=SETTINGS), "127.0.0.1", port):
        await wait_until(lambda: hub.viewer_count == 1)
        hub.publish(caption(4, "partial"))
        hub.publish(caption(4))
        hub.end_session("done")
        assert await asyncio.wait_for(watcher, TIMEOUT_S) == 0
    assert out.getvalue() == "phrase 1\nphrase 2\nphrase 3\nphrase 4\n"


async def test_watch_gives_up_when_refused(ws_url: str) -> None:
    not_a_relay = ws_url.replace("ws://", "http://").removesuffix("/ws") + "/elsewhere/"
    assert await asyncio.wait_for(watch(not_a_relay, None, io.StringIO()), TIMEOUT_S) == 2


async def test_watch_prints_the_speaker_when_the_floor_changes_hands(hub: CaptionHub) -> None:
    out = io.StringIO()
    async with running(hub) as url:
        watcher = asyncio.create_task(watch(url.removesuffix("/ws"), "fr", out))
        await wait_until(lambda: hub.viewer_count == 1)
        for n, speaker in ((1, "Ana Pérez"), (2, "Ana Pérez"), (3, "Jean \x1b[2J Dupont")):
            hub.publish(dataclasses.replace(caption(n), speaker=speaker))
        hub.end_session("done")
        assert await asyncio.wait_for(watcher, TIMEOUT_S) == 0
    # the name once per turn, control characters never reach the terminal
    assert out.getvalue() == "[Ana Pérez]\nphrase 1\nphrase 2\n[Jean  [2J Dupont]\nphrase 3\n"


async def test_watch_of_a_session_already_over_prints_it_and_exits(hub: CaptionHub) -> None:
    out = io.StringIO()
    for n in range(1, 3):
        hub.publish(caption(n))
    hub.end_session("done")
    async with running(hub) as url:
        assert await asyncio.wait_for(watch(url.removesuffix("/ws"), "fr", out), TIMEOUT_S) == 0
    assert out.getvalue() == "phrase 1\nphrase 2\n"
    empty = CaptionHub()
    empty.end_session("nothing said")
    async with running(empty) as url:
        assert await asyncio.wait_for(watch(url.removesuffix("/ws"), None, io.StringIO()), TIMEOUT_S) == 0


async def test_watch_after_an_unnamed_stretch_names_the_same_speaker_again(hub: CaptionHub) -> None:
    out = io.StringIO()
    async with running(hub) as url:
        watcher = asyncio.create_task(watch(url.removesuffix("/ws"), "fr", out))
        await wait_until(lambda: hub.viewer_count == 1)
        for n, speaker in ((1, "Ana"), (2, ""), (3, "Ana")):
            hub.publish(dataclasses.replace(caption(n), speaker=speaker))
        hub.end_session("done")
        assert await asyncio.wait_for(watcher, TIMEOUT_S) == 0
    assert out.getvalue() == "[Ana]\nphrase 1\nphrase 2\n[Ana]\nphrase 3\n"  # as the exports count turns
