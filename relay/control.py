"""Operator HTTP API under /api/ (token-protected), plus /healthz, /metrics and viewer access."""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from relay.metrics import Metrics
from relay.source import SourceError
from relay.speakers import SpeakerError
from relay.viewer_key import add_viewer_key, token_matches

_LOGGER = logging.getLogger(__name__)

MAX_CONTROL_BODY_BYTES = 4096


class Controllable(Protocol):
    """What the API drives: the running relay."""

    metrics: Metrics

    def status(self) -> dict[str, Any]: ...

    def request_stop(self) -> None: ...

    def set_speaker(self, name: str | None) -> dict[str, Any]: ...

    async def switch_source(self, url: str) -> None: ...


CONTROLLED_KEY = web.AppKey("controlled", Controllable)
OPERATOR_TOKEN_KEY = web.AppKey("operator_token", str)


def add_control_routes(app: web.Application, relay: Controllable, operator_token: str, viewer_token: str = "") -> None:
    """Mount /api/*, /healthz and /metrics; guard the viewer routes when a viewer token is set."""
    if not operator_token:
        raise ValueError("an operator token is required")
    app[CONTROLLED_KEY] = relay
    app[OPERATOR_TOKEN_KEY] = operator_token
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/api/status", _status)
    app.router.add_post("/api/stop", _stop)
    app.router.add_post("/api/source", _switch_source)
    app.router.add_post("/api/speaker", _speaker)
    app.middlewares.append(_operator_only)
    add_viewer_key(app, viewer_token)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _operator_only(request: web.Request, handler) -> web.StreamResponse:
    """The operator token on /api/ (Authorization header only)."""
    path = request.path
    if path.startswith("/api/"):
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if not token_matches(token, request.app[OPERATOR_TOKEN_KEY]):
            _LOGGER.warning("Refused %s %s from %s: bad operator token", request.method, path, request.remote)
            return _error(401, "missing or wrong operator token (Authorization: Bearer ...)")
    return await handler(request)


async def _healthz(request: web.Request) -> web.Response:
    status = request.app[CONTROLLED_KEY].status()
    healthy = status["running"]
    return web.json_response({"ok": healthy, "source": status["source"]["state"]}, status=200 if healthy else 503)


async def _metrics(request: web.Request) -> web.Response:
    """prometheus_client's own handler: text or OpenMetrics as the scraper asks, gzip if accepted."""
    return await make_aiohttp_handler(request.app[CONTROLLED_KEY].metrics.registry)(request)


async def _status(request: web.Request) -> web.Response:
    return web.json_response(request.app[CONTROLLED_KEY].status())


async def _stop(request: web.Request) -> web.Response:
    _LOGGER.info("Stop requested through the API from %s", request.remote)
    request.app[CONTROLLED_KEY].request_stop()
    return web.json_response({"stopping": True}, status=202)


async def _switch_source(request: web.Request) -> web.Response:
    if request.content_length is None or request.content_length > MAX_CONTROL_BODY_BYTES:
        return _error(413, f"body must be JSON of at most {MAX_CONTROL_BODY_BYTES} bytes")
    try:
        body = json.loads(await request.text())
        url = body["url"]
        if not isinstance(url, str) or not url.strip():
            raise ValueError("url must be a non-empty string")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:  # RecursionError: a deeply nested body
        return _error(400, f'expected {{"url": "..."}}: {str(exc)[:200]}')
    try:
        await request.app[CONTROLLED_KEY].switch_source(url.strip())
    except SourceError as exc:
        return _error(422, f"cannot read source {url!r}: {exc}")
    return web.json_response({"source": url.strip()})


async def _speaker(request: web.Request) -> web.Response:
    """`{"name": "..."}` has the floor from now on (`""`: nobody named); `{"next": true}`: the agenda's next."""
    if request.content_length is None or request.content_length > MAX_CONTROL_BODY_BYTES:
        return _error(413, f"body must be JSON of at most {MAX_CONTROL_BODY_BYTES} bytes")
    try:
        body = json.loads(await request.text())
        if not isinstance(body, dict):
            raise TypeError("not an object")
        name = None if body.get("next") is True else body["name"]
        if body.get("next") is not True and not isinstance(name, str):
            raise TypeError("name must be a string")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        return _error(400, f'expected {{"name": "..."}} or {{"next": true}}: {str(exc)[:200]}')
    try:
        return web.json_response(request.app[CONTROLLED_KEY].set_speaker(name))
    except SpeakerError as exc:
        return _error(409 if name is None else 400, str(exc))
