"""Property-based tests: frames through a real WebSocket parser, `since` parsing, and `/ws` queries on a real server."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from urllib.parse import quote, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.streams import StreamReader

from relay.hub import CaptionHub
from relay.protocol import parse_since, websocket_text_frame
from relay.server import create_app, serve
from tests.test_server_protocol import caption

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def parse_server_frame(wire: bytes) -> tuple[WsFrame, bool]:
    """Parse `wire` as a client would (unmasked server frame); also say whether bytes were left over."""
    reader = StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    parser = WsFrame.parse(reader.read_exact, mask=False, max_size=None)
    try:
        next(parser)
    except StopIteration as done:
        frame: WsFrame = done.value
    else:
        raise AssertionError("parser wanted more bytes than the frame holds")
    at_eof = reader.at_eof()
    try:
        next(at_eof)
    except StopIteration as done:
        return frame, not done.value
    raise AssertionError("at_eof should not block after feed_eof")


# Sizes around the 7-bit, 16-bit and 64-bit length encodings, and text of any kind.
payload_sizes = st.sampled_from([0, 1, 124, 125, 126, 127, 65534, 65535, 65536, 65537, 70000])


@FUZZ
@given(text=st.text(), pad=payload_sizes)
def test_text_frame_round_trips_through_the_websockets_parser(text: str, pad: int) -> None:
    payload = text.encode() + b"x" * pad
    frame, leftover = parse_server_frame(websocket_text_frame(payload))
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert (frame.rsv1, frame.rsv2, frame.rsv3) == (False, False, False)
    assert frame.data == payload and not leftover


@FUZZ
@given(raw=st.one_of(st.none(), st.text(), st.from_regex(r"\A[0-9]{1,25}\Z"), st.integers().map(str)))
def test_parse_since_returns_a_non_negative_int_or_raises_value_error(raw: str | None) -> None:
    try:
        value = parse_since(raw)
    except ValueError as error:
        assert raw is not None and "since must be" in str(error)
        assert "\n" not in str(error) and len(str(error)) < 500  # one bounded line, whatever was sent
        return
    if raw is None:
        assert value is None
    else:
        assert isinstance(value, int) and value >= 0 and value == int(raw)


class ServerThread:
    """A real caption server on a free port, run by its own event loop in a thread."""

    def __init__(self) -> None:
        self.hub = CaptionHub()
        self.url = ""
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        for n in range(1, 4):
            self.hub.publish(caption(n))
        async with serve(create_app(self.hub), shutdown_timeout_s=2.0) as url:
            self.url = url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(10), "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread() as running:
        yield running


def upgrade_status(base_url: str, target: str) -> int:
    """Send a WebSocket upgrade for `target` over a raw socket; return the HTTP status."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        request = (
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.sendall(request.encode("latin-1"))
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


@FUZZ
@given(
    since=st.one_of(st.none(), st.text(max_size=40), st.integers(0, 10).map(str)),
    session=st.one_of(st.none(), st.text(max_size=60)),
)
def test_ws_query_is_upgraded_or_refused_with_400_never_an_error(
    server: ServerThread, since: str | None, session: str | None
) -> None:
    query = {name: value for name, value in (("since", since), ("session", session)) if value is not None}
    status = upgrade_status(server.url, "/ws?" + urlencode(query, quote_via=quote))
    try:
        parse_since(since)
    except ValueError:
        assert status == 400
    else:
        assert status == 101


@FUZZ
@given(raw=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"), max_size=200))
def test_any_raw_ws_query_string_gets_a_client_answer(server: ServerThread, raw: str) -> None:
    status = upgrade_status(server.url, "/ws?" + raw)
    assert status in (101, 400)
