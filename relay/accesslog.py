"""The HTTP access log without secrets: query values other than known harmless ones are hidden."""

from __future__ import annotations

import logging
from urllib.parse import quote

from aiohttp.abc import AbstractAccessLogger
from aiohttp import web
from aiohttp.web import BaseRequest, StreamResponse

from .redact import HIDDEN

CLIENT_KEY = web.RequestKey("client_address", str)  # set on each request: behind a trusted proxy, the forwarded address

# Query parameters the viewer page and its socket use that carry nothing secret.
SAFE_QUERY_KEYS = frozenset({"since", "session", "lang", "overlay"})


def loggable_target(request: BaseRequest) -> str:
    """The request's path and query as they may be logged: `key=`, `token=`... values hidden."""
    url = request.rel_url
    path = url.raw_path
    if not url.query:
        return path
    pairs = (
        f"{quote(name, safe='')}={quote(value, safe='') if name in SAFE_QUERY_KEYS else HIDDEN}"
        for name, value in url.query.items()
    )
    return f"{path}?{'&'.join(pairs)}"


class RedactingAccessLogger(AbstractAccessLogger):
    """One line per request: address, method, target (redacted), status, bytes, seconds."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %d %.3f',
            request.get(CLIENT_KEY) or request.remote,
            request.method,
            loggable_target(request),
            response.status,
            response.body_length,
            time,
        )

    @property
    def enabled(self) -> bool:
        """Skip building the line when INFO is off."""
        return self.logger.isEnabledFor(logging.INFO)
