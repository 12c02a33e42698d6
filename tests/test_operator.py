"""Operating a relay from a script, in subprocesses, through a whole (shortened) event.

One scenario runs once per module: `relay start` on a live HLS stream, a viewer attached,
the control API probed with good and bad tokens, the HLS server stopped and restarted, the
relay killed with SIGKILL and started again on the same data directory, `relay stop`, and
the exports. The tests below assert on what it recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import srt
import webvtt
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.support.live_hls import LiveHlsServer
from tests.support.media import MEETING_FLAC, free_port

RELAY = str(Path(sys.executable).with_name("relay"))
SPEED = 2.0
OUTAGE_STREAM_S = (60.0, 72.0)
KILL_AT_STREAM_S = 112.0


def relay(*args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([RELAY, *args], capture_output=True, text=True, timeout=timeout)


def http(url: str, method: str = "GET", token: str | None = None, body: bytes | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Viewer:
    """A websockets viewer on its own thread that reconnects with `since` and records every frame."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("http://", "ws://") + "/ws"
        self.frames: list[dict] = []
        self.hellos: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()

    def finals(self) -> list[dict]:
        """The numbered frames: finals and track captions."""
        return [f for f in self.frames if f["type"] in ("final", "track")]

    async def _run(self) -> None:
        while not self._stop.is_set():
            last = max((f["seq"] for f in self.finals()), default=None)
            query = f"?since={last}&session={self.hellos[-1]['session']}" if last is not None else ""
            try:
                async with connect(self.url + query, open_timeout=5) as ws:
                    async for raw in ws:
                        message = json.loads(raw)
                        (self.hellos if message["type"] == "hello" else self.frames).append(message)
                        if self._stop.is_set():
                            return
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError):
                await asyncio.sleep(0.3)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _sleep_until(when: float) -> None:
    time.sleep(max(0.0, when - time.monotonic()))


def _status(data: Path) -> dict:
    return json.loads(relay("status", "--data", str(data), "--json").stdout)


@pytest.fixture(scope="module")
def event(tmp_path_factory):
    data = tmp_path_factory.mktemp("event")
    port = free_port()
    record: dict = {"data": data}
    server = LiveHlsServer(MEETING_FLAC, speed=SPEED).start()
    start_args = ("start", server.url, "--port", str(port), "--data", str(data))
    viewer = None
    try:
        record["start"] = relay(*start_args)
        record["start_again"] = relay(*start_args)
        url = record["start"].stdout.strip().rstrip("/")
        record["url"] = url
        viewer = Viewer(url)
        record["token"] = (data / "operator.token").read_text().strip()
        record["api"] = _probe_api(url, record["token"])
        record["healthz"] = http(url + "/healthz")
        record["status"] = relay("status", "--data", str(data), "--json")
        _sleep_until(server.wall_time_of(OUTAGE_STREAM_S[0]))
        server.stop()
        record["during_outage"] = _poll_source_state(data, "reconnecting", 20)
        _sleep_until(server.wall_time_of(OUTAGE_STREAM_S[1]))
        server.start()
        record["after_outage"] = _poll_source_state(data, "connected", 30)
        _sleep_until(server.wall_time_of(KILL_AT_STREAM_S))
        record["metrics"] = http(url + "/metrics")
        record["finals_before_kill"] = _status(data)["captions_published"]
        os.kill(int((data / "relay.pid").read_text()), signal.SIGKILL)
        record["restart"] = relay(*start_args)
        _sleep_until(server.ends_at + 15)
        record["status_at_end"] = _status(data)
        started = time.monotonic()
        record["stop"] = relay("stop", "--data", str(data))
        record["stop_seconds"] = time.monotonic() - started
        record["status_after_stop"] = relay("status", "--data", str(data))
        for fmt in ("json", "srt", "vtt", "txt"):
            record[fmt] = relay("export", "--data", str(data), "--format", fmt, "--lang", "fr")
    finally:
        if viewer is not None:
            viewer.close()
            record["viewer"] = viewer
        relay("stop", "--data", str(data), "--force")
        server.close()
    return record


def _probe_api(url: str, token: str) -> dict:
    wrong = "x" + token
    return {
        "status_no_token": http(url + "/api/status"),
        "status_wrong_token": http(url + "/api/status", token=wrong),
        "status_token_in_url": http(url + f"/api/status?token={token}"),
        "stop_wrong_token": http(url + "/api/stop", "POST", token=wrong),
        "source_wrong_token": http(url + "/api/source", "POST", token=wrong, body=b'{"url": "/dev/null"}'),
        "status_ok": http(url + "/api/status", token=token),
        "source_malformed": http(url + "/api/source", "POST", token=token, body=b"{not json"),
        "source_oversized": http(url + "/api/source", "POST", token=token, body=b'{"url": "' + b"a" * 10000 + b'"}'),
        "source_unreachable": http(url + "/api/source", "POST", token=token, body=b'{"url": "http://127.0.0.1:9/x.m3u8"}'),
        "still_running": http(url + "/api/status", token=token),
    }


