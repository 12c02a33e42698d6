"""Two `relay edge` servers behind nginx, configured by the shipped docs/nginx/relay-edges.conf.

A real redis-server, `relay serve` captioning the meeting's first 40 s at real time with
`--redis`, two edges, and Debian's nginx in front of them on a free port. A viewer connects
through nginx; the edge it landed on is SIGKILLed mid-event; the viewer reconnects through nginx
with its `since`/`session` and must resume on the other edge with exactly the relay's finals.
Then the edges' per-address limit must count viewers by the address nginx saw (X-Forwarded-For).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.live_hls_master import trim_audio
from tests.support.media import MEETING_FLAC
from tests.support.nginx_server import NginxServer, nginx_installed
from tests.support.redis_server import REDIS_SERVER, RedisServer, free_port
from tests.test_edges import Edge, _wait
from tests.test_operator import Viewer
from tests.test_source_lifecycle import RELAY, Serve

pytestmark = [
    pytest.mark.skipif(not nginx_installed(), reason="nginx is not installed (Debian package nginx; "
                                                      "`scripts/setup --test` installs it)"),
    pytest.mark.skipif(not os.access(REDIS_SERVER, os.X_OK), reason="redis-server is not installed"),
]

SECONDS = 40.0
EVENT = "nginx-test"
PER_ADDRESS = 2  # the edges' --max-viewers-per-address


class LimitedEdge(Edge):
    """`relay edge` behind a proxy: trusts X-Forwarded-For and allows PER_ADDRESS viewers an address."""

    def __init__(self, redis_url: str) -> None:
        self.proc = subprocess.Popen(
            [RELAY, "edge", "--redis", redis_url, "--event", EVENT, "--port", "0", "--trust-forwarded-for",
             "--max-viewers-per-address", str(PER_ADDRESS)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        self._url: str | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _viewers_on(edge: Edge) -> int:
    return json.loads(_get(edge.url + "/healthz")[2])["viewers"]


async def _handshakes(url: str, attempts: list[tuple[str, list[str]]]) -> list[int]:
    """Open a viewer socket per (source address, spoofed X-Forwarded-For lines), all held open; each one's status."""
    statuses: list[int] = []
    sockets = []
    try:
        for source, spoofed in attempts:
            try:
                sockets.append(await connect(url, local_addr=(source, 0), open_timeout=10,
                                             additional_headers=[("X-Forwarded-For", s) for s in spoofed]))
                statuses.append(101)
            except InvalidStatus as error:
                statuses.append(error.response.status_code)
    finally:
        for ws in sockets:
            await ws.close()
    return statuses


