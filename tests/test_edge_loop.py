"""`relay edge --loop`: uvloop's event loop and asyncio's own both serve a viewer from a real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis
from websockets.sync.client import connect

from relay.bus.stream import EventMeta, entry_fields, frames_key, meta_key
from relay.cli import edge_loop_factory
from relay.messages import Caption
from relay.protocol import encode_caption
from tests.support.redis_server import RedisServer

RELAY = str(Path(sys.executable).with_name("relay"))
EVENT = "loop-test"
SESSION = "0123456789abcdef"


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A redis-server holding an event's meta and one final, as `relay serve --redis` writes them."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    meta = EventMeta(SESSION, [("floor", None)], (), ("en", "fr", "es"), "floor", {"floor": "connected"})
    final = encode_caption(Caption("final", "u1", "en", "good morning <b>&", 0.0, 1.5, 2.0), 1)
    with Redis.from_url(server.url) as redis:
        redis.hset(meta_key(EVENT), mapping=meta.to_hash())
        redis.xadd(frames_key(EVENT, SESSION), entry_fields(final), id="1-0")
    yield server.url
    server.stop()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_an_edge_on_either_loop_serves_a_viewer_the_events_final(published, loop):
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    edge = subprocess.Popen([RELAY, "-v", "edge", "--redis", published, "--event", EVENT, "--port", "0",
                             "--loop", loop], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert edge.stdout is not None
        line = edge.stdout.readline()
        assert "viewers open" in line, edge.stderr.read() if edge.poll() is not None else line
        url = line.split("viewers open ", 1)[1].strip().rstrip("/").replace("http", "ws", 1) + "/ws"
        with connect(url, open_timeout=10) as ws:
            hello = json.loads(ws.recv(timeout=10))
            final = json.loads(ws.recv(timeout=10))
    finally:
        edge.terminate()
        _, log = edge.communicate(timeout=10)
    assert hello["type"] == "hello" and hello["session"] == SESSION
    assert (final["type"], final["seq"], final["text"]) == ("final", 1, "good morning <b>&")
    running = {"asyncio": "Event loop: asyncio.", "uvloop": "Event loop: uvloop.Loop"}[loop]
    assert running in log  # logged from inside the running loop: the loop asked for is the one serving


def test_auto_is_uvloop_when_installed_and_asyncio_otherwise(monkeypatch):
    uvloop = pytest.importorskip("uvloop")

    assert edge_loop_factory("auto") is uvloop.new_event_loop
    assert edge_loop_factory("asyncio") is None
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    assert edge_loop_factory("auto") is None
    with pytest.raises(ImportError):
        edge_loop_factory("uvloop")


def test_loop_uvloop_without_uvloop_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "uvloop.py"  # shadows the installed package: importing it fails
    blocker.write_text("raise ImportError('no uvloop here')\n")
    env = {"PYTHONPATH": f"{tmp_path}:{Path(__file__).parents[1]}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([RELAY, "edge", "--redis", "redis://127.0.0.1:1/0", "--loop", "uvloop"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "relay: --loop uvloop: uvloop is not installed (pip install uvloop)"
