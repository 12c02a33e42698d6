"""A private event: the viewer page, its assets and `/ws` need the event's viewer key.

Used by `relay serve --viewer-token-file` and by `relay edge --viewer-token-file`. The key comes
in the link (`/?key=...`), leaves the address bar at once (a redirect) and travels as an
HttpOnly cookie from then on; `/healthz`, `/metrics` and the operator's `/api/` are not guarded here.
"""

from __future__ import annotations

import hmac

from aiohttp import web

VIEWER_COOKIE = "relay_viewer"
_UNGUARDED = ("/healthz", "/metrics")


def add_viewer_key(app: web.Application, viewer_token: str) -> None:
    """Guard the viewer routes of `app` with `viewer_token` (nothing to do when it is empty)."""
    if not viewer_token:
        return

    @web.middleware
    async def guard(request: web.Request, handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/api/") or path in _UNGUARDED:
            return await handler(request)
        if path == "/" and token_matches(request.query.get("key"), viewer_token):
            response = web.HTTPFound("/")  # the key leaves the address bar; the cookie carries it
            response.set_cookie(VIEWER_COOKIE, viewer_token, httponly=True, samesite="Strict",
                                secure=over_tls(request))
            raise response
        given = request.cookies.get(VIEWER_COOKIE) or request.query.get("key")
        if not token_matches(given, viewer_token):
            return web.json_response({"error": "this event is private: open the link with its key"}, status=401)
        return await handler(request)

    app.middlewares.append(guard)


def token_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def over_tls(request: web.Request) -> bool:
    """True when the viewer reached us over HTTPS, directly or through a TLS-terminating proxy."""
    # Trusting the header is safe here: a client that fakes it only makes its own cookie HTTPS-only.
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or proto == "https"


def read_viewer_token(path) -> str:
    """The key in `--viewer-token-file` (empty: a public event)."""
    return path.read_text().strip() if path else ""
