"""`relay edge --viewer-token-file`: a private event stays private on its edges."""

from __future__ import annotations

import asyncio
import subprocess

import aiohttp
import pytest

from tests.support.redis_server import RedisServer
from tests.test_bus import EVENT as BUS_EVENT
from tests.test_bus import Relay, caption, until
from tests.test_edges import Edge
from tests.test_source_lifecycle import RELAY

KEY = "s3cret-viewer-key"


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


async def test_an_edge_of_a_private_event_lets_in_only_viewers_with_its_key(redis_server, tmp_path):
    key_file = tmp_path / "viewer.key"
    key_file.write_text(KEY + "\n")
    relay = Relay(redis_server.url)
    relay.hub.publish(caption(1))
    await until(lambda: relay.publisher.stream_seq == 1 and not relay.publisher.queued)
    edge = Edge(redis_server.url, "--viewer-token-file", str(key_file), event=BUS_EVENT)
    try:
        url = await asyncio.to_thread(lambda: edge.url)
        async with aiohttp.ClientSession() as stranger:
            async with stranger.get(url + "/") as page:
                assert page.status == 401
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await stranger.ws_connect(url + "/ws")
            assert refused.value.status == 401
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as invited:  # cookies for an IP
            async with invited.get(url + f"/?key={KEY}") as page:  # the key leaves the address bar
                assert page.status == 200 and page.url.query.get("key") is None
            async with invited.ws_connect(url + "/ws") as ws:  # the cookie carries the key
                hello = await ws.receive_json(timeout=10)
                final = await ws.receive_json(timeout=10)
        assert hello["type"] == "hello" and final["seq"] == 1 and final["text"] == "sentence 1 <b>&"
        async with aiohttp.ClientSession() as scraper:
            async with scraper.get(url + "/healthz") as health:
                assert health.status == 200
    finally:
        edge.close()
        await relay.close()
    assert KEY not in "".join(edge.stderr)


@pytest.mark.parametrize("content", ["", "   \n"], ids=["empty", "blank"])
def test_an_empty_key_file_is_refused_rather_than_serving_a_public_event(tmp_path, content):
    key_file = tmp_path / "viewer.key"
    key_file.write_text(content)
    result = subprocess.run([RELAY, "edge", "--redis", "redis://127.0.0.1:1/0", "--viewer-token-file", str(key_file)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "is empty" in result.stderr.strip().splitlines()[-1]


def test_a_missing_key_file_is_one_clear_line(tmp_path):
    result = subprocess.run([RELAY, "edge", "--redis", "redis://127.0.0.1:1/0",
                             "--viewer-token-file", str(tmp_path / "nope.key")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot read" in result.stderr.strip().splitlines()[-1]
