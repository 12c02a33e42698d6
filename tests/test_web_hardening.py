"""Web-facing hardening on a real server: no viewer key in the access log, Secure cookie over TLS, frame-ancestors."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from relay.cli import build_parser
from relay.control import add_control_routes
from relay.hub import CaptionHub
from relay.serving import server_settings
from relay.server import ServerSettings, check_frame_ancestors, create_app, serve
from tests.test_control import TOKEN, VIEWER_KEY, StandInRelay


async def private_server(settings: ServerSettings | None = None):
    app = create_app(CaptionHub(), settings=settings)
    add_control_routes(app, StandInRelay(), TOKEN, VIEWER_KEY)
    return serve(app)


async def test_viewer_key_and_tokens_never_reach_the_access_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    async with await private_server() as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/?key={VIEWER_KEY}&lang=fr", allow_redirects=False) as response:
            assert response.status == 302
        async with session.post(f"{url}/api/stop?token={TOKEN}") as response:
            assert response.status == 401
        async with session.get(f"{url}/ws?since=4&session=abc&key={VIEWER_KEY}") as response:
            assert response.status in (400, 401)
    lines = [record.getMessage() for record in caplog.records if record.name == "aiohttp.access"]
    assert len(lines) == 3
    assert not any(VIEWER_KEY in line or TOKEN in line for line in lines)
    assert '"GET /?key=***&lang=fr" 302' in lines[0]
    assert "since=4&session=abc&key=***" in lines[2]


@pytest.mark.parametrize("trusted", [True, False], ids=["behind a trusted proxy", "direct"])
async def test_the_access_log_names_the_viewer_behind_a_trusted_proxy(caplog: pytest.LogCaptureFixture, trusted) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    app = create_app(CaptionHub(), settings=ServerSettings(trust_forwarded_for=trusted))
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/", headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}) as page:
            assert page.status == 200
    lines = [record.getMessage() for record in caplog.records if record.name == "aiohttp.access"]
    assert len(lines) == 1
    assert lines[0].startswith("198.51.100.7 " if trusted else "127.0.0.1 "), lines


async def test_viewer_cookie_is_secure_when_the_viewer_came_over_https() -> None:
    async with await private_server() as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/?key={VIEWER_KEY}", allow_redirects=False) as plain:
            plain_cookie = plain.headers["Set-Cookie"]
        headers = {"X-Forwarded-Proto": "https"}
        async with session.get(f"{url}/?key={VIEWER_KEY}", headers=headers, allow_redirects=False) as proxied:
            proxied_cookie = proxied.headers["Set-Cookie"]
    assert "HttpOnly" in plain_cookie and "Secure" not in plain_cookie
    assert "HttpOnly" in proxied_cookie and "Secure" in proxied_cookie


async def test_pages_refuse_framing_by_default() -> None:
    async with serve(create_app(CaptionHub())) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/?overlay=1&lang=fr") as page:
            assert page.status == 200
            assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
            assert page.headers["X-Frame-Options"] == "DENY"


async def test_frame_ancestors_option_allows_embedding_the_overlay() -> None:
    args = build_parser().parse_args(["serve", "x.m3u8", "--frame-ancestors", "https://obs.example.org 'self'"])
    settings = server_settings(args)
    async with serve(create_app(CaptionHub(), settings=settings)) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/?overlay=1") as page:
            csp = page.headers["Content-Security-Policy"]
            assert "frame-ancestors https://obs.example.org 'self'" in csp
            assert "X-Frame-Options" not in page.headers


@pytest.mark.parametrize("value", ["", "https://a.org; script-src *", "'unsafe-inline'", "https://a.org,https://b.org"])
def test_a_frame_ancestors_value_that_could_break_the_policy_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        check_frame_ancestors(value)


def test_limit_options_reach_the_server_settings() -> None:
    argv = ["serve", "x.m3u8", "--max-viewers", "50", "--max-viewers-per-address", "0", "--trust-forwarded-for"]
    settings = server_settings(build_parser().parse_args(argv))
    assert (settings.max_viewers, settings.max_viewers_per_address, settings.trust_forwarded_for) == (50, 0, True)
    defaults = server_settings(build_parser().parse_args(["serve", "x.m3u8"]))
    assert (defaults.max_viewers, defaults.max_viewers_per_address, defaults.frame_ancestors) == (10_000, 200, "'none'")
