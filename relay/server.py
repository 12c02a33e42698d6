"""Caption server: the viewer page at `/`, its assets at `/assets/`, captions at `/ws`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import ClientError, WSMsgType, web
from aiohttp.base_protocol import BaseProtocol

from .accesslog import CLIENT_KEY, RedactingAccessLogger
from .hub import CaptionHub
from .limits import ViewerSlots, client_address
from .protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_INVALID_PAYLOAD,
    CLOSE_UNSUPPORTED_DATA,
    Frame,
    parse_since,
)

_LOGGER = logging.getLogger(__name__)

DEFAULT_WEB_DIR = Path(__file__).resolve().parent.parent / "web"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'{sockets}; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}"
)
# Host header values safe to echo into the CSP (name or IPv4/IPv6 literal, optional port).
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


# A CSP source list: keywords in quotes, or scheme/host sources, separated by spaces.
_ANCESTORS_RE = re.compile(r"^(?:'none'|'self'|[A-Za-z][A-Za-z0-9+.-]*:(?://[A-Za-z0-9*.:\[\]-]+)?/?|"
                           r"[A-Za-z0-9*.-]+(?::[0-9*]{1,5})?)$")  # fmt: skip


def check_frame_ancestors(value: str) -> str:
    """Return `value` if it is a CSP frame-ancestors source list; raise ValueError naming the bad part."""
    sources = value.split()
    if not sources:
        raise ValueError("frame-ancestors needs at least one source, e.g. 'none' or https://obs.example.org")
    for source in sources:
        if not _ANCESTORS_RE.match(source):
            raise ValueError(f"not a CSP frame-ancestors source: {source[:60]!r}")
    return " ".join(sources)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Limits of the caption server: per viewer, and on how many viewers may connect."""

    # Unsent bytes above which a live caption is not sent and the viewer is dropped as too
    # slow. A replay on connect is written as the buffer drains below it.
    max_buffer_bytes: int = 1024 * 1024
    max_msg_bytes: int = 4096  # largest message a viewer may send
    heartbeat_s: float = 30.0  # ping interval; no pong within half of it closes
    close_timeout_s: float = 5.0  # wait for the close handshake, then abort
    max_viewers: int = 10_000  # viewer connections in all; more get 503
    max_viewers_per_address: int = 200  # per client address (0: no cap); more get 429
    trust_forwarded_for: bool = False  # behind a proxy: count the address it appends to X-Forwarded-For
    frame_ancestors: str = "'none'"  # who may embed the pages in a frame (CSP frame-ancestors)
    idle_timeout_s: float = 30.0  # a connection that sends no complete request in this time is closed


class WsViewer:
    """A viewer connection: writes shared frames straight to its transport.

    Compression is off, so every viewer's frame is byte-identical and the hub's
    pre-built `Frame.wire` is written as is. The transport's unsent bytes are
    this viewer's bounded buffer.
    """

    __slots__ = ("_close_task", "_protocol", "_settings", "_transport", "_ws")

    def __init__(
        self, ws: web.WebSocketResponse, transport: asyncio.Transport, protocol: BaseProtocol, settings: ServerSettings
    ) -> None:
        self._ws = ws
        self._transport = transport
        self._protocol = protocol
        self._settings = settings
        self._close_task: asyncio.Task[None] | None = None
        # The protocol pauses writing above this mark, so `drained()` wakes when the buffer is back under it.
        transport.set_write_buffer_limits(high=settings.max_buffer_bytes)

    def _closing(self) -> bool:
        return self._close_task is not None or self._ws.closed or self._transport.is_closing()

    def send(self, frame: Frame, *, replay: bool = False) -> bool:
        """Write `frame` unless the connection is closing or (live frames) its buffer is over the limit."""
        return self._write(frame.wire, replay)

    def send_batch(self, frames: Sequence[Frame], wire: bytes) -> bool:
        """Write live frames read together (`wire`: their wire bytes joined) in one go."""
        return self._write(wire, False)

    def _write(self, wire: bytes, replay: bool) -> bool:
        transport = self._transport
        if self._closing():
            return False
        if not replay and transport.get_write_buffer_size() > self._settings.max_buffer_bytes:
            return False
        transport.write(wire)
        return True

    async def drained(self) -> bool:
        """Wait (a heartbeat at most) until the unsent bytes are under the limit; False if closing."""
        if self._transport.get_write_buffer_size() > self._settings.max_buffer_bytes:
            try:
                async with asyncio.timeout(self._settings.heartbeat_s):
                    # aiohttp's own flow control: returns once the transport resumed writing.
                    await self._protocol._drain_helper()
            except (TimeoutError, ConnectionError, ClientError):
                return False
        return not self._closing()

    def drop(self, code: int, reason: str) -> None:
        """Start closing with `code`; the handler task notices and ends."""
        if self._close_task is None:
            self._close_task = asyncio.create_task(self._close(code, reason))

    async def wait_closed(self) -> None:
        """Wait for a close started by `drop()`, if any."""
        if self._close_task is not None:
            await self._close_task

    async def _close(self, code: int, reason: str) -> None:
        """Close handshake bounded in time; a viewer that stopped reading is aborted."""
        try:
            async with asyncio.timeout(self._settings.close_timeout_s + 1.0):
                await self._ws.close(code=code, message=reason.encode()[:120], drain=False)
        except TimeoutError:
            _LOGGER.debug("Close handshake timed out")
        finally:
            abort_if_stuck(self._transport, self._settings.close_timeout_s)