def _poll_source_state(data: Path, wanted: str, timeout_s: float) -> dict | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = _status(data)
        if status.get("source", {}).get("state") == wanted:
            return status
        time.sleep(0.5)
    return None


def test_start_returns_the_viewer_url_once_ready(event):
    assert event["start"].returncode == 0, event["start"].stderr
    assert event["start"].stdout.startswith("http://127.0.0.1:")


def test_a_second_start_on_the_same_data_refuses_clearly(event):
    again = event["start_again"]
    assert again.returncode == 4
    assert "already running" in again.stderr and str(event["data"]) in again.stderr


def test_status_reports_the_running_relay(event):
    assert event["status"].returncode == 0
    report = json.loads(event["status"].stdout)
    for key in ("pid", "uptime_s", "viewers", "captions_published", "caption_delay_s", "language", "source"):
        assert key in report
    assert report["running"] and report["viewers"] >= 1


def test_every_api_route_refuses_a_missing_or_wrong_token(event):
    api = event["api"]
    for name in ("status_no_token", "status_wrong_token", "status_token_in_url", "stop_wrong_token", "source_wrong_token"):
        assert api[name][0] == 401, name
    assert api["still_running"][0] == 200 and json.loads(api["still_running"][1])["running"]
    assert json.loads(api["still_running"][1])["source"]["url"] != "/dev/null"


def test_bad_control_requests_get_clear_errors_and_change_nothing(event):
    api = event["api"]
    assert api["source_malformed"][0] == 400
    assert api["source_oversized"][0] == 413
    assert api["source_unreachable"][0] == 422 and "refused" in api["source_unreachable"][1]
    assert json.loads(api["still_running"][1])["source"]["state"] == "connected"


def test_health_and_metrics_are_served(event):
    assert event["healthz"][0] == 200
    code, text = event["metrics"]
    assert code == 200
    for name in ("relay_caption_delay_seconds_bucket", "relay_viewers ", "relay_source_reconnects_total 1",
                 "relay_decode_seconds_count", "relay_translation_seconds_count", "relay_realtime_lag_seconds"):
        assert name in text, name


def test_the_relay_rides_out_a_source_outage(event):
    assert event["during_outage"] is not None, "status never showed the source reconnecting"
    assert event["after_outage"] is not None, "status never showed the source connected again"


def test_after_kill_9_a_restart_continues_the_event(event):
    assert event["restart"].returncode == 0, event["restart"].stderr
    assert event["status_at_end"]["captions_published"] > event["finals_before_kill"]


def test_the_transcript_has_every_final_exactly_once(event):
    finals = json.loads(event["json"].stdout)  # the fr track: numbered among finals and other tracks
    seqs = [f["seq"] for f in finals]
    assert seqs == sorted(set(seqs))
    assert len({f["id"] for f in finals}) == len(finals)
    assert len(finals) >= 20


def test_the_viewer_resumed_without_gap_or_duplicate(event):
    viewer = event["viewer"]
    seqs = [f["seq"] for f in viewer.finals()]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert len(viewer.hellos) >= 2 and viewer.hellos[-1]["resumed"]
    assert len({h["session"] for h in viewer.hellos}) == 1
    exported = [f["seq"] for f in json.loads(event["json"].stdout) if f["seq"] >= seqs[0]]
    assert set(exported) <= set(seqs) and seqs[-1] >= exported[-1]


def test_stop_is_graceful_and_quick(event):
    assert event["stop"].returncode == 0 and "stopped" in event["stop"].stdout
    assert event["stop_seconds"] < 5
    assert event["status_after_stop"].returncode == 3


def test_exports_parse_with_strict_libraries(event):
    finals = [f for f in json.loads(event["json"].stdout) if f["text"]]
    subtitles = list(srt.parse(event["srt"].stdout))
    captions = webvtt.from_string(event["vtt"].stdout) if hasattr(webvtt, "from_string") else None
    assert len(subtitles) == len(finals)
    starts = [s.start for s in subtitles]
    assert starts == sorted(starts) and all(s.end > s.start for s in subtitles)
    assert captions is not None and len(captions) == len(finals)
    french = " ".join(s.content for s in subtitles).lower()
    assert "conférence" in french or "conference" in french
    assert len(event["txt"].stdout.splitlines()) == len(finals)


def test_start_on_a_bad_source_fails_with_the_reason(tmp_path, unused_tcp_port):
    url = f"http://127.0.0.1:{unused_tcp_port}/live.m3u8"
    result = relay("start", url, "--data", str(tmp_path), "--port", "0")
    assert result.returncode == 1
    assert result.stderr.strip() == f"relay: cannot read source {url!r}: Connection refused"
    assert relay("status", "--data", str(tmp_path)).returncode == 3
