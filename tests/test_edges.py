"""One transcribing relay, a real Redis and two `relay edge` servers on 127.0.0.1.

`relay serve` captions the meeting's first 60 s at real time with `--redis`; two edges serve the
event from Redis. Viewers on the relay and on each edge, one moved from edge A to edge B mid-event,
while Redis is SIGKILLed twice for 8 s: restarted with its data (append-only file) the first time,
without it the second. The edges also serve the relay's HLS subtitle renditions, byte for byte.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request

import pytest

from tests.support.hls_client import fetch_rendition, listed
from tests.support.live_hls_master import trim_audio
from tests.support.media import MEETING_FLAC
from tests.support.redis_server import RedisServer
from tests.test_operator import Viewer
from tests.test_source_lifecycle import RELAY, Serve

SECONDS = 60.0
EVENT = "edge-test"
MOVE_AT_S = 15.0
KILLS = ((24.0, 32.0, False), (40.0, 48.0, True))  # (killed at, back at, data wiped), seconds after ready


class Edge:
    """`relay edge` in a subprocess; `url` once it serves."""

    def __init__(self, redis_url: str, *extra: str, event: str = EVENT) -> None:
        self.proc = subprocess.Popen([RELAY, "edge", "--redis", redis_url, "--event", event, "--port", "0", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        self._url: str | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _read_out(self) -> None:
        for line in self.proc.stdout:
            if "viewers open" in line:
                self._url = line.split("viewers open", 1)[1].strip().rstrip("/")
                self._ready.set()

    @property
    def url(self) -> str:
        assert self._ready.wait(60), "".join(self.stderr)
        assert self._url is not None
        return self._url

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class MovedViewer(Viewer):
    """A viewer that starts from a given `since` and `session` (it read them on another edge)."""

    def __init__(self, url: str, since: int, session: str) -> None:
        self.start_since, self.start_session = since, session
        super().__init__(url)

    def finals(self) -> list[dict]:
        return [f for f in self.frames if f["type"] in ("final", "track")]

    async def _run(self) -> None:
        if not self.hellos:
            self.hellos.append({"session": self.start_session, "type": "hello", "placeholder": True})
            self.frames.append({"type": "final", "seq": self.start_since, "placeholder": True})
        await super()._run()


def _sleep_until(when: float) -> None:
    time.sleep(max(0.0, when - time.monotonic()))


def _wait(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"never {what}")


@pytest.fixture(scope="module")
def scaleout(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scaleout")
    clip = trim_audio(MEETING_FLAC, SECONDS, tmp)
    redis = RedisServer(tmp / "redis").start()
    relay = Serve(str(clip), tmp / "data", "--realtime", "--redis", redis.url, "--event", EVENT)
    edges: list[Edge] = []
    viewers: dict[str, Viewer] = {}
    record: dict = {}
    try:
        url = relay.url
        ready_at = time.monotonic()
        edges = [Edge(redis.url), Edge(redis.url)]
        viewers = {"relay": Viewer(url), "a": Viewer(edges[0].url), "b": Viewer(edges[1].url),
                   "moving": Viewer(edges[0].url)}
        _sleep_until(ready_at + MOVE_AT_S)
        moving = viewers.pop("moving")
        moving.close()
        record["moved_from"] = moving
        since = max((f["seq"] for f in moving.finals()), default=0)
        viewers["moved"] = MovedViewer(edges[1].url, since, moving.hellos[-1]["session"])
        for killed_at, back_at, wiped in KILLS:
            _sleep_until(ready_at + killed_at)
            redis.kill()
            time.sleep(3)
            record.setdefault("healthz_down", []).append(_healthz(edges[0].url))
            _sleep_until(ready_at + back_at)
            redis.start(wipe=wiped)
        relay.wait_for(lambda s: s["source"]["state"] == "ended", SECONDS + 120, "ended")
        # The last segments are listed live for a target duration (6 s), then the presentation ends.
        _wait(lambda: fetch_rendition(url, "fr").get("playlist", b"").rstrip().endswith(b"#EXT-X-ENDLIST"), 30,
              "the relay's French rendition ended")
        record["hls_relay"] = {lang: fetch_rendition(url, lang) for lang in ("fr", "original")}
        for edge in edges:
            for lang, files in record["hls_relay"].items():
                _wait(lambda e=edge, lang=lang, files=files: fetch_rendition(e.url, lang) == files, 15,
                      f"{lang} HLS rendition on {edge.url} equal to the relay's")
            record.setdefault("hls_edges", []).append(fetch_rendition(edge.url, "fr"))
        stopped = subprocess.run([RELAY, "stop", "--data", str(tmp / "data")], capture_output=True, text=True,
                                 timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        relay.proc.wait(60)
        for name, viewer in viewers.items():
            _wait(lambda v=viewer: any(f["type"] == "end" for f in v.frames), 30, f"{name} got the end")
        record["healthz_up"] = _healthz(edges[0].url)
        record["metrics"] = urllib.request.urlopen(edges[0].url + "/metrics", timeout=10).read().decode()
    finally:
        for viewer in viewers.values():
            viewer.close()
        for edge in edges:
            edge.close()
        relay.kill()
        redis.stop()
    record["viewers"] = viewers
    record["edge_stderr"] = ["".join(edge.stderr) for edge in edges]
    return record


def _healthz(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _numbered(viewer: Viewer) -> list[tuple[int, str]]:
    return [(f["seq"], f.get("lang", ""), f.get("text", "")) for f in viewer.finals() if not f.get("placeholder")]


def test_a_viewer_on_each_edge_gets_the_relays_finals_exactly(scaleout):
    viewers = scaleout["viewers"]
    on_relay = _numbered(viewers["relay"])
    assert len([1 for seq, _, _ in on_relay]) >= 10
    seqs = [seq for seq, _, _ in on_relay]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap, none twice
    assert _numbered(viewers["a"]) == on_relay
    assert _numbered(viewers["b"]) == on_relay


def test_a_viewer_moved_to_another_edge_resumes_exactly(scaleout):
    before = _numbered(scaleout["moved_from"])
    moved = scaleout["viewers"]["moved"]
    after = _numbered(moved)
    assert before and after
    assert before + after == _numbered(scaleout["viewers"]["relay"])
    assert moved.hellos[-1]["resumed"] is True


def test_edges_serve_the_relays_hls_segments_byte_for_byte_despite_redis_outages(scaleout):
    relay = scaleout["hls_relay"]["fr"]
    segments = listed(relay)
    assert len(segments) >= 5  # 60 s of the meeting in 6 s segments
    assert relay["playlist"].rstrip().endswith(b"#EXT-X-ENDLIST")  # the file ended: so did the presentation
    assert any(b"-->" in relay[name] for name in segments)  # cues, not only empty segments
    assert scaleout["hls_edges"] == [relay, relay]


def test_redis_down_is_told_to_edge_viewers_and_costs_no_final(scaleout):
    states = [f["state"] for f in scaleout["viewers"]["a"].frames if f["type"] == "status"]
    assert states.count("reconnecting") >= 2, states  # once per outage, at least
    assert [code for code, _ in scaleout["healthz_down"]] == [503, 503]
    assert scaleout["healthz_up"][0] == 200
    for name in ("a", "b"):
        hellos = scaleout["viewers"][name].hellos
        assert len({h["session"] for h in hellos}) == 1  # history never lost: the session stays
    assert "relay_edge_redis_failures_total" in scaleout["metrics"]
