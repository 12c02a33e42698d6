"""An edge killed under 1,000 viewers, and an edge following the event into a new session.

`relay serve` captions the meeting's first 40 s at real time with `--redis`; two `relay edge`s
serve it. 1,000 viewers (one asyncio client each, in this process) watch on edge A, which is
SIGKILLed mid-event: each reconnects, with the viewer page's jittered backoff, to edge B (as a
load balancer would send it) with its `since` and `session`, and must hold exactly the finals
the relay's own viewer got. Redis's command counts show what the storm cost it. Then the relay
is stopped and started again with `--new-event` on a short clip: edge B, never restarted, serves
the new session.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import urllib.request

import aiohttp
import pytest

from tests.support.live_hls_master import trim_audio
from tests.support.media import MEETING_FLAC
from tests.support.redis_server import RedisServer
from tests.test_edges import EVENT, Edge, _healthz, _numbered, _wait
from tests.test_operator import Viewer
from tests.test_source_lifecycle import RELAY, Serve

SECONDS = 40.0
SECOND_SESSION_SECONDS = 14.0
CROWD = 1000
KILL_AT_S = 20.0  # after the relay is ready
LIMITS = ("--max-viewers-per-address", "0")  # every test viewer comes from 127.0.0.1


class CrowdViewer:
    """One viewer: edge A first, then edge B once A is gone; resumes with `since`, as the page does."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.hellos: list[dict] = []
        self.finals: list[tuple[int, str, str]] = []
        self.ended = False

    def query(self) -> str:
        if not self.finals or not self.hellos:
            return ""
        return f"?since={self.finals[-1][0]}&session={self.hellos[-1]['session']}"

    async def run(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        edge, attempt = 0, 0
        while not self.ended and not stop.is_set():
            try:
                async with session.ws_connect(self.urls[edge] + "/ws" + self.query()) as ws:
                    attempt = 0
                    async for message in ws:
                        self._receive(json.loads(message.data))
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                pass
            edge = 1  # the dead edge is out of the balancer's pool
            ceiling = min(30.0, 0.5 * 2**attempt)  # web/connection.js: jittered exponential backoff
            attempt += 1
            await asyncio.sleep(ceiling / 2 + random.random() * ceiling / 2)

    def _receive(self, message: dict) -> None:
        kind = message["type"]
        if kind == "hello":
            self.hellos.append(message)
        elif kind in ("final", "track"):
            seq = message["seq"]
            if self.finals and seq <= self.finals[-1][0]:
                self.finals.append((-1, "", "duplicate"))  # counted by the test, never expected
            self.finals.append((seq, message.get("lang", ""), message.get("text", "")))
        elif kind == "end":
            self.ended = True


class Crowd:
    """CROWD viewers on their own event loop and thread."""

    def __init__(self, urls: list[str], count: int) -> None:
        self.viewers = [CrowdViewer(urls) for _ in range(count)]
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)
        self._thread.start()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
            await asyncio.gather(*(viewer.run(session, self._stop) for viewer in self.viewers))

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def _commandstats(redis: RedisServer) -> dict[str, int]:
    """calls per command, from INFO commandstats (a fresh connection: the counts are Redis's own)."""
    import redis as redis_py

    client = redis_py.Redis.from_url(redis.url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(values["calls"]) for name, values in stats.items()}


def _metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