@pytest.fixture(scope="module")
def behind_nginx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nginx-edges")
    clip = trim_audio(MEETING_FLAC, SECONDS, tmp)
    redis = RedisServer(tmp / "redis").start()
    relay = Serve(str(clip), tmp / "data", "--realtime", "--redis", redis.url, "--event", EVENT)
    edges = [LimitedEdge(redis.url), LimitedEdge(redis.url)]  # they wait for the relay's event
    nginx: NginxServer | None = None
    viewers: dict[str, Viewer] = {}
    record: dict = {}
    try:
        url = relay.url
        nginx = NginxServer([edge.address for edge in edges], free_port()).start()
        record["page"] = _get(nginx.url + "/")
        record["script"] = _get(nginx.url + "/assets/viewer.js")
        record["healthz"] = _get(nginx.url + "/healthz")
        record["metrics"] = _get(nginx.url + "/metrics")
        viewers = {"relay": Viewer(url), "nginx": Viewer(nginx.url)}
        viewer = viewers["nginx"]
        _wait(lambda: viewer.finals(), SECONDS, "a final through nginx")
        landed = [edge for edge in edges if _viewers_on(edge) == 1]
        assert len(landed) == 1, [_viewers_on(edge) for edge in edges]
        survivor = next(edge for edge in edges if edge is not landed[0])
        landed[0].proc.send_signal(signal.SIGKILL)
        landed[0].proc.wait(10)
        record["finals_before_kill"] = len(viewer.finals())
        _wait(lambda: len(viewer.hellos) >= 2, 30, "reconnected through nginx")
        record["on_survivor"] = _viewers_on(survivor)
        record["statuses"] = asyncio.run(_handshakes(nginx.url.replace("http://", "ws://") + "/ws", [
            ("127.0.0.7", ["198.51.100.1"]), ("127.0.0.7", ["198.51.100.2"]),
            ("127.0.0.7", ["198.51.100.3", "198.51.100.4"]), ("127.0.0.8", ["198.51.100.1"]),
        ]))
        relay.wait_for(lambda s: s["source"]["state"] == "ended", SECONDS + 60, "ended")
        stopped = subprocess.run([RELAY, "stop", "--data", str(tmp / "data")], capture_output=True, text=True,
                                 timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        relay.proc.wait(60)
        for name, each in viewers.items():
            _wait(lambda v=each: any(f["type"] == "end" for f in v.frames), 30, f"{name} got the end")
    finally:
        for edge in edges:  # first: a viewer blocked on an open socket would hold its close() up
            edge.close()
        for each in viewers.values():
            each.close()
        if nginx is not None:
            nginx.stop()
            record["nginx_error_log"] = nginx.error_log()
            nginx.remove()
        relay.kill()
        redis.stop()
    record["viewers"] = viewers
    record["edge_stderr"] = ["".join(edge.stderr) for edge in edges]
    return record


def _numbered(viewer: Viewer) -> list[tuple[int, str, str]]:
    return [(f["seq"], f.get("lang", ""), f.get("text", "")) for f in viewer.finals()]


def test_the_viewer_page_loads_through_nginx(behind_nginx):
    status, headers, body = behind_nginx["page"]
    assert status == 200 and b"assets/viewer.js" in body
    port = behind_nginx["viewers"]["nginx"].url.split(":")[2].split("/")[0]
    # The edge names the viewer's own host and port for the page's socket: nginx passed the Host on.
    assert f"ws://127.0.0.1:{port}" in headers["Content-Security-Policy"]
    assert behind_nginx["script"][0] == 200 and b"CaptionConnection" in behind_nginx["script"][2]
    assert behind_nginx["healthz"][0] == 200 and json.loads(behind_nginx["healthz"][2])["redis"] == "up"
    assert behind_nginx["metrics"][0] == 403  # scraped on each edge, not through nginx


def test_a_viewer_resumes_on_the_other_edge_when_its_edge_dies(behind_nginx):
    viewers = behind_nginx["viewers"]
    on_relay = _numbered(viewers["relay"])
    through_nginx = _numbered(viewers["nginx"])
    assert len(on_relay) >= 5
    seqs = [seq for seq, _, _ in on_relay]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert through_nginx == on_relay  # no gap, none twice, across the edge's death
    assert 0 < behind_nginx["finals_before_kill"] < len(through_nginx)  # killed mid-event, finals after it
    hellos = viewers["nginx"].hellos
    assert hellos[-1]["resumed"] is True and len({h["session"] for h in hellos}) == 1
    assert behind_nginx["on_survivor"] == 1


def test_edges_count_viewers_by_the_address_nginx_forwards(behind_nginx):
    # 127.0.0.7 twice, then a third time (spoofing another X-Forwarded-For each time, the third
    # time in two header lines), then 127.0.0.8.
    # Counted by nginx's own peer address (127.0.0.1, also the resumed viewer's) the second would be
    # refused; counted by the spoofed header, the third would be let in.
    assert behind_nginx["statuses"] == [101, 101, 429, 101]


def test_nginx_logs_no_critical_error(behind_nginx):
    log = behind_nginx["nginx_error_log"]
    serious = [line for line in log.splitlines() if any(f"[{level}]" in line for level in ("crit", "alert", "emerg"))]
    assert not serious, log