def abort_if_stuck(transport: asyncio.Transport, delay_s: float) -> None:
    """Abort the connection in `delay_s` if its unsent bytes have not drained by then.

    A closed transport keeps flushing its buffer; a viewer that stopped reading
    would hold that buffer forever.
    """

    def check() -> None:
        if transport.get_write_buffer_size():
            transport.abort()

    asyncio.get_running_loop().call_later(delay_s, check)


class HubRef:
    """The hub new viewers attach to; an edge points it at the hub of the event's next session."""

    def __init__(self, hub: CaptionHub) -> None:
        self.hub = hub


HUB_KEY = web.AppKey("hub", HubRef)
SETTINGS_KEY = web.AppKey("settings", ServerSettings)
WEB_DIR_KEY = web.AppKey("web_dir", Path)
VIEWERS_KEY = web.AppKey("viewers", set[WsViewer])
SLOTS_KEY = web.AppKey("slots", ViewerSlots)


def create_app(
    hub: CaptionHub | HubRef, *, web_dir: Path | None = None, settings: ServerSettings | None = None
) -> web.Application:
    """Build the caption server for `hub` (a `HubRef` when the hub may be replaced while serving)."""
    app = web.Application()
    app[HUB_KEY] = hub if isinstance(hub, HubRef) else HubRef(hub)
    app[SETTINGS_KEY] = settings or ServerSettings()
    app[WEB_DIR_KEY] = (web_dir or DEFAULT_WEB_DIR).resolve()
    app[VIEWERS_KEY] = set()
    app[SLOTS_KEY] = ViewerSlots(app[SETTINGS_KEY].max_viewers, app[SETTINGS_KEY].max_viewers_per_address)
    app.router.add_get("/", _index)
    app.router.add_get("/ws", _websocket)
    app.router.add_static("/assets", app[WEB_DIR_KEY])
    app.on_response_prepare.append(_add_security_headers)
    app.on_response_prepare.append(_note_client_address)
    app.on_shutdown.append(_close_viewers)
    return app


