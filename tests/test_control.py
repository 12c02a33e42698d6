"""The control API's access rules on a real aiohttp server, with a stand-in relay behind it."""

from __future__ import annotations

import aiohttp
import pytest

from relay.control import add_control_routes
from relay.hub import CaptionHub
from relay.metrics import Metrics
from relay.server import create_app, serve
from relay.source import SourceError

TOKEN = "operator-secret"
VIEWER_KEY = "viewer-key"


class StandInRelay:
    """Records what the API asked of it."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.stops = 0
        self.sources: list[str] = []

    def status(self) -> dict:
        return {"running": True, "source": {"state": "connected"}}

    def request_stop(self) -> None:
        self.stops += 1

    async def switch_source(self, url: str) -> None:
        if "bad" in url:
            raise SourceError("Connection refused")
        self.sources.append(url)


@pytest.fixture
async def private_relay():
    relay = StandInRelay()
    app = create_app(CaptionHub())
    add_control_routes(app, relay, TOKEN, VIEWER_KEY)
    jar = aiohttp.CookieJar(unsafe=True)  # accept cookies from 127.0.0.1, as browsers do
    async with serve(app) as url, aiohttp.ClientSession(cookie_jar=jar) as session:
        yield relay, url, session


async def test_stop_needs_the_token_in_the_header(private_relay):
    relay, url, session = private_relay
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        async with session.post(url + "/api/stop", headers=headers) as response:
            assert response.status == 401
    async with session.post(url + f"/api/stop?token={TOKEN}") as response:
        assert response.status == 401
    assert relay.stops == 0
    async with session.post(url + "/api/stop", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 202
    assert relay.stops == 1


async def test_a_source_that_cannot_be_opened_is_refused_and_nothing_changes(private_relay):
    relay, url, session = private_relay
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with session.post(url + "/api/source", json={"url": "http://bad/x.m3u8"}, headers=auth) as response:
        assert response.status == 422 and "refused" in (await response.json())["error"]
    async with session.post(url + "/api/source", json={"url": 42}, headers=auth) as response:
        assert response.status == 400
    async with session.post(url + "/api/source", json={"url": "rtmp://ok/live"}, headers=auth) as response:
        assert response.status == 200
    assert relay.sources == ["rtmp://ok/live"]


async def test_a_private_event_needs_the_viewer_key(private_relay):
    _, url, session = private_relay
    async with session.get(url + "/", allow_redirects=False) as response:
        assert response.status == 401
    async with session.get(url + f"/?key={VIEWER_KEY}", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == "/"
    async with session.get(url + "/") as response:  # the cookie now carries the key
        assert response.status == 200
    async with session.ws_connect(url.replace("http", "ws") + "/ws") as ws:
        assert (await ws.receive_json())["type"] == "hello"


async def test_health_and_metrics_need_no_key(private_relay):
    _, url, session = private_relay
    async with session.get(url + "/healthz") as response:
        assert response.status == 200
    async with session.get(url + "/metrics") as response:
        assert response.status == 200 and "relay_captions_published_total 0" in await response.text()