@pytest.fixture(scope="module")
def failover(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("failover")
    clip = trim_audio(MEETING_FLAC, SECONDS, tmp)
    redis = RedisServer(tmp / "redis").start()
    relay = Serve(str(clip), tmp / "data", "--realtime", "--redis", redis.url, "--event", EVENT)
    edges: list[Edge] = []
    crowd = reference = second_relay = late = None
    record: dict = {}
    try:
        url = relay.url
        ready_at = time.monotonic()
        edges = [Edge(redis.url, *LIMITS), Edge(redis.url, *LIMITS)]
        reference = Viewer(url)
        crowd = Crowd([edges[0].url, edges[1].url], CROWD)
        _wait(lambda: all(v.hellos for v in crowd.viewers), 120, "every viewer connected to edge A")
        time.sleep(max(0.0, ready_at + KILL_AT_S - time.monotonic()))
        record["before_kill"] = _commandstats(redis)
        record["viewers_on_a"] = _healthz(edges[0].url)[1]["viewers"]
        edges[0].proc.kill()
        _wait(lambda: all(len(v.hellos) == 2 for v in crowd.viewers), 120, "every viewer resumed on edge B")
        record["after_storm"] = _commandstats(redis)
        relay.wait_for(lambda s: s["source"]["state"] == "ended", SECONDS + 120, "ended")
        time.sleep(2)
        _stop(tmp / "data")
        relay.proc.wait(60)
        _wait(lambda: all(v.ended for v in crowd.viewers), 60, "every viewer got the end")
        _wait(lambda: any(f["type"] == "end" for f in reference.frames), 30, "the relay's viewer got the end")
        record["resumes_on_b"] = _metric(edges[1].url, "relay_edge_resumes_total")
        # The same event started afresh: edge B, never restarted, must follow it.
        short = trim_audio(MEETING_FLAC, SECOND_SESSION_SECONDS, tmp)
        second_relay = Serve(str(short), tmp / "data", "--realtime", "--redis", redis.url, "--event", EVENT,
                             "--new-event")
        second_reference = Viewer(second_relay.url)
        _wait(lambda: second_reference.hellos, 30, "a viewer on the second relay")
        second_session = second_reference.hellos[0]["session"]
        _wait(lambda: _healthz(edges[1].url)[1]["session"] == second_session, 60, "edge B followed the new session")
        late = Viewer(edges[1].url)
        second_relay.wait_for(lambda s: s["source"]["state"] == "ended", SECOND_SESSION_SECONDS + 120, "ended")
        time.sleep(2)
        _stop(tmp / "data")
        second_relay.proc.wait(60)
        for viewer in (second_reference, late):
            _wait(lambda v=viewer: any(f["type"] == "end" for f in v.frames), 30, "the second session's end")
        record["second"] = (second_reference, late, second_session)
    finally:
        for closable in (crowd, reference, late):
            if closable is not None:
                closable.close()
        for edge in edges:
            edge.close()
        for process in (relay, second_relay):
            if process is not None:
                process.kill()
        redis.stop()
    record["crowd"], record["reference"] = crowd.viewers, reference
    return record


def _stop(data) -> None:
    import subprocess

    stopped = subprocess.run([RELAY, "stop", "--data", str(data)], capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stderr


def test_an_edge_killed_under_1000_viewers_loses_none_of_their_finals(failover):
    expected = _numbered(failover["reference"])
    seqs = [seq for seq, _, _ in expected]
    assert len(seqs) >= 5 and seqs == list(range(1, len(seqs) + 1))
    assert failover["viewers_on_a"] == CROWD
    for viewer in failover["crowd"]:
        assert viewer.finals == expected  # every final once, in order: nothing lost, nothing twice
        first, second = viewer.hellos
        assert second["resumed"] is True and second["session"] == first["session"]
    assert failover["resumes_on_b"] >= CROWD


def test_the_reconnect_storm_reads_redis_per_edge_not_per_viewer(failover):
    before, after = failover["before_kill"], failover["after_storm"]
    spent = {name: after.get(name, 0) - before.get(name, 0) for name in after}
    # Edge B resumed 1,000 viewers from its memory ring: no far-resume XRANGE; the rest is its
    # own XREAD loop and session checks (a few a second), whatever the crowd.
    assert spent.get("xrange", 0) == 0, spent
    assert sum(spent.values()) < CROWD / 4, spent


def test_an_edge_follows_the_event_into_a_new_session_without_restart(failover):
    reference, late, session = failover["second"]
    assert late.hellos[0]["session"] == session
    expected = _numbered(reference)
    assert expected and expected[0][0] == 1  # the new session numbers from 1
    assert _numbered(late) == expected