async def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Send the strict CSP and friends with every response."""
    host = request.host
    # Some browsers do not let 'self' cover ws:/wss:, so name this host's sockets explicitly.
    sockets = f" ws://{host} wss://{host}" if _HOST_RE.match(host) else ""
    ancestors = request.app[SETTINGS_KEY].frame_ancestors
    response.headers.setdefault("Content-Security-Policy", CSP.format(sockets=sockets, ancestors=ancestors))
    if ancestors == "'none'":
        response.headers.setdefault("X-Frame-Options", "DENY")  # for browsers without frame-ancestors
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


async def _note_client_address(request: web.Request, response: web.StreamResponse) -> None:
    """The address the access log names: the viewer's, not the proxy's, with --trust-forwarded-for."""
    request[CLIENT_KEY] = client_address(request, request.app[SETTINGS_KEY].trust_forwarded_for)


async def _index(request: web.Request) -> web.FileResponse:
    """Serve the viewer page."""
    response = web.FileResponse(request.app[WEB_DIR_KEY] / "index.html")
    response.headers["Cache-Control"] = "no-cache"
    return response


async def _websocket(request: web.Request) -> web.StreamResponse:
    """Attach one viewer to the hub and read (and ignore) what it sends until it closes."""
    try:
        since = parse_since(request.query.get("since"))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    settings = request.app[SETTINGS_KEY]
    slots = request.app[SLOTS_KEY]
    address = client_address(request, settings.trust_forwarded_for)
    slots.claim(address)  # raises 503/429 before the upgrade
    try:
        return await _serve_viewer(request, since, settings)
    finally:
        slots.release(address)


async def _serve_viewer(request: web.Request, since: int | None, settings: ServerSettings) -> web.StreamResponse:
    """Upgrade, replay and stream captions to one viewer until it leaves."""
    ws = web.WebSocketResponse(
        max_msg_size=settings.max_msg_bytes,
        compress=False,
        heartbeat=settings.heartbeat_s,
        timeout=settings.close_timeout_s,
    )
    await ws.prepare(request)
    transport = request.transport
    if transport is None:
        return ws
    hub = request.app[HUB_KEY].hub  # this viewer's hub for the whole connection, even if replaced
    viewers = request.app[VIEWERS_KEY]
    viewer = WsViewer(ws, transport, request.protocol, settings)
    viewers.add(viewer)
    try:
        await hub.attach(viewer, since, request.query.get("session"))
        await _read_until_closed(ws)
    finally:
        hub.detach(viewer)
        viewers.discard(viewer)
        await viewer.wait_closed()
        abort_if_stuck(transport, settings.close_timeout_s)
    return ws


async def _read_until_closed(ws: web.WebSocketResponse) -> None:
    """Ignore well-formed viewer messages; close on binary or non-JSON text."""
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            if not _is_json(msg.data):
                await ws.close(code=CLOSE_INVALID_PAYLOAD, message=b"viewer messages must be JSON", drain=False)
        elif msg.type is WSMsgType.BINARY:
            await ws.close(code=CLOSE_UNSUPPORTED_DATA, message=b"binary messages not accepted", drain=False)
        elif msg.type is WSMsgType.ERROR:
            _LOGGER.debug("Viewer connection error: %s", ws.exception())
            return


def _is_json(text: str) -> bool:
    """True when `text` parses as JSON."""
    try:
        json.loads(text)
    except (ValueError, RecursionError):  # 4 KiB of `[` nests deeper than Python's parser goes
        return False
    return True


async def _close_viewers(app: web.Application) -> None:
    """On shutdown, close every viewer with GOING_AWAY so it reconnects with `since`."""
    attached: set[WsViewer] = app[VIEWERS_KEY]
    viewers = list(attached)
    _LOGGER.info("Closing %d viewers", len(viewers))
    for viewer in viewers:
        app[HUB_KEY].hub.detach(viewer)
        viewer.drop(CLOSE_GOING_AWAY, "server shutting down")
    await asyncio.gather(*(viewer.wait_closed() for viewer in viewers))


@contextlib.asynccontextmanager
async def serve(
    app: web.Application, host: str = "127.0.0.1", port: int = 0, *, shutdown_timeout_s: float = 10.0
) -> AsyncIterator[str]:
    """Run `app` on host:port (0 picks a free port) and yield its base URL, e.g. http://127.0.0.1:8080."""
    settings = app.get(SETTINGS_KEY) or ServerSettings()
    runner = web.AppRunner(
        app,
        shutdown_timeout=shutdown_timeout_s,
        access_log_class=RedactingAccessLogger,
        keepalive_timeout=settings.idle_timeout_s,  # also closes a connection that never completes a request
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=4096)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        url = f"http://{url_host}:{bound_port}"
        _LOGGER.info("Serving captions at %s", url)
        yield url
    finally:
        await runner.cleanup()
